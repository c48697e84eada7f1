//! [`NetError`]: why the appliance could not read or change an interface, worded for the operator
//! (which interface, what it tried, and for a refusal what right it lacks).

use std::io;

/// A netlink request that failed, or an interface that is not there.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("cannot open a netlink socket: {0}")]
    Open(#[source] io::Error),
    #[error("interface {0:?} does not exist")]
    NoInterface(String),
    #[error(
        "not permitted to {what} on interface {interface:?}: the appliance needs CAP_NET_ADMIN in its \
         network namespace (root in the container has it)"
    )]
    PermissionDenied { interface: String, what: String },
    #[error("cannot {what} on interface {interface:?}: {source}")]
    Request {
        interface: String,
        what: String,
        #[source]
        source: io::Error,
    },
}

impl NetError {
    /// The error of request `what` on `interface` that failed with `error`.
    pub(crate) fn request(interface: &str, what: impl Into<String>, error: rtnetlink::Error) -> NetError {
        let source = to_io(error);
        let (interface, what) = (interface.to_owned(), what.into());
        match source.kind() {
            io::ErrorKind::PermissionDenied => NetError::PermissionDenied { interface, what },
            _ => NetError::Request { interface, what, source },
        }
    }
}

/// The errno of a netlink error as an `io::Error`, so callers can match on its kind.
pub(crate) fn to_io(error: rtnetlink::Error) -> io::Error {
    match error {
        rtnetlink::Error::NetlinkError(message) => message.to_io(),
        other => io::Error::other(other),
    }
}

/// The raw errno of a netlink error, if the kernel sent one.
pub(crate) fn errno(error: &rtnetlink::Error) -> Option<i32> {
    match error {
        rtnetlink::Error::NetlinkError(message) => message.code.map(|code| code.get().abs()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroI32;

    use rtnetlink::packet_core::ErrorMessage;

    use super::*;

    fn refused(errno: i32) -> rtnetlink::Error {
        let mut message = ErrorMessage::default();
        message.code = NonZeroI32::new(-errno);
        rtnetlink::Error::NetlinkError(message)
    }

    #[test]
    fn a_refusal_says_which_right_is_missing_and_other_errors_keep_their_errno() {
        let denied = NetError::request("eth1", "add address 10.20.0.1/24", refused(1));
        assert!(matches!(denied, NetError::PermissionDenied { .. }), "{denied:?}");
        let text = denied.to_string();
        assert!(text.contains("\"eth1\"") && text.contains("add address 10.20.0.1/24"), "{text}");
        assert!(text.contains("CAP_NET_ADMIN"), "{text}");

        let other = NetError::request("eth1", "set the link up", refused(19));
        let NetError::Request { source, .. } = &other else { panic!("{other:?}") };
        assert_eq!(source.raw_os_error(), Some(19));
        assert_eq!(errno(&refused(17)), Some(17));
    }
}
