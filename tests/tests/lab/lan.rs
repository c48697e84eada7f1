//! The LAN interface at start: the appliance brings it up and puts the gateway address on it
//! itself (the harness does not), and a second start changes nothing on it: no address taken
//! off and put back, no flap of the link (watched with `ip monitor`), and an address someone
//! else put there stays.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use anyhow::{Context, Result};
use proximity_tests::appliance::binary;
use proximity_tests::netns::Netns;
use proximity_tests::process::{kill_child, run_logged, spawn_logged};
use proximity_tests::{GATEWAY, LAN_PREFIX, Lab, wait};

/// How long a start that fails may take to exit.
const EXIT_DEADLINE: Duration = Duration::from_secs(20);
/// How long `ip monitor` may take to show an event.
const MONITOR_DEADLINE: Duration = Duration::from_secs(10);
/// An address of someone else's on the LAN interface, which the appliance must leave alone.
const OTHER: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 9);

#[test]
fn the_appliance_puts_the_gateway_on_the_lan_and_a_restart_changes_nothing() -> Result<()> {
    let lab = Lab::builder().clients(1).gateway_by_harness(false).build()?;
    let (ns, lan) = (lab.appliance_netns(), lab.lan_iface());
    ns.ip(&["link", "set", lan, "down"])?;
    assert_eq!(ns.ipv4_addrs(lan)?, [], "the harness left the LAN interface without an address");

    let appliance = lab.start_appliance(&lab.config())?;
    assert_eq!(ns.ipv4_addrs(lan)?, [(GATEWAY, LAN_PREFIX)], "the gateway address on the LAN");
    assert!(ns.ip(&["link", "show", lan])?.contains(",UP"), "the LAN interface set up");
    let client = lab.client(0);
    let lease = client.dhclient().obtain()?;
    assert_eq!(lease.routers, [GATEWAY]);
    client.ping(GATEWAY)?;

    ns.ip(&["addr", "add", &format!("{OTHER}/{LAN_PREFIX}"), "dev", lan])?;
    let monitor = Monitor::start(ns, &lab.dir().join("ip-monitor.log"))?;
    appliance.restart()?;
    let changes = monitor.finish(lan)?;
    assert!(changes.is_empty(), "the second start changed the LAN interface:\n{}", changes.join("\n"));
    assert_eq!(ns.ipv4_addrs(lan)?, [(GATEWAY, LAN_PREFIX), (OTHER, LAN_PREFIX)]);
    let log = appliance.log();
    assert!(log.contains("lan interface configured"), "the first start says what it did:\n{log}");
    assert!(
        log.contains("lan interface already configured"),
        "the second start says it had nothing to do:\n{log}"
    );
    client.dhclient().stop()?;
    assert_eq!(client.dhclient().obtain()?.routers, [GATEWAY], "DHCP still served after the restart");
    Ok(())
}

/// Without CAP_NET_ADMIN (a container not given the right) the appliance cannot put the gateway
/// on the LAN: it exits at once and says which right it lacks, for which interface.
#[test]
fn a_lan_it_may_not_configure_is_a_clear_start_error() -> Result<()> {
    let lab = Lab::builder().clients(0).gateway_by_harness(false).build()?;
    let config = lab.config();
    std::fs::create_dir_all(&config.state.dir)?;
    let path = lab.dir().join("no-net-admin.toml");
    std::fs::write(&path, config.to_toml()?)?;
    let log = lab.dir().join("no-net-admin.log");
    let mut cmd = lab.appliance_netns().command("setpriv");
    cmd.args(["--bounding-set", "-net_admin", "--"]).arg(binary()?).arg("--config").arg(&path);
    let status = run_logged(&mut cmd, &log, EXIT_DEADLINE)?;
    let said = std::fs::read_to_string(&log)?;
    assert!(!status.success(), "it started without the right to configure the LAN:\n{said}");
    assert!(said.contains("not permitted to add address 10.20.0.1/24"), "{said}");
    assert!(said.contains(lab.lan_iface()) && said.contains("CAP_NET_ADMIN"), "{said}");
    assert_eq!(lab.appliance_netns().ipv4_addrs(lab.lan_iface())?, [], "nothing was configured");
    Ok(())
}

/// `ip monitor link address` in a namespace, its output in a file. Events are fenced by
/// sentinel addresses added to and deleted from `lo`: one before the watched time (so the
/// monitor is known to listen) and one after (so every earlier event is known to be written).
struct Monitor<'n> {
    ns: &'n Netns,
    log: PathBuf,
    child: Child,
}

impl<'n> Monitor<'n> {
    fn start(ns: &'n Netns, log: &Path) -> Result<Monitor<'n>> {
        let mut cmd = ns.command("ip");
        cmd.args(["monitor", "link", "address"]);
        let child = spawn_logged(&mut cmd, log)?;
        let monitor = Monitor { ns, log: log.to_owned(), child };
        monitor.fence("127.0.0.9")?;
        Ok(monitor)
    }

    /// Adds and deletes `sentinel` on `lo` until the monitor shows the deletion: a monitor just
    /// started may not listen yet and miss the first pair.
    fn fence(&self, sentinel: &str) -> Result<()> {
        let what = format!("`ip monitor` to show {sentinel}");
        wait::until(MONITOR_DEADLINE, &what, || {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if text.lines().any(|l| l.starts_with("Deleted") && l.contains(sentinel)) {
                return Ok(Some(()));
            }
            self.ns.ip(&["addr", "add", &format!("{sentinel}/8"), "dev", "lo"])?;
            self.ns.ip(&["addr", "del", &format!("{sentinel}/8"), "dev", "lo"])?;
            Ok(None)
        })
    }

    /// The events about `iface` between the two fences.
    fn finish(mut self, iface: &str) -> Result<Vec<String>> {
        self.fence("127.0.0.10")?;
        kill_child(&mut self.child);
        let text = std::fs::read_to_string(&self.log).context("the ip monitor log")?;
        let watched = text.split_once("127.0.0.9").map_or("", |(_, after)| after);
        let watched = watched.split_once("127.0.0.10").map_or(watched, |(before, _)| before);
        Ok(watched.lines().filter(|l| l.contains(iface)).map(str::to_owned).collect())
    }
}

impl Drop for Monitor<'_> {
    fn drop(&mut self) {
        kill_child(&mut self.child);
    }
}
