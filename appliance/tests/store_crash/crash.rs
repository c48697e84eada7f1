//! SIGKILL a process that commits as fast as it can, then check every acknowledged lease.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use proximity_appliance::state::{Change, Store};

use crate::lease;

const DIR_ENV: &str = "PROXIMITY_STORE_CRASH_DIR";
const ROUND_ENV: &str = "PROXIMITY_STORE_CRASH_ROUND";
/// Each round kills the same store again, at another moment, over records of earlier rounds.
const ROUNDS: u32 = 5;
const CHILD_TASKS: usize = 64;
/// How long a child may take to open the store and acknowledge its first commit.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// The kill lands at a random moment this long after the first acknowledgement, at most.
const MAX_RUN: Duration = Duration::from_millis(300);
const ACK: &str = "ACK ";

/// The writer process: opens the store and commits from many tasks until it is killed,
/// printing each sequence number only after its commit returned `Ok`.
#[test]
#[ignore = "child process of acknowledged_commits_survive_sigkill; does nothing on its own"]
fn crash_child() {
    let (Some(dir), Some(round)) = (std::env::var_os(DIR_ENV), std::env::var_os(ROUND_ENV)) else {
        return;
    };
    let round: u32 = round.to_str().and_then(|r| r.parse().ok()).expect("round number");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap();
    runtime.block_on(async move {
        let store = Store::open(Path::new(&dir)).expect("child opens the store");
        let next = Arc::new(AtomicU32::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..CHILD_TASKS {
            let (store, next) = (store.clone(), Arc::clone(&next));
            tasks.spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = store.commit(vec![Change::PutLease(lease(n, round))]).await {
                        eprintln!("commit of {n} failed: {e:?}");
                        std::process::exit(3);
                    }
                    // One write per line, so a kill can cut off at most the line being written.
                    let mut out = std::io::stdout().lock();
                    out.write_all(format!("{ACK}{n}\n").as_bytes()).unwrap();
                    out.flush().unwrap();
                }
            });
        }
        tasks.join_all().await;
    });
}

#[test]
fn acknowledged_commits_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    // Sequence number -> the latest round that acknowledged it.
    let mut acknowledged: HashMap<u32, u32> = HashMap::new();
    for round in 1..=ROUNDS {
        let run_for = random_duration(MAX_RUN);
        let acks = run_and_kill(dir.path(), round, run_for);
        eprintln!("round {round}: killed {run_for:?} after the first ack, {} acknowledged", acks.len());
        for n in acks {
            acknowledged.insert(n, round);
        }

        let store = Store::open(dir.path()).expect("the store opens cleanly after SIGKILL");
        let stored: HashMap<_, _> = store.leases().unwrap().into_iter().map(|l| (l.ip, l)).collect();
        for (&n, &acked_round) in &acknowledged {
            let expected_ip = lease(n, acked_round).ip;
            let found =
                stored.get(&expected_ip).unwrap_or_else(|| panic!("acknowledged {expected_ip} is missing"));
            // A later round may have overwritten it (acknowledged or not), never an earlier one.
            let found_round = u32::try_from(found.starts - lease(0, 0).starts).unwrap();
            assert!(
                (acked_round..=round).contains(&found_round) && *found == lease(n, found_round),
                "{expected_ip}: acknowledged in round {acked_round}, found {found:?}"
            );
        }
        store.close();
    }
}

/// Runs one child until `run_for` after its first acknowledgement, SIGKILLs it, and returns
/// every sequence number it acknowledged (complete lines only).
fn run_and_kill(dir: &Path, round: u32, run_for: Duration) -> Vec<u32> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash::crash_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(DIR_ENV, dir)
        .env(ROUND_ENV, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (lines, acks) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        let mut line = Vec::new();
        while stdout.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            // A line without its newline was being written when the kill landed.
            if let Some(n) = line.strip_suffix(b"\n").and_then(|l| l.strip_prefix(ACK.as_bytes())) {
                let n = std::str::from_utf8(n).unwrap().parse::<u32>().unwrap();
                if lines.send(n).is_err() {
                    break;
                }
            }
            line.clear();
        }
    });
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    let mut acked = Vec::new();
    let ready_by = Instant::now() + READY_TIMEOUT;
    let mut kill_at = None;
    loop {
        let deadline = kill_at.unwrap_or(ready_by);
        match acks.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(n) => {
                acked.push(n);
                kill_at.get_or_insert_with(|| Instant::now() + run_for);
            }
            Err(RecvTimeoutError::Timeout) => break,
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if kill_at.is_some_and(|at| Instant::now() >= at) {
            break;
        }
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    // Lines the child printed before it died were acknowledged too.
    acked.extend(acks.iter());
    reader.join().unwrap();
    let stderr = errors.join().unwrap();
    assert_eq!(status.signal(), Some(9), "child ended on its own ({status}); stderr:\n{stderr}");
    assert!(!acked.is_empty(), "child acknowledged nothing within {READY_TIMEOUT:?}; stderr:\n{stderr}");
    acked
}

/// A random duration in `[max / 10, max]`; no RNG crate for one number per round.
fn random_duration(max: Duration) -> Duration {
    let fraction = RandomState::new().hash_one(Instant::now()) % 1000;
    (max / 10).max(max * u32::try_from(fraction).unwrap() / 1000)
}
