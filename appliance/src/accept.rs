//! What the socket servers share (DNS, the proxy, the admin API): the accept loop (a connection
//! slot before each accept, so past the cap clients wait in the listen backlog; errors the socket
//! survives are logged and skipped, a shortage of descriptors or memory pauses the loop rather
//! than spinning it; only a dead socket ends it), waiting for a server's socket loops (the first
//! to fail stops the others), and draining its connections at the stop.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, warn};

/// Pause after an accept error that says the process is out of resources (descriptors,
/// memory), so the loop does not spin while they are short.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts on `listener` until `stop` fires (or `slots` is closed), one slot of `slots` per
/// connection, handing each to `serve` with its slot (dropping it frees the slot). `what` names
/// the server in logs. Returns an error only when the socket is dead.
pub async fn accept_loop(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
    stop: &CancellationToken,
    what: &str,
    mut serve: impl FnMut(TcpStream, SocketAddr, OwnedSemaphorePermit),
) -> io::Result<()> {
    loop {
        let slot = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => return Ok(()),
            },
        };
        let accepted = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => serve(stream, peer, slot),
            Err(e) if out_of_resources(&e) => {
                warn!(error = %e, "{what} accept: out of resources; pausing");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
            Err(e) if transient(&e) => debug!(error = %e, "{what} accept"),
            Err(e) => return Err(e),
        }
    }
}

/// Waits for every socket loop of `what` in `loops` to end. The first that fails (or panics)
/// cancels `cancel`, which the others stop on; its error is returned.
pub async fn join_loops(
    mut loops: JoinSet<io::Result<()>>,
    cancel: &CancellationToken,
    what: &str,
) -> io::Result<()> {
    let mut result = Ok(());
    while let Some(done) = loops.join_next().await {
        let failure = match done {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e,
            Err(e) => io::Error::other(format!("a {what} socket loop panicked: {e}")),
        };
        error!(error = %failure, "{what} socket failed; stopping {what}");
        cancel.cancel();
        if result.is_ok() {
            result = Err(failure);
        }
    }
    result
}

/// Lets the `connections` of `what` finish until `deadline` (they were told to close
/// gracefully); then cuts those still open through `cut` and waits for them to go.
pub async fn drain_connections(
    connections: &TaskTracker,
    cut: &CancellationToken,
    deadline: Instant,
    what: &str,
) {
    connections.close();
    if tokio::time::timeout_at(deadline, connections.wait()).await.is_err() {
        debug!(cut = connections.len(), "stopping with {what} connections open");
        cut.cancel();
        connections.wait().await;
    }
}

/// Errors after which a socket still works: a client that reset before we accepted it, ICMP
/// errors reported on a later call, interrupts, a shortage that passes.
pub fn transient(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused
            | ConnectionReset
            | ConnectionAborted
            | Interrupted
            | WouldBlock
            | HostUnreachable
            | NetworkUnreachable
            | TimedOut
    ) || out_of_resources(e)
}

/// The process or the machine is short of descriptors or memory.
pub fn out_of_resources(e: &io::Error) -> bool {
    use nix::libc::{EMFILE, ENFILE, ENOBUFS, ENOMEM};
    matches!(e.raw_os_error(), Some(EMFILE | ENFILE | ENOBUFS | ENOMEM))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_past_the_cap_wait_and_the_stop_ends_the_loop() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let slots = Arc::new(Semaphore::new(1));
        let stop = CancellationToken::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let task = {
            let (slots, stop) = (slots.clone(), stop.clone());
            tokio::spawn(async move {
                accept_loop(&listener, &slots, &stop, "test", |stream, _, slot| {
                    tx.send((stream, slot)).unwrap();
                })
                .await
            })
        };
        let _a = TcpStream::connect(addr).await.unwrap();
        let _b = TcpStream::connect(addr).await.unwrap();
        let first = rx.recv().await.unwrap();
        // The second waits for the first one's slot.
        assert!(tokio::time::timeout(Duration::from_millis(100), rx.recv()).await.is_err());
        drop(first);
        assert!(tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().is_some());
        stop.cancel();
        assert!(task.await.unwrap().is_ok());
    }

    #[test]
    fn shortages_are_transient_and_other_errors_are_not() {
        assert!(transient(&io::Error::from_raw_os_error(nix::libc::EMFILE)));
        assert!(transient(&io::Error::from(io::ErrorKind::ConnectionAborted)));
        assert!(!transient(&io::Error::from_raw_os_error(nix::libc::EBADF)));
    }
}
