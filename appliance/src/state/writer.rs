//! The writer thread: the only code that writes the file. It group-commits whatever callers have
//! queued into one transaction and one fsync, and reopens the file after a failed commit.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, PoisonError, RwLock};

use redb::{Database, Durability};
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tracing::{debug, error, info, warn};

use super::codec::{APPS, FORWARDS, LEASES, Op, RESERVATIONS};
use super::error::StoreError;

/// Most requests applied in one transaction, so that a burst under a slow disk still commits in
/// bounded time and memory; the rest wait for the next commit, which starts right after.
pub(crate) const MAX_BATCH_REQUESTS: usize = 1024;

/// Opens (or reopens) the database file at a path; a test substitutes one that injects faults.
pub(crate) type Opener = Box<dyn Fn(&Path) -> Result<Database, StoreError> + Send>;

/// One caller's commit, answered once its batch is durable or has failed.
pub(crate) struct Request {
    pub(crate) ops: Vec<Op>,
    pub(crate) reply: oneshot::Sender<Result<(), StoreError>>,
    /// Held until the request is answered: the queue's bound, released by dropping the request.
    pub(crate) _slot: OwnedSemaphorePermit,
}

/// What the readers and the writer share: the path, and the database when it is usable.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) path: PathBuf,
    slot: RwLock<Slot>,
}

#[derive(Debug)]
enum Slot {
    Open(Arc<Database>),
    /// A commit failed; redb refuses every later operation on that handle, so it was dropped and
    /// the writer opens the file again (which recovers it to the last good commit).
    Reopening,
    Closed,
}

impl Shared {
    pub(crate) fn new(path: PathBuf, db: Database) -> Self {
        Shared { path, slot: RwLock::new(Slot::Open(Arc::new(db))) }
    }

    /// The usable database, for a reader. Cloning the `Arc` keeps the lock held only briefly.
    pub(crate) fn database(&self) -> Result<Arc<Database>, StoreError> {
        match &*self.slot.read().unwrap_or_else(PoisonError::into_inner) {
            Slot::Open(db) => Ok(Arc::clone(db)),
            Slot::Reopening => Err(StoreError::Reopening { path: self.path.clone() }),
            Slot::Closed => Err(StoreError::WriterStopped { path: self.path.clone() }),
        }
    }

    /// Takes the database out of the slot, leaving `next` in its place.
    fn take(&self, next: Slot) -> Option<Arc<Database>> {
        let mut slot = self.slot.write().unwrap_or_else(PoisonError::into_inner);
        match std::mem::replace(&mut *slot, next) {
            Slot::Open(db) => Some(db),
            Slot::Reopening | Slot::Closed => None,
        }
    }

    fn put(&self, db: Database) -> Arc<Database> {
        let db = Arc::new(db);
        *self.slot.write().unwrap_or_else(PoisonError::into_inner) = Slot::Open(Arc::clone(&db));
        db
    }
}

/// Why a batch failed. Every caller of the batch gets its own [`StoreError`] built from it.
#[derive(Debug, Clone)]
enum BatchError {
    Commit(Arc<redb::Error>),
    Reopen(Arc<StoreError>),
}

impl BatchError {
    fn for_caller(&self, path: &Path) -> StoreError {
        match self {
            BatchError::Commit(source) => {
                StoreError::Commit { path: path.to_owned(), source: Arc::clone(source) }
            }
            BatchError::Reopen(source) => {
                StoreError::Reopen { path: path.to_owned(), source: Arc::clone(source) }
            }
        }
    }
}

pub(crate) struct Writer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) opener: Opener,
    pub(crate) requests: Receiver<Request>,
}

