//! Hostile input: malformed datagrams are dropped and the server keeps serving; a flood of
//! DISCOVERs from invented MACs does not keep a real client from getting a lease or lock the pool.

use std::process::Stdio;

use anyhow::{Context, Result, ensure};
use proximity_tests::Lab;
use proximity_tests::process::run;

const BURST: &str = env!("CARGO_BIN_EXE_dhcp-burst");
const GIADDR: &str = "10.20.0.2";

fn add_relay_address(lab: &Lab, i: usize) -> Result<()> {
    let relay = lab.client(i);
    run(relay.command("ip").args(["addr", "add", &format!("{GIADDR}/24"), "dev", relay.iface()]))?;
    Ok(())
}

fn acks(out: &str) -> usize {
    out.lines().filter(|l| l.starts_with("ack ")).count()
}

#[test]
fn malformed_datagrams_are_dropped_and_serving_goes_on() -> Result<()> {
    let lab = Lab::builder().clients(1).build()?;
    add_relay_address(&lab, 0)?;
    lab.start_appliance(&lab.config())?;
    let out = run(lab.client(0).command(BURST).args([
        "--giaddr",
        GIADDR,
        "--hostile",
        "20000",
        "--clients",
        "20",
    ]))?;
    ensure!(out.starts_with("hostile 20000 sent"), "{out}");
    ensure!(acks(&out) == 20, "after the hostile datagrams 20 clients should get leases:\n{out}");
    let log = lab.appliance().log();
    ensure!(lab.appliance().pid().is_some(), "the appliance died:\n{log}");
    ensure!(!log.contains("panicked"), "the appliance panicked:\n{log}");
    Ok(())
}

#[test]
fn a_discover_flood_does_not_starve_a_real_client() -> Result<()> {
    let lab = Lab::builder().clients(2).build()?;
    add_relay_address(&lab, 0)?;
    let mut config = lab.config();
    // 16 addresses, so at most 2 held offers.
    config.dhcp.range = "10.20.0.100-10.20.0.115".into();
    lab.start_appliance(&config)?;

    // 20000 DISCOVERs from random MACs at 4000/s while a real client asks for a lease.
    let mut flood = lab.client(0).command(BURST);
    flood
        .args(["--giaddr", GIADDR, "--flood", "20000", "--rate", "4000", "--clients", "0"])
        .stdout(Stdio::piped());
    let mut flood = flood.spawn().context("cannot start the flood")?;
    let lease = lab.client(1).udhcpc().obtain();
    let still_flooding = flood.try_wait()?.is_none();
    let out = flood.wait_with_output()?;
    let lease = lease.context("a real client got no lease during the flood")?;
    ensure!(still_flooding, "the flood ended before the client asked; the test proves nothing");
    ensure!(String::from_utf8_lossy(&out.stdout).contains("flood 20000 sent"));
    ensure!(lease.ip.octets()[3] >= 100 && lease.ip.octets()[3] <= 115, "{lease:?}");

    // The flood took nothing: the other 15 addresses can all still be leased.
    let out =
        run(lab.client(0).command(BURST).args(["--giaddr", GIADDR, "--clients", "15", "--prefix", "c1"]))?;
    ensure!(acks(&out) == 15, "the flood locked addresses away:\n{out}");
    Ok(())
}
