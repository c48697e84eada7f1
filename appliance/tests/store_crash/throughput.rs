//! Commits per second, one sequential caller vs. many concurrent ones. A measurement, not a
//! test: it asserts only that every commit succeeded. Run it in release:
//! `cargo test --release -p proximity-appliance --test store_crash -- --ignored --nocapture throughput`

use std::time::{Duration, Instant};

use proximity_appliance::state::{Change, Store};

use crate::lease;

const SEQUENTIAL_COMMITS: u32 = 500;
const CONCURRENT_CALLERS: u32 = 64;
const COMMITS_PER_CALLER: u32 = 100;

#[test]
#[ignore = "measurement; prints commits/s"]
fn commit_throughput() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();

    let started = Instant::now();
    runtime.block_on(async {
        for n in 0..SEQUENTIAL_COMMITS {
            store.commit(vec![Change::PutLease(lease(n, 1))]).await.unwrap();
        }
    });
    report("1 sequential caller", SEQUENTIAL_COMMITS, started.elapsed());

    let started = Instant::now();
    runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for caller in 0..CONCURRENT_CALLERS {
            let store = store.clone();
            tasks.spawn(async move {
                for i in 0..COMMITS_PER_CALLER {
                    let n = 100_000 + caller * COMMITS_PER_CALLER + i;
                    store.commit(vec![Change::PutLease(lease(n, 1))]).await.unwrap();
                }
            });
        }
        tasks.join_all().await;
    });
    report(
        &format!("{CONCURRENT_CALLERS} concurrent callers"),
        CONCURRENT_CALLERS * COMMITS_PER_CALLER,
        started.elapsed(),
    );
    store.close();
}

fn report(what: &str, commits: u32, elapsed: Duration) {
    let per_second = f64::from(commits) / elapsed.as_secs_f64();
    println!("{what}: {commits} commits in {elapsed:.2?} = {per_second:.0} commits/s");
}