impl Writer {
    /// Serves until every sender is gone and the queue is drained: `recv` hands out what was
    /// queued before it reports the disconnect, so a close never drops an accepted request.
    pub(crate) fn run(self) {
        while let Ok(first) = self.requests.recv() {
            let batch = self.drain(first);
            let result = self.apply(&batch);
            if let Err(e) = &result {
                warn!(path = %self.shared.path.display(), requests = batch.len(), error = ?e, "state commit failed");
            }
            for request in batch {
                let answer = result.as_ref().map_err(|e| e.for_caller(&self.shared.path)).copied();
                // A caller that stopped waiting still had its changes applied; nobody to tell.
                let _ = request.reply.send(answer);
            }
            // Only a failed commit poisons the handle; a failed reopen is retried by the next batch.
            if matches!(result, Err(BatchError::Commit(_))) {
                self.reopen();
            }
        }
        self.shutdown();
    }

    /// The first request plus everything queued behind it, up to the batch limit. Requests that
    /// arrive while a commit is syncing pile up here, which is what makes the next commit cheap.
    fn drain(&self, first: Request) -> Vec<Request> {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_REQUESTS {
            match self.requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        batch
    }

    /// Applies the batch in queue order in one transaction, durable when this returns `Ok`.
    fn apply(&self, batch: &[Request]) -> Result<(), BatchError> {
        if batch.iter().all(|request| request.ops.is_empty()) {
            // Nothing to write; earlier requests were committed by earlier batches.
            return Ok(());
        }
        let db = match self.shared.database() {
            Ok(db) => db,
            Err(_) => self.open().map_err(|e| BatchError::Reopen(Arc::new(e)))?,
        };
        let commit = || -> Result<(), redb::Error> {
            let mut txn = db.begin_write()?;
            txn.set_durability(Durability::Immediate)?;
            {
                let mut leases = txn.open_table(LEASES)?;
                let mut apps = txn.open_table(APPS)?;
                let mut reservations = txn.open_table(RESERVATIONS)?;
                let mut forwards = txn.open_table(FORWARDS)?;
                for op in batch.iter().flat_map(|request| &request.ops) {
                    match op {
                        Op::PutLease { key, value } => drop(leases.insert(key, value.as_slice())?),
                        Op::DeleteLease { key } => drop(leases.remove(key)?),
                        Op::PutApp { name, value } => drop(apps.insert(name.as_str(), value.as_slice())?),
                        Op::DeleteApp { name } => drop(apps.remove(name.as_str())?),
                        Op::PutReservation { mac, value } => {
                            drop(reservations.insert(mac.as_str(), value.as_slice())?)
                        }
                        Op::DeleteReservation { mac } => drop(reservations.remove(mac.as_str())?),
                        Op::PutForward { key, value } => {
                            drop(forwards.insert(key.as_str(), value.as_slice())?)
                        }
                        Op::DeleteForward { key } => drop(forwards.remove(key.as_str())?),
                    }
                }
            }
            txn.commit()?;
            Ok(())
        };
        commit().map_err(|e| BatchError::Commit(Arc::new(e)))
    }

    /// Drops the failed handle and opens the file again at once, so readers are back as soon as
    /// possible; if that fails too, the next batch tries again (and fails with the reason).
    fn reopen(&self) {
        drop(self.shared.take(Slot::Reopening));
        if let Err(e) = self.open() {
            warn!(path = %self.shared.path.display(), error = %e, "state store not reopened yet");
        }
    }

    fn open(&self) -> Result<Arc<Database>, StoreError> {
        let db = (self.opener)(&self.shared.path)?;
        info!(path = %self.shared.path.display(), "state store reopened");
        Ok(self.shared.put(db))
    }

    /// Closes the file, reporting what a plain drop would swallow. A reader still holding the
    /// handle keeps it open until it is done; then the drop closes it.
    fn shutdown(&self) {
        let Some(db) = self.shared.take(Slot::Closed) else { return };
        match Arc::try_unwrap(db) {
            Ok(db) => match db.close() {
                Ok(()) => debug!(path = %self.shared.path.display(), "state store closed"),
                Err(e) => error!(path = %self.shared.path.display(), error = %e, "closing state store"),
            },
            Err(_shared_with_reader) => {
                debug!(path = %self.shared.path.display(), "state store closes after last read")
            }
        }
    }
}
