//! Unit tests of the store: what a caller sees across reopen, batching, damaged files, schema
//! checks, locking, close, and recovery after a commit that failed on I/O.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::net::Ipv4Addr;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use proximity_config::MacAddr;
use redb::backends::FileBackend;
use redb::{BackendError, Builder, Database, StorageBackend, TableDefinition};

use super::codec::{self, LEASES, META, SCHEMA_VERSION, SCHEMA_VERSION_KEY};
use super::file::FILE_NAME;
use super::{Change, Lease, LeaseState, Store, StoreError};
use redb::ReadableDatabase;

fn lease(ip: Ipv4Addr, tag: u64) -> Lease {
    let [_, _, c, d] = ip.octets();
    Lease {
        ip,
        client_id: vec![1, 0x52, 0x54, 0, 0, c, d],
        mac: MacAddr([0x52, 0x54, 0, 0, c, d]),
        hostname: (tag % 2 == 0).then(|| format!("host-{c}-{d}-{tag}")),
        state: if tag % 3 == 0 { LeaseState::Released } else { LeaseState::Active },
        starts: 1_700_000_000 + tag,
        expires: 1_700_003_600 + tag,
    }
}

fn ip(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 20, 0, 0)) + n)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap()
}

/// Opens, reads everything, closes: what the appliance sees at its next start.
fn reopen_leases(dir: &Path) -> Vec<Lease> {
    let store = Store::open(dir).unwrap();
    let leases = store.leases().unwrap();
    store.close();
    leases
}

/// A store file with a few committed leases, closed.
fn committed_store(dir: &Path) -> PathBuf {
    let store = Store::open(dir).unwrap();
    let changes = (1..=50).map(|n| Change::PutLease(lease(ip(n), n.into()))).collect();
    runtime().block_on(store.commit(changes)).unwrap();
    store.close();
    dir.join(FILE_NAME)
}

/// Asserts the open fails, the message names the file, and the file is byte for byte as before.
fn assert_refused_untouched(dir: &Path, bytes: &[u8]) -> StoreError {
    let path = dir.join(FILE_NAME);
    let err = Store::open(dir).unwrap_err();
    let message = format!("{err}");
    assert!(
        message.contains(&path.display().to_string()),
        "error does not name {}: {message}",
        path.display()
    );
    assert!(fs::read(&path).unwrap() == bytes, "a refused open changed {}", path.display());
    err
}

#[test]
fn commits_survive_reopen_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.leases().unwrap(), []);
    let rt = runtime();
    rt.block_on(store.commit((1..=5).map(|n| Change::PutLease(lease(ip(n), 1))).collect())).unwrap();
    rt.block_on(store.commit(vec![
        Change::DeleteLease(ip(2)),
        Change::PutLease(lease(ip(3), 7)),
        Change::DeleteLease(ip(99)),
    ]))
    .unwrap();
    // Within one commit, a later change to the same address wins.
    rt.block_on(store.commit(vec![Change::PutLease(lease(ip(4), 8)), Change::PutLease(lease(ip(4), 9))]))
        .unwrap();
    drop(store);

    let expected = vec![lease(ip(1), 1), lease(ip(3), 7), lease(ip(4), 9), lease(ip(5), 1)];
    assert_eq!(reopen_leases(dir.path()), expected);
}

#[test]
fn concurrent_commits_all_succeed_and_persist() {
    const CALLERS: u32 = 500;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    runtime().block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..CALLERS {
            let store = store.clone();
            tasks.spawn(async move { store.commit(vec![Change::PutLease(lease(ip(n), n.into()))]).await });
        }
        while let Some(result) = tasks.join_next().await {
            result.unwrap().unwrap();
        }
    });
    store.close();
    let expected: Vec<Lease> = (0..CALLERS).map(|n| lease(ip(n), n.into())).collect();
    assert_eq!(reopen_leases(dir.path()), expected);
}

#[test]
fn concurrent_commits_apply_in_submission_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // `join!` polls in argument order, so each commit is queued before the next; they may share
    // a batch, and the last submitted must still win.
    let (a, b, c) = runtime().block_on(async {
        tokio::join!(
            store.commit(vec![Change::PutLease(lease(ip(1), 1))]),
            store.commit(vec![Change::DeleteLease(ip(1)), Change::PutLease(lease(ip(2), 2))]),
            store.commit(vec![Change::PutLease(lease(ip(1), 3))]),
        )
    });
    a.unwrap();
    b.unwrap();
    c.unwrap();
    assert_eq!(store.leases().unwrap(), [lease(ip(1), 3), lease(ip(2), 2)]);
}

