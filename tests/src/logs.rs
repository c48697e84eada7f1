//! The lab's log files (the appliance's stderr, each client's output), collected so a failing test
//! can show all of them: in an error from a client, and from the lab's `Drop` when a test panics.

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

/// Lines shown from the end of each log: where a failure usually shows.
pub const TAIL_LINES: usize = 80;
/// Lines shown from the start of a long log: what a panic's backtrace would push out of the tail.
pub const HEAD_LINES: usize = 40;

/// Named log files of one lab.
#[derive(Debug, Default)]
pub struct Logs {
    files: Mutex<Vec<(String, PathBuf)>>,
}

impl Logs {
    /// Adds `path` under `label`, once.
    pub fn register(&self, label: &str, path: &Path) {
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        if !files.iter().any(|(_, p)| p == path) {
            files.push((label.to_owned(), path.to_owned()));
        }
    }

    /// Every log that exists, each under a header; long ones cut to [`excerpt`].
    pub fn render(&self) -> String {
        let files = self.files.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let mut out = String::new();
        for (label, path) in files {
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            let _ = writeln!(out, "----- {label} ({}) -----\n{}", path.display(), excerpt(&text));
        }
        out
    }
}

/// `text` whole when short, else its first [`HEAD_LINES`] and last [`TAIL_LINES`] lines.
pub fn excerpt(text: &str) -> String {
    let lines = text.lines().count();
    if lines <= HEAD_LINES + TAIL_LINES {
        return text.to_owned();
    }
    let head: Vec<&str> = text.lines().take(HEAD_LINES).collect();
    let skipped = lines - HEAD_LINES - TAIL_LINES;
    format!("{}\n[... {skipped} lines ...]\n{}", head.join("\n"), tail(text, TAIL_LINES))
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> &str {
    // A final newline ends the last line; it does not start another.
    let body = text.strip_suffix('\n').unwrap_or(text);
    let mut start = body.len();
    for _ in 0..n {
        match body[..start].rfind('\n') {
            Some(i) => start = i,
            None => return text,
        }
    }
    text.get(start + 1..).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::{HEAD_LINES, TAIL_LINES, excerpt, tail};

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a\nb", 5), "a\nb");
        assert_eq!(tail("", 3), "");
    }

    #[test]
    fn excerpt_keeps_head_and_tail() {
        let long: String = (0..500).map(|i| format!("line {i}\n")).collect();
        let cut = excerpt(&long);
        assert!(cut.starts_with("line 0\n"));
        assert!(cut.contains(&format!("[... {} lines ...]", 500 - HEAD_LINES - TAIL_LINES)));
        assert!(cut.ends_with("line 499\n"));
        assert_eq!(excerpt("short\n"), "short\n");
    }
}
