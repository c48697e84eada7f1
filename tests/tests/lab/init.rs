//! The appliance as a container's init: PID 1 of its own PID namespace (as under LXC) reaps the
//! orphans re-parented to it (but not the `nft` runs it waits for itself: NAT comes up), and
//! stops cleanly on SIGPWR (what `lxc-stop` sends) and SIGTERM.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use nix::sys::signal::Signal;
use proximity_tests::process::{children_of, run, signal, spawn_logged, wait_exit};
use proximity_tests::{Lab, appliance, wait};

fn as_pid1_stops_on(stop_signal: Signal) -> Result<()> {
    let lab = Lab::builder().clients(0).build()?;
    let config = lab.config();
    std::fs::create_dir_all(&config.state.dir)?;
    let config_path = lab.dir().join("pid1.toml");
    std::fs::write(&config_path, config.to_toml()?)?;
    let log_path = lab.dir().join("pid1.log");
    let mut cmd = lab.appliance_netns().command("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc"]).arg(appliance::binary()?).arg("--config").arg(&config_path);
    let mut unshare = spawn_logged(&mut cmd, &log_path)?;
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let result = (|| -> Result<()> {
        wait::until(Duration::from_secs(20), "the appliance to listen as pid 1", || {
            Ok((log().contains("listening for dhcp") && log().contains("running as pid 1")).then_some(()))
        })?;
        // NAT ran nft and read its exit status and output while the reaper collects orphans.
        wait::until(Duration::from_secs(20), "nat in force as pid 1", || {
            Ok(log().contains("nat: ruleset in force").then_some(()))
        })?;
        let init = *children_of(unshare.id()).first().context("unshare has no child")?;

        // A shell inside the namespace starts two sleeps and exits at once: the sleeps are
        // orphaned to PID 1, which must collect them when they end.
        let pid = init.to_string();
        run(Command::new("nsenter").args([
            "--target",
            &pid,
            "--pid",
            "--mount",
            "--",
            "sh",
            "-c",
            "sleep 0.3 & sleep 0.4 & exit 0",
        ]))?;
        wait::until(Duration::from_secs(10), "pid 1 to reap its orphans", || {
            Ok(children_of(init).is_empty().then_some(()))
        })
        .with_context(|| format!("children of pid 1 left: {:?}", children_of(init)))?;

        signal(init, stop_signal)?;
        let status =
            wait_exit(&mut unshare, Duration::from_secs(10))?.context("no exit within 10 s of the signal")?;
        ensure!(status.success(), "graceful stop should exit 0, got {status}");
        ensure!(
            log().contains("mode=\"graceful\"") || log().contains("mode=graceful"),
            "no graceful stop logged"
        );
        Ok(())
    })();
    if unshare.try_wait()?.is_none() {
        let _ = unshare.kill();
        let _ = unshare.wait();
    }
    result.with_context(|| format!("appliance log:\n{}", log()))
}

#[test]
fn as_pid1_it_reaps_orphans_and_stops_on_sigpwr() -> Result<()> {
    as_pid1_stops_on(Signal::SIGPWR)
}

#[test]
fn as_pid1_it_stops_on_sigterm() -> Result<()> {
    as_pid1_stops_on(Signal::SIGTERM)
}
