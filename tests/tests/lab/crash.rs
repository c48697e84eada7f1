//! Leases survive a crash: `kill -9` during a burst of 200 relayed clients, restart, and no
//! address is ever acknowledged to two clients; every acknowledged lease is still known.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use proximity_tests::Lab;
use proximity_tests::process::run;
use proximity_tests::wait;

const BURST: &str = env!("CARGO_BIN_EXE_dhcp-burst");
/// The relay's address on the LAN: replies to relayed messages come back here.
const GIADDR: &str = "10.20.0.2";
const CLIENTS: usize = 200;

/// `mac -> ip` of every `ack` line; fails if one address went to two MACs.
fn acks(lines: &[String]) -> Result<HashMap<String, String>> {
    let mut by_mac = HashMap::new();
    let mut owner: HashMap<String, String> = HashMap::new();
    for line in lines {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if let ["ack", mac, ip] = parts[..] {
            if let Some(other) = owner.insert(ip.to_owned(), mac.to_owned()) {
                ensure!(other == mac, "{ip} acknowledged to both {other} and {mac}");
            }
            by_mac.insert(mac.to_owned(), ip.to_owned());
        }
    }
    Ok(by_mac)
}

#[test]
fn kill9_during_a_burst_loses_no_acknowledged_lease() -> Result<()> {
    let lab = Lab::builder().clients(1).build()?;
    let relay = lab.client(0);
    run(relay.command("ip").args(["addr", "add", &format!("{GIADDR}/24"), "dev", relay.iface()]))?;
    let mut config = lab.config();
    // Room for two bursts of 200 clients.
    config.lan.address = "10.20.0.1/22".into();
    config.dhcp.range = "10.20.1.0-10.20.3.250".into();
    lab.start_appliance(&config)?;

    // 200 clients a second: the burst lasts about a second; the reader kills the appliance the
    // moment it sees the 40th ack, so the kill lands mid-burst with commits in flight.
    let n = CLIENTS.to_string();
    let args = ["--giaddr", GIADDR, "--clients", &n, "--rate", "200", "--retry-ms", "300", "--tries", "60"];
    let mut child =
        relay.command(BURST).args(args).stdout(Stdio::piped()).spawn().context("cannot start dhcp-burst")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let (first, acked_before_kill) = std::thread::scope(|s| {
        let reader = s.spawn(|| -> Result<(Vec<String>, usize)> {
            let mut lines = Vec::new();
            let mut killed_at = None;
            for line in BufReader::new(stdout).lines() {
                lines.push(line?);
                let acked = lines.iter().filter(|l| l.starts_with("ack")).count();
                if killed_at.is_none() && acked >= 40 {
                    lab.appliance().kill9()?;
                    killed_at = Some(acked);
                }
            }
            Ok((lines, killed_at.context("the burst ended before 40 acks")?))
        });
        // Restart as soon as the kill is seen (the reader is still reading the burst).
        let restarted = wait::until(Duration::from_secs(20), "the appliance killed", || {
            Ok(lab.appliance().pid().is_none().then_some(()))
        })
        .and_then(|()| lab.appliance().start_again());
        let read = reader.join().map_err(|_| anyhow::anyhow!("reader thread panicked"))?;
        restarted?;
        read
    })?;
    let status = child.wait()?;
    ensure!(status.success(), "dhcp-burst failed: {status}");
    // The restarted appliance logs how many lease records it found: fewer than the burst's
    // clients proves the kill landed with the burst unfinished.
    let log = lab.appliance().log();
    let stored: Option<usize> = log
        .lines()
        .filter(|l| l.contains(" starting "))
        .nth(1)
        .and_then(|l| l.split("leases=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok());
    eprintln!("kill after {acked_before_kill} acks seen; {stored:?} leases stored at restart");
    ensure!(
        acked_before_kill < CLIENTS && stored.is_some_and(|n| n < CLIENTS),
        "the kill did not land mid-burst ({acked_before_kill} acks seen, {stored:?} stored):\n{log}"
    );
    ensure!(
        first.len() == CLIENTS,
        "expected {CLIENTS} outcomes, got {}:\n{}",
        first.len(),
        first.join("\n")
    );
    let failed: Vec<&String> = first.iter().filter(|l| !l.starts_with("ack")).collect();
    ensure!(
        failed.is_empty(),
        "clients without a lease after the restart: {failed:#?}\n{}",
        lab.appliance().log()
    );
    let first_acks = acks(&first)?;
    ensure!(first_acks.len() == CLIENTS, "expected {CLIENTS} distinct clients, got {}", first_acks.len());

    // Every acknowledged lease is still known to the restarted server.
    let acked_file = lab.dir().join("acked.txt");
    std::fs::write(&acked_file, first.join("\n"))?;
    let out = run(relay.command(BURST).args(["--giaddr", GIADDR, "--reboot"]).arg(&acked_file))?;
    let confirmed = acks(&out.lines().map(str::to_owned).collect::<Vec<_>>())?;
    if confirmed != first_acks {
        let lost: Vec<_> = first_acks.iter().filter(|(m, ip)| confirmed.get(*m) != Some(*ip)).collect();
        bail!("{} leases not confirmed after restart: {lost:?}\n{out}", lost.len());
    }

    // New clients never get an address that is already leased.
    let out = run(relay.command(BURST).args(["--giaddr", GIADDR, "--clients", &n, "--prefix", "c0"]))?;
    let second = acks(&out.lines().map(str::to_owned).collect::<Vec<_>>())?;
    ensure!(second.len() == CLIENTS, "second burst: {} leases\n{out}", second.len());
    let taken: HashSet<&String> = first_acks.values().collect();
    let reused: Vec<_> = second.iter().filter(|(_, ip)| taken.contains(ip)).collect();
    ensure!(reused.is_empty(), "addresses leased twice after the crash: {reused:?}");
    Ok(())
}
