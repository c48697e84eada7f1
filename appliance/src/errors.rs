//! An error and its causes as one line, for logs (never for clients or API answers).

use std::error::Error;

/// `e` and each of its sources, joined by `: `.
pub(crate) fn chain(e: &dyn Error) -> String {
    let mut text = e.to_string();
    for cause in std::iter::successors(e.source(), |&cause| cause.source()) {
        text.push_str(": ");
        text.push_str(&cause.to_string());
    }
    text
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    #[test]
    fn causes_follow_the_error() {
        let inner = io::Error::other("disk full");
        let outer = io::Error::other(Wrapped(inner));
        assert_eq!(chain(&outer), "commit failed: disk full");
    }

    #[derive(Debug)]
    struct Wrapped(io::Error);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("commit failed")
        }
    }

    impl Error for Wrapped {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }
}