#[test]
fn submit_orders_by_call_not_by_await() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let rt = runtime();
    // The same address twice: the second submit must win even when awaited first.
    let first = lease(ip(7), 1);
    let second = lease(ip(7), 2);
    rt.block_on(async {
        let a = store.submit(vec![Change::PutLease(first)]).unwrap();
        let b = store.submit(vec![Change::PutLease(second.clone())]).unwrap();
        let b = tokio::spawn(b);
        b.await.unwrap().unwrap();
        a.await.unwrap();
    });
    store.close();
    assert_eq!(reopen_leases(dir.path()), vec![second]);
}

#[test]
fn garbage_file_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    // Deterministic noise (xorshift), long enough to cover redb's header and first pages.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let garbage: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect();
    fs::write(dir.path().join(FILE_NAME), &garbage).unwrap();
    let err = assert_refused_untouched(dir.path(), &garbage);
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
}

#[test]
fn text_file_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let text = b"leases are in /var/lib/misc/dnsmasq.leases\n".repeat(100);
    fs::write(dir.path().join(FILE_NAME), &text).unwrap();
    assert_refused_untouched(dir.path(), &text);
}

#[test]
fn truncated_store_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = committed_store(dir.path());
    let whole = fs::read(&path).unwrap();
    // Cut inside the header, inside the data, and at nothing at all (an empty file under our
    // name is damage, not a fresh store: `open` never creates over an existing file).
    for len in [whole.len() / 2, 4096 + 100, 300, 0] {
        fs::write(&path, &whole[..len]).unwrap();
        let err = assert_refused_untouched(dir.path(), &whole[..len]);
        assert!(matches!(err, StoreError::Corrupt { .. }), "cut at {len}: {err:?}");
    }
}

#[test]
fn damaged_bytes_are_refused_or_read_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = committed_store(dir.path());
    let expected = reopen_leases(dir.path());
    let clean = fs::read(&path).unwrap();
    let mut refused = 0;
    // One flipped byte at a time, spread over header, tree pages and free space: redb's
    // checksums must catch it, or it hit bytes no committed data uses.
    for offset in (0..clean.len()).step_by(clean.len() / 61) {
        let mut damaged = clean.clone();
        damaged[offset] ^= 0x5a;
        fs::write(&path, &damaged).unwrap();
        match Store::open(dir.path()) {
            Err(_) => {
                let err = assert_refused_untouched(dir.path(), &damaged);
                assert!(matches!(err, StoreError::Corrupt { .. }), "flip at {offset}: {err:?}");
                refused += 1;
            }
            Ok(store) => assert_eq!(store.leases().unwrap(), expected, "flip at {offset} misread"),
        }
    }
    assert!(refused > 0, "no flip hit a live page; the test is not probing anything");
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = committed_store(dir.path());
    {
        let db = Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META).unwrap().insert(SCHEMA_VERSION_KEY, SCHEMA_VERSION + 1).unwrap();
        txn.commit().unwrap();
    }
    let err = Store::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaVersion { found, supported, .. } if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
        "{err:?}"
    );
}

#[test]
fn foreign_redb_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        let other: TableDefinition<&str, &str> = TableDefinition::new("something-else");
        txn.open_table(other).unwrap().insert("k", "v").unwrap();
        txn.commit().unwrap();
    }
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Foreign { .. }), "{err:?}");
}

#[test]
fn second_open_is_refused_while_first_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let first = Store::open(dir.path()).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    // The refused open did not disturb the first.
    runtime().block_on(first.commit(vec![Change::PutLease(lease(ip(1), 1))])).unwrap();
    first.close();
    assert_eq!(reopen_leases(dir.path()), [lease(ip(1), 1)]);
}

