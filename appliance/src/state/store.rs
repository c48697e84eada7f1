//! The handle the services hold: open the store, read the leases, commit changes, close.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use proximity_config::api::{ApiReservation, App};
use proximity_config::{MacAddr, PortForward, Protocol};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, oneshot};
use tracing::{error, info};

use super::codec;
use super::error::StoreError;
use super::file;
use super::lease::Lease;
use super::writer::{MAX_BATCH_REQUESTS, Opener, Request, Shared, Writer};

/// Most commits queued or being applied at once. Beyond it `commit` waits (asynchronously) for
/// a slot, so a flood of requests under a stalled disk holds bounded memory.
pub(crate) const MAX_QUEUED_REQUESTS: usize = 4 * MAX_BATCH_REQUESTS;

/// One mutation. Leases are keyed by ip: Put replaces the record of that ip; apps by name.
#[derive(Debug, Clone)]
pub enum Change {
    PutLease(Lease),
    DeleteLease(Ipv4Addr),
    PutApp(App),
    DeleteApp(String),
    PutReservation(ApiReservation),
    DeleteReservation(MacAddr),
    /// Forwards are keyed by protocol and port: Put replaces the forward of that port.
    PutForward(PortForward),
    DeleteForward(Protocol, u16),
}

/// The durable store. Cheap to clone; every clone talks to the same writer thread, which the
/// last clone to drop (or the first `close`) stops.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    /// `None` once closed. Sending under the lock means no request slips in after `close`
    /// has dropped the sender, so the writer's "disconnected" really means "all answered".
    queue: Mutex<Option<Sender<Request>>>,
    slots: Arc<Semaphore>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Store {
    /// Opens (creating dir and file if missing) `<dir>/proximity.redb`.
    ///
    /// A corrupt, unreadable, locked or foreign file is an error naming the path; the file is
    /// left as it is, never reset or re-created.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let path = file::prepare(dir)?;
        let store = Store::start(path, Box::new(file::open))?;
        info!(path = %store.path().display(), "state store open");
        Ok(store)
    }

    /// Opens the file with `opener` (which the writer also uses to reopen it after a failed
    /// commit) and starts the writer thread.
    pub(crate) fn start(path: PathBuf, opener: Opener) -> Result<Store, StoreError> {
        let db = opener(&path)?;
        let shared = Arc::new(Shared::new(path, db));
        let (queue, requests) = mpsc::channel();
        let writer = Writer { shared: Arc::clone(&shared), opener, requests };
        let handle = std::thread::Builder::new()
            .name("state-writer".into())
            .spawn(move || writer.run())
            .map_err(|source| StoreError::SpawnWriter { path: shared.path.clone(), source })?;
        Ok(Store {
            inner: Arc::new(Inner {
                shared,
                queue: Mutex::new(Some(queue)),
                slots: Arc::new(Semaphore::new(MAX_QUEUED_REQUESTS)),
                writer: Mutex::new(Some(handle)),
            }),
        })
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.inner.shared.path
    }

    /// Every lease record in the store (read at start-up to build the in-memory pool), in
    /// address order. A record that does not decode fails the read, naming its address.
    pub fn leases(&self) -> Result<Vec<Lease>, StoreError> {
        let db = self.inner.shared.database()?;
        codec::read_leases(&db, self.path())
    }

    /// Every app in the store, in name order. A record that does not decode fails the read,
    /// naming it.
    pub fn apps(&self) -> Result<Vec<App>, StoreError> {
        let db = self.inner.shared.database()?;
        codec::read_apps(&db, self.path())
    }

    /// Every reservation made through the admin API, in MAC order.
    pub fn reservations(&self) -> Result<Vec<ApiReservation>, StoreError> {
        let db = self.inner.shared.database()?;
        codec::read_reservations(&db, self.path())
    }

    /// Every port forward added through the admin API, in (protocol, port) order.
    pub fn forwards(&self) -> Result<Vec<PortForward>, StoreError> {
        let db = self.inner.shared.database()?;
        codec::read_forwards(&db, self.path())
    }

    /// Applies the changes in one transaction and returns once they are durable on disk.
    ///
    /// Concurrent callers are batched by the writer thread into one transaction and one fsync,
    /// in the order they were submitted. On `Err` the changes must be treated as not committed.
    /// Dropping the future does not withdraw a submitted change; it is still applied.
    ///
    /// The changes are queued when the future first runs (after waiting for a queue slot); a
    /// caller whose order matters relative to other callers uses [`Store::submit`].
    pub async fn commit(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        let ops = codec::encode(changes)?;
        let slot = Arc::clone(&self.inner.slots).acquire_owned().await.map_err(|_| self.stopped())?;
        self.enqueue(ops, slot)?.await
    }

    /// Queues the changes now, behind everything submitted before this call, and returns a
    /// future that resolves once they are durable. The DHCP server decides leases in arrival
    /// order and relies on this: a release and the lease of the same address to another client
    /// must reach the disk in the order they were decided, whatever order tasks run in.
    /// Fails at once with [`StoreError::Busy`] when the queue is full.
    pub fn submit(
        &self,
        changes: Vec<Change>,
    ) -> Result<impl Future<Output = Result<(), StoreError>> + Send + 'static, StoreError> {
        let ops = codec::encode(changes)?;
        let slot = Arc::clone(&self.inner.slots).try_acquire_owned().map_err(|e| match e {
            TryAcquireError::NoPermits => StoreError::Busy { path: self.path().to_owned() },
            TryAcquireError::Closed => self.stopped(),
        })?;
        self.enqueue(ops, slot)
    }

    fn enqueue(
        &self,
        ops: Vec<codec::Op>,
        slot: OwnedSemaphorePermit,
    ) -> Result<impl Future<Output = Result<(), StoreError>> + Send + 'static, StoreError> {
        let (reply, answer) = oneshot::channel();
        {
            let queue = lock(&self.inner.queue);
            let queue = queue.as_ref().ok_or_else(|| self.stopped())?;
            queue.send(Request { ops, reply, _slot: slot }).map_err(|_| self.stopped())?;
        }
        let path = self.path().to_owned();
        // The writer drops the reply unanswered only if it died (panicked) mid-batch.
        Ok(async move { answer.await.map_err(|_| StoreError::WriterStopped { path })? })
    }

    fn stopped(&self) -> StoreError {
        StoreError::WriterStopped { path: self.path().to_owned() }
    }

    /// Stops the writer thread after finishing queued commits, and closes the file. Blocks
    /// until then (a few commits at most). Later commits fail with `WriterStopped`.
    pub fn close(&self) {
        self.inner.close();
    }
}

impl Inner {
    fn close(&self) {
        // Callers still waiting for a slot are refused now rather than after the queue drains.
        self.slots.close();
        drop(lock(&self.queue).take());
        // Held while joining, so a concurrent `close` also returns only once the writer is done.
        let mut writer = lock(&self.writer);
        if let Some(handle) = writer.take()
            && handle.join().is_err()
        {
            error!(path = %self.shared.path.display(), "state writer panicked");
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.close();
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("path", &self.inner.shared.path).finish_non_exhaustive()
    }
}

/// The guarded values stay consistent even if a holder panicked, so poisoning is ignored.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
