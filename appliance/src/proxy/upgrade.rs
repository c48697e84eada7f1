//! Upgraded connections (WebSocket and other HTTP/1.1 `Upgrade`s): once the backend has
//! answered 101 and hyper has sent it on, the client's and the backend's connections are
//! bridged byte for byte in a tracked task until either side closes or the server stops.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::metrics::Metrics;

/// The bridges in progress.
#[derive(Debug)]
pub(crate) struct Tunnels {
    tasks: TaskTracker,
    /// Fired when the drain time of a stop is over: open tunnels are cut.
    cut: CancellationToken,
    metrics: Arc<Metrics>,
}

impl Tunnels {
    pub(crate) fn new(metrics: Arc<Metrics>) -> Self {
        Tunnels { tasks: TaskTracker::new(), cut: CancellationToken::new(), metrics }
    }

    /// Bridges the two sides once both upgrades complete (the client's when hyper has written
    /// the 101 to it).
    pub(crate) fn bridge(&self, client: OnUpgrade, backend: OnUpgrade, app: &str, backend_addr: SocketAddr) {
        let (cut, metrics, app) = (self.cut.clone(), self.metrics.clone(), app.to_string());
        self.tasks.spawn(async move {
            let run = async {
                let (client, backend) = match tokio::try_join!(client, backend) {
                    Ok(both) => both,
                    Err(e) => {
                        debug!(app, backend = %backend_addr, error = %e, "upgrade did not complete");
                        return;
                    }
                };
                metrics.upgraded();
                let (mut client, mut backend) = (TokioIo::new(client), TokioIo::new(backend));
                match tokio::io::copy_bidirectional(&mut client, &mut backend).await {
                    Ok((up, down)) => debug!(app, backend = %backend_addr, up, down, "tunnel closed"),
                    Err(e) => debug!(app, backend = %backend_addr, error = %e, "tunnel failed"),
                }
            };
            tokio::select! {
                () = cut.cancelled() => debug!(app, backend = %backend_addr, "tunnel cut: stopping"),
                () = run => {}
            }
        });
    }

    /// Waits up to `limit` for the tunnels to end by themselves, then cuts the rest.
    pub(crate) async fn drain(&self, limit: Duration) {
        self.tasks.close();
        if tokio::time::timeout(limit, self.tasks.wait()).await.is_err() {
            debug!(cut = self.tasks.len(), "stopping with tunnels open");
            self.cut.cancel();
            self.tasks.wait().await;
        }
    }
}