#[test]
fn undecodable_record_is_an_error_naming_its_address() {
    let dir = tempfile::tempdir().unwrap();
    let path = committed_store(dir.path());
    {
        let db = Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(LEASES).unwrap();
            table.insert(u32::from(ip(7)), br#"{"ip":"10.20.0.7","state":"bogus"}"#.as_slice()).unwrap();
            let misplaced = serde_json::to_vec(&lease(ip(9), 9)).unwrap();
            table.insert(u32::from(ip(8)), misplaced.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let err = store.leases().unwrap_err();
    assert!(matches!(err, StoreError::DecodeLease { ip: bad, .. } if bad == ip(7)), "{err:?}");
    assert!(err.to_string().contains("10.20.0.7"), "{err}");

    runtime().block_on(store.commit(vec![Change::DeleteLease(ip(7))])).unwrap();
    let err = store.leases().unwrap_err();
    assert!(
        matches!(err, StoreError::LeaseKeyMismatch { key, recorded, .. } if key == ip(8) && recorded == ip(9)),
        "{err:?}"
    );
}

#[test]
fn close_finishes_every_queued_commit_then_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Poll each commit once by hand: that queues it, in order, without waiting for it.
    let mut cx = Context::from_waker(Waker::noop());
    let mut commits: Vec<_> =
        (0..300).map(|n| Box::pin(store.commit(vec![Change::PutLease(lease(ip(n), 0))]))).collect();
    let mut answered = 0;
    for commit in &mut commits {
        if let Poll::Ready(result) = commit.as_mut().poll(&mut cx) {
            result.unwrap();
            answered += 1;
        }
    }
    assert!(answered < commits.len(), "the writer answered everything before close; nothing was queued");

    store.close();
    for commit in &mut commits {
        match commit.as_mut().poll(&mut cx) {
            Poll::Ready(result) => result.unwrap(),
            Poll::Pending => panic!("close returned with a commit unanswered"),
        }
    }
    let err = runtime().block_on(store.commit(vec![Change::DeleteLease(ip(0))])).unwrap_err();
    assert!(matches!(err, StoreError::WriterStopped { .. }), "{err:?}");
    assert!(matches!(store.leases(), Err(StoreError::WriterStopped { .. })));
    drop(commits);
    drop(store);

    let expected: Vec<Lease> = (0..300).map(|n| lease(ip(n), 0)).collect();
    assert_eq!(reopen_leases(dir.path()), expected);
}

/// A file backend whose writes fail while `failing` is set, like a full or failing disk.
#[derive(Debug)]
struct FaultyBackend {
    file: FileBackend,
    failing: Arc<AtomicBool>,
}

impl FaultyBackend {
    fn check(&self) -> Result<(), std::io::Error> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("injected write failure"));
        }
        Ok(())
    }
}

impl StorageBackend for FaultyBackend {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.file.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.file.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.check()?;
        self.file.set_len(len)
    }
    fn sync_data(&self) -> Result<(), std::io::Error> {
        self.check()?;
        self.file.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.check()?;
        self.file.write(offset, data)
    }
    fn close(&self) -> Result<(), std::io::Error> {
        self.file.close()
    }
    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.try_lock_range(start, end)
    }
    fn try_lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.try_lock_shared_range(start, end)
    }
    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_range(start, end)
    }
    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_shared_range(start, end)
    }
    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.unlock_range(start, end)
    }
    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.query_lock_range(start, end)
    }
}

#[test]
fn failed_commit_fails_its_whole_batch_and_the_store_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = committed_store(dir.path());
    let failing = Arc::new(AtomicBool::new(false));
    let faults = Arc::clone(&failing);
    let opener = Box::new(move |path: &Path| {
        let file = fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
        let backend = FaultyBackend { file: FileBackend::new(file).unwrap(), failing: Arc::clone(&faults) };
        let db = Builder::new()
            .set_check_integrity_on_open(true)
            .create_with_backend(backend)
            .map_err(|e| StoreError::Open { path: path.to_owned(), source: e.into() })?;
        codec::check_schema(&db, path)?;
        Ok(db)
    });
    let store = Store::start(path, opener).unwrap();
    let rt = runtime();
    rt.block_on(store.commit(vec![Change::PutLease(lease(ip(100), 1))])).unwrap();

    failing.store(true, Ordering::SeqCst);
    let results = rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for n in 200..220 {
            let store = store.clone();
            tasks.spawn(async move { store.commit(vec![Change::PutLease(lease(ip(n), 1))]).await });
        }
        tasks.join_all().await
    });
    // The batch that hit the fault fails as a commit; batches behind it find the file not yet
    // reopened (the reopen writes, and fails too). Nobody is told "durable".
    let errors: Vec<StoreError> = results.into_iter().map(Result::unwrap_err).collect();
    assert!(errors.iter().any(|e| matches!(e, StoreError::Commit { .. })), "{errors:?}");
    for err in &errors {
        assert!(matches!(err, StoreError::Commit { .. } | StoreError::Reopen { .. }), "{err:?}");
    }

    // Once the disk works again, the writer serves again without a restart.
    failing.store(false, Ordering::SeqCst);
    rt.block_on(store.commit(vec![Change::PutLease(lease(ip(101), 1))])).unwrap();
    store.close();
    drop(store);

    let stored = reopen_leases(dir.path());
    assert!(stored.contains(&lease(ip(100), 1)) && stored.contains(&lease(ip(101), 1)));
    assert!(
        !stored.iter().any(|l| (200..220).map(ip).any(|failed| failed == l.ip)),
        "a commit reported as failed is in the store"
    );
    assert_eq!(stored.len(), 52);
}

#[test]
fn store_is_shareable_across_tasks() {
    fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync_clone::<Store>();
}

fn app(name: &str, port: u16) -> proximity_config::api::App {
    proximity_config::api::App {
        name: name.into(),
        backend: proximity_config::api::Backend::Ip(ip(7)),
        port,
        health_check: None,
    }
}

