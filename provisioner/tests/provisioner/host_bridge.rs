//! Host mode bridges, for real, in a fresh network namespace (the test thread unshares its
//! network namespace, so the host's links are never touched): created up with its stanza, a second
//! run changes nothing, a link without our stanza is used but never persisted or removed, and
//! removal takes the link and the stanza.

use futures_util::TryStreamExt;
use nix::sched::{CloneFlags, unshare};
use proximity_provisioner::bridge::host::{Ensured, HostBridge, stanza};

/// Whether `name` exists in the current thread's network namespace.
async fn link_exists(name: &str) -> anyhow::Result<bool> {
    let (connection, handle, _) = rtnetlink::new_connection()?;
    let task = tokio::spawn(connection);
    let found = handle.link().get().match_name(name.to_owned()).execute().try_next().await;
    task.abort();
    Ok(matches!(found, Ok(Some(_))))
}

async fn scenario() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let bridge = HostBridge::new("proximity-lan", dir.path());
    let first = bridge.ensure().await?;
    assert_eq!(first, Ensured { stanza_written: true, link_created: true, link_set_up: false });
    assert!(link_exists("proximity-lan").await?);
    assert_eq!(std::fs::read_to_string(&bridge.stanza_path)?, stanza("proximity-lan"));
    let second = bridge.ensure().await?;
    assert_eq!(second, Ensured { stanza_written: false, link_created: false, link_set_up: false });

    // The same link seen from a directory without our stanza: someone else's.
    let elsewhere = tempfile::tempdir()?;
    let foreign = HostBridge::new("proximity-lan", elsewhere.path());
    assert_eq!(
        foreign.ensure().await?,
        Ensured { stanza_written: false, link_created: false, link_set_up: false }
    );
    assert!(!foreign.stanza_path.exists());
    assert!(!foreign.remove().await?);
    assert!(link_exists("proximity-lan").await?);

    assert!(bridge.remove().await?);
    assert!(!link_exists("proximity-lan").await?);
    assert!(!bridge.stanza_path.exists());
    assert!(!bridge.remove().await?);
    Ok(())
}

#[test]
fn host_bridge_lifecycle_in_a_namespace() -> anyhow::Result<()> {
    anyhow::ensure!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (CI runs as root): it makes a bridge in a namespace"
    );
    std::thread::spawn(|| -> anyhow::Result<()> {
        unshare(CloneFlags::CLONE_NEWNET)?;
        tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(scenario())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the namespace thread panicked"))?
}
