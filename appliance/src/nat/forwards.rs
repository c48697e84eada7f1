//! The port forwards in force: the config file's (fixed) and those added over the admin API
//! (stored, changed at run time). The API changes them after its commit; NAT follows every
//! change through a watch channel and re-applies the ruleset.

use std::sync::Arc;

use proximity_config::PortForward;
use tokio::sync::watch;

/// The forwards of both sources, published together.
#[derive(Debug)]
pub struct Forwards {
    configured: Vec<PortForward>,
    /// The API's, in (protocol, port) order; every value sent is a complete list.
    added: watch::Sender<Arc<Vec<PortForward>>>,
}

impl Forwards {
    pub fn new(configured: Vec<PortForward>, mut added: Vec<PortForward>) -> Self {
        added.sort_by_key(|f| (f.protocol, f.port));
        Forwards { configured, added: watch::Sender::new(Arc::new(added)) }
    }

    /// The config file's, read-only over the API.
    pub fn configured(&self) -> &[PortForward] {
        &self.configured
    }

    /// The API's, as last published.
    pub fn added(&self) -> Arc<Vec<PortForward>> {
        self.added.borrow().clone()
    }

    /// Both, in (protocol, port) order.
    pub fn all(&self) -> Vec<PortForward> {
        let mut all: Vec<PortForward> = self.configured.iter().chain(self.added().iter()).copied().collect();
        all.sort_by_key(|f| (f.protocol, f.port));
        all
    }

    /// Publishes the API's forwards (already committed to the store).
    pub fn set_added(&self, mut added: Vec<PortForward>) {
        added.sort_by_key(|f| (f.protocol, f.port));
        self.added.send_replace(Arc::new(added));
    }

    /// Told of every change of the API's forwards.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Vec<PortForward>>> {
        self.added.subscribe()
    }
}