#[test]
fn apps_are_kept_across_reopen_in_name_order_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    {
        let store = Store::open(dir.path()).unwrap();
        let changes = vec![Change::PutApp(app("web", 80)), Change::PutApp(app("api", 8080))];
        rt.block_on(store.commit(changes)).unwrap();
        rt.block_on(store.commit(vec![Change::PutApp(app("web", 8000)), Change::PutLease(lease(ip(9), 1))]))
            .unwrap();
        store.close();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.apps().unwrap(), vec![app("api", 8080), app("web", 8000)]);
    rt.block_on(store.commit(vec![Change::DeleteApp("api".into())])).unwrap();
    assert_eq!(store.apps().unwrap(), vec![app("web", 8000)]);
    assert_eq!(store.leases().unwrap().len(), 1);
}

#[test]
fn a_version_1_store_is_upgraded_with_its_leases_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = committed_store(dir.path());
    let before = Store::open(dir.path()).unwrap().leases().unwrap();
    {
        // What a version-1 build wrote: no apps table.
        let db = Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.delete_table(codec::APPS).unwrap();
        txn.open_table(META).unwrap().insert(SCHEMA_VERSION_KEY, 1).unwrap();
        txn.commit().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.leases().unwrap(), before);
    assert_eq!(store.apps().unwrap(), vec![]);
    runtime().block_on(store.commit(vec![Change::PutApp(app("web", 80))])).unwrap();
    store.close();
    let db = Database::open(&path).unwrap();
    let version =
        db.begin_read().unwrap().open_table(META).unwrap().get(SCHEMA_VERSION_KEY).unwrap().unwrap().value();
    assert_eq!(version, SCHEMA_VERSION);
}

#[test]
fn an_app_stored_under_another_name_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = committed_store(dir.path());
    {
        let db = Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        let body = serde_json::to_vec(&app("web", 80)).unwrap();
        txn.open_table(codec::APPS).unwrap().insert("api", body.as_slice()).unwrap();
        txn.commit().unwrap();
    }
    let err = Store::open(dir.path()).unwrap().apps().unwrap_err();
    assert!(
        matches!(&err, StoreError::AppKeyMismatch { key, recorded, .. } if key == "api" && recorded == "web"),
        "{err:?}"
    );
}

#[test]
fn api_reservations_are_kept_in_mac_order_and_deleted() {
    use proximity_config::api::ApiReservation;
    let r = |n: u8| ApiReservation { mac: MacAddr([0x52, 0x54, 0, 0, 0, n]), ip: ip(n.into()), name: None };
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    {
        let store = Store::open(dir.path()).unwrap();
        rt.block_on(store.commit(vec![Change::PutReservation(r(9)), Change::PutReservation(r(3))])).unwrap();
        store.close();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.reservations().unwrap(), vec![r(3), r(9)]);
    rt.block_on(store.commit(vec![Change::DeleteReservation(r(3).mac)])).unwrap();
    assert_eq!(store.reservations().unwrap(), vec![r(9)]);
}

#[test]
fn api_forwards_are_kept_in_port_order_replaced_and_deleted() {
    use proximity_config::{PortForward, Protocol};
    let lan = "10.20.0.1/24".parse().unwrap();
    let f = |proto: &str, port: u32, to: &str| PortForward::check(proto, port, to, lan).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    {
        let store = Store::open(dir.path()).unwrap();
        let changes = [
            f("udp", 51820, "10.20.0.7:51820"),
            f("tcp", 80, "10.20.0.5:8080"),
            f("tcp", 2222, "10.20.0.5:22"),
        ]
        .into_iter()
        .map(Change::PutForward)
        .collect();
        rt.block_on(store.commit(changes)).unwrap();
        // The same port again replaces: one WAN port goes to one place.
        rt.block_on(store.commit(vec![Change::PutForward(f("tcp", 2222, "10.20.0.6:22"))])).unwrap();
        store.close();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.forwards().unwrap(),
        [f("tcp", 80, "10.20.0.5:8080"), f("tcp", 2222, "10.20.0.6:22"), f("udp", 51820, "10.20.0.7:51820")]
    );
    rt.block_on(store.commit(vec![Change::DeleteForward(Protocol::Tcp, 80)])).unwrap();
    assert_eq!(store.forwards().unwrap().len(), 2);
}

#[test]
fn a_version_2_store_gets_a_forwards_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = committed_store(dir.path());
    {
        let db = Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.delete_table(codec::FORWARDS).unwrap();
        txn.open_table(META).unwrap().insert(SCHEMA_VERSION_KEY, 2).unwrap();
        txn.commit().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.forwards().unwrap(), vec![]);
    assert_eq!(store.leases().unwrap().len(), 50);
}
