//! DHCP is served on the LAN only: a machine on the WAN side (the user's management network, where
//! another DHCP server may well be in charge) gets no offer while a LAN client at the same moment
//! gets its lease, and a relayed DISCOVER whose giaddr is outside the LAN subnet gets nothing.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use proximity_tests::process::run;
use proximity_tests::{Lab, WAN_ADDRESS};

use crate::support::assert_lan_lease;

const BURST: &str = env!("CARGO_BIN_EXE_dhcp-burst");
/// The relay's own address on the LAN, from which it reaches the appliance.
const RELAY: &str = "10.20.0.2";
/// The relay's address on the remote subnet it serves, used as giaddr: outside the LAN
/// (10.20.0.0/24, and outside 10.20.0.0/16 too), so not a subnet the appliance serves.
const FOREIGN_GIADDR: &str = "10.30.0.1";
const FOREIGN_SUBNET: &str = "10.30.0.0/24";

#[test]
fn dhcp_answers_on_the_lan_but_not_on_the_wan() -> Result<()> {
    let lab = Lab::builder().clients(1).wan(true).build()?;
    let config = lab.config();
    lab.start_appliance(&config)?;
    let outside = lab.wan();
    // The wire works: what the outside host sends reaches the appliance's WAN interface.
    outside.ping(WAN_ADDRESS)?;

    let (wan, lan) = std::thread::scope(|s| {
        // Short attempts, one client after the other (they share the interface): 2 to 3 seconds each.
        let wan = s.spawn(|| -> Result<_> {
            let udhcpc = outside.udhcpc().attempts(3, 1).try_obtain()?;
            let dhclient = outside.dhclient().timeout(Duration::from_secs(2)).try_obtain()?;
            let dhcpcd = outside.dhcpcd().timeout(Duration::from_secs(2)).try_obtain()?;
            Ok((udhcpc, dhclient, dhcpcd))
        });
        let lan = lab.client(0).udhcpc().obtain();
        // The LAN lease came while the WAN side was still asking (the first of its clients
        // alone sends DISCOVERs for about 3 seconds).
        let overlapped = !wan.is_finished();
        let wan = wan.join().map_err(|_| anyhow::anyhow!("the WAN client thread panicked"));
        (wan.and_then(|r| r), lan.map(|lease| (lease, overlapped)))
    });
    let (lease, overlapped) = lan?;
    assert_lan_lease(&lease, &config, Duration::from_secs(12 * 3600));
    ensure!(
        overlapped,
        "the LAN lease did not come while the WAN clients were asking; the test proves nothing"
    );
    let (udhcpc, dhclient, dhcpcd) = wan?;
    assert_eq!(udhcpc, None, "udhcpc on the WAN side got a lease from the appliance");
    assert_eq!(dhclient, None, "dhclient on the WAN side got a lease from the appliance");
    assert_eq!(dhcpcd, None, "dhcpcd on the WAN side got a lease from the appliance");

    // Nor did the appliance take the WAN's DISCOVERs in and answer them where the WAN cannot
    // hear (a server on every interface sends its OFFER to the client's new address, out of the
    // LAN, and holds a LAN address for it). Its summary at stop counts the DISCOVERs it received:
    // the LAN client's alone.
    lab.appliance().stop()?;
    let udhcpc_log = std::fs::read_to_string(lab.client(0).dir().join("udhcpc.log"))?;
    let lan_discovers = udhcpc_log.matches("broadcasting discover").count();
    let received = stopped_counter(&lab.appliance().log(), "dhcp_received_discover_total")?;
    ensure!(
        received == lan_discovers,
        "the appliance received {received} DISCOVERs, the LAN client sent {lan_discovers}:\n{}",
        lab.appliance().log()
    );
    Ok(())
}

/// A counter of the appliance's `dhcp stopped` summary line (it lists the non-zero ones).
fn stopped_counter(log: &str, name: &str) -> Result<usize> {
    let line =
        log.lines().rfind(|l| l.contains("dhcp stopped")).context("no `dhcp stopped` line in the log")?;
    let Some((_, rest)) = line.split_once(&format!("{name}=")) else { return Ok(0) };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().with_context(|| format!("bad {name} in {line:?}"))
}

#[test]
fn a_relayed_discover_from_outside_the_lan_gets_no_offer() -> Result<()> {
    let lab = Lab::builder().clients(1).build()?;
    let relay = lab.client(0);
    for addr in [format!("{RELAY}/24"), format!("{FOREIGN_GIADDR}/24")] {
        run(relay.command("ip").args(["addr", "add", &addr, "dev", relay.iface()]))?;
    }
    // The appliance can reach the foreign subnet through the relay, as a server behind a real
    // relay can: an offer, if one were sent, would arrive.
    lab.appliance_netns().ip(&["route", "add", FOREIGN_SUBNET, "via", RELAY])?;
    lab.start_appliance(&lab.config())?;

    // Control: the same relay with a giaddr on the LAN is served, so the path works.
    let args = ["--clients", "3", "--tries", "5", "--retry-ms", "300", "--prefix", "a0"];
    let out = run(relay.command(BURST).args(["--giaddr", RELAY]).args(args))?;
    let acks = out.lines().filter(|l| l.starts_with("ack ")).count();
    ensure!(acks == 3, "the relay with giaddr {RELAY} got {acks} of 3 leases:\n{out}");

    let args = ["--clients", "3", "--tries", "2", "--retry-ms", "300"];
    let out = run(relay.command(BURST).args(["--giaddr", FOREIGN_GIADDR]).args(args))
        .context("dhcp-burst with a foreign giaddr")?;
    let lines: Vec<&str> = out.lines().collect();
    ensure!(
        lines.len() == 3 && lines.iter().all(|l| l.starts_with("fail ") && l.ends_with(" no offer")),
        "a relayed DISCOVER with giaddr {FOREIGN_GIADDR} (outside the LAN) was answered:\n{out}\n{}",
        lab.appliance().log()
    );
    Ok(())
}
