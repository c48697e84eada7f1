//! The lab's network: a "switch" namespace holding a bridge, the appliance namespace with a veth
//! into the bridge (its LAN interface, with the gateway address), and N client namespaces each
//! with a veth into the bridge and a fixed MAC; optionally an outside namespace on the appliance's
//! second interface (the WAN, see [`crate::wan`]). Without the appliance namespace
//! ([`LabBuilder::appliance_netns`]) the lab is only the switch and the hosts, for an appliance
//! container (see [`crate::lxc`]). [`Lab`] builds it, owns everything it started and tears it all
//! down on drop, panicking test or not.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use proximity_config::{MacAddr, RawConfig};
use tempfile::TempDir;

use crate::appliance::Appliance;
use crate::clients::{Dhclient, Dhcpcd, Udhcpc};
use crate::logs::Logs;
use crate::names::{Claim, Names};
use crate::netns::{self, Netns};
use crate::process::{Reaper, run};
use crate::wait;
use crate::wan::{self, Uplink, Wan};

/// The appliance's LAN address (the clients' router and DNS server).
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 1);
/// Prefix length of the LAN.
pub const LAN_PREFIX: u8 = 24;
/// How long [`Host::ping`] keeps trying; the first try can lose a packet to ARP.
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);
/// Set (to anything) to keep each lab's temp dir (config, state, logs, client files) after the
/// test, for a look at what happened; its path is printed. Namespaces are removed regardless.
pub const KEEP_ENV: &str = "PROXIMITY_LAB_KEEP";
/// Client namespaces per lab; interface names have room for three decimal digits of index.
const MAX_CLIENTS: usize = 200;
/// What the accessors of the appliance namespace say in a lab without one.
const NO_APPLIANCE_NETNS: &str =
    "the lab was built without an appliance namespace (LabBuilder::appliance_netns(false))";

/// Options for [`Lab::build`].
#[derive(Debug, Clone)]
pub struct LabBuilder {
    clients: usize,
    appliance_netns: bool,
    gateway_by_harness: bool,
    wan: bool,
    wan_address_by_harness: bool,
}

impl LabBuilder {
    /// Number of client namespaces.
    pub fn clients(mut self, n: usize) -> Self {
        self.clients = n;
        self
    }

    /// Whether the lab has its own appliance namespace on the bridge (default: yes). Without it
    /// the lab is the switch, the clients and (with [`LabBuilder::wan`]) the outside host on a
    /// WAN bridge: the test brings the appliance itself, as an LXC container plugged into
    /// [`Lab::bridge`] and [`Lab::wan_bridge`] (see [`crate::lxc::Container`]). Then
    /// [`Lab::start_appliance`] fails and [`Lab::appliance`], [`Lab::appliance_netns`],
    /// [`Lab::lan_iface`] and [`Lab::wan_iface`] panic.
    pub fn appliance_netns(mut self, yes: bool) -> Self {
        self.appliance_netns = yes;
        self
    }

    /// Whether the harness puts [`GATEWAY`] on the appliance's LAN interface (default: yes). The
    /// appliance will configure it itself one day; then tests turn this off. A container's
    /// address comes from its LXC config instead (see [`crate::lxc`]).
    pub fn gateway_by_harness(mut self, yes: bool) -> Self {
        self.gateway_by_harness = yes;
        self
    }

    /// Whether the lab has a WAN side (default: no): an outside namespace wired to a second
    /// interface of the appliance namespace; see [`Lab::wan`] and [`Lab::wan_iface`].
    pub fn wan(mut self, yes: bool) -> Self {
        self.wan = yes;
        self
    }

    /// Whether the harness puts [`crate::WAN_ADDRESS`] and a default route via
    /// [`crate::WAN_UPSTREAM`] on the appliance's WAN interface (default: yes; for a container,
    /// through its LXC config). Off for a test where the appliance gets its WAN address from a
    /// DHCP server in the outside namespace.
    pub fn wan_address_by_harness(mut self, yes: bool) -> Self {
        self.wan_address_by_harness = yes;
        self
    }

    pub fn build(self) -> Result<Lab> {
        Lab::build(self)
    }
}

/// One machine of the lab: a namespace with one interface, on the LAN (a client, [`Lab::client`])
/// or on the WAN (the outside host, [`Lab::wan`]).
#[derive(Debug)]
pub struct Host {
    label: String,
    netns: Netns,
    iface: String,
    mac: MacAddr,
    dir: PathBuf,
    logs: Arc<Logs>,
    reaper: Arc<Reaper>,
}

impl Host {
    /// A host on `netns`, whose interface `iface` already exists there with `mac`; its directory
    /// is made in the lab's `lab_dir`, named after `label`.
    pub(crate) fn new(
        label: &str,
        netns: Netns,
        iface: String,
        mac: MacAddr,
        lab_dir: &Path,
        logs: &Arc<Logs>,
        reaper: &Arc<Reaper>,
    ) -> Result<Host> {
        let dir = lab_dir.join(label);
        std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Host {
            label: label.to_owned(),
            netns,
            iface,
            mac,
            dir,
            logs: logs.clone(),
            reaper: reaper.clone(),
        })
    }

    /// Short name in messages (`c0`, `c1`, ..., `out`).
    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// The interface name inside the host's namespace.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// The interface's MAC, set by the lab (locally administered, unique in the lab).
    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    /// This host's own directory (client scripts, lease files, logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn logs(&self) -> &Logs {
        &self.logs
    }

    pub(crate) fn reaper(&self) -> &Reaper {
        &self.reaper
    }

    /// A command run inside the host's namespace.
    pub fn command(&self, program: &str) -> Command {
        self.netns.command(program)
    }

    pub fn dhclient(&self) -> Dhclient<'_> {
        Dhclient::new(self)
    }

    pub fn udhcpc(&self) -> Udhcpc<'_> {
        Udhcpc::new(self)
    }

    pub fn dhcpcd(&self) -> Dhcpcd<'_> {
        Dhcpcd::new(self)
    }

    /// IPv4 addresses on the host's interface, with prefix lengths.
    pub fn ipv4_addrs(&self) -> Result<Vec<(Ipv4Addr, u8)>> {
        self.netns.ipv4_addrs(&self.iface)
    }

    /// The default route's gateway, if there is one.
    pub fn default_gateway(&self) -> Result<Option<Ipv4Addr>> {
        self.netns.default_gateway()
    }

    /// Pings `ip` from this host until one reply arrives or [`PING_TIMEOUT`] passes.
    pub fn ping(&self, ip: Ipv4Addr) -> Result<()> {
        let mut last = String::new();
        let target = ip.to_string();
        let result = wait::until(PING_TIMEOUT, &format!("a ping reply from {ip} on {}", self.label), || {
            let out = self.command("ping").args(["-n", "-c", "1", "-W", "1", &target]).output()?;
            last = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
            Ok(out.status.success().then_some(()))
        });
        result.with_context(|| format!("last ping said:\n{last}"))
    }
}

/// A network lab for one test. Dropping it kills every process it started and deletes its
/// namespaces; when the test is panicking it first prints every log (the appliance's first).
#[derive(Debug)]
pub struct Lab {
    names: Names,
    /// `None` (like `lan_iface` and `appliance_ns`) in a lab built without an appliance namespace.
    appliance: Option<Appliance>,
    hosts: Vec<Host>,
    wan: Option<Wan>,
    lan_iface: Option<String>,
    bridge: String,
    /// [`LabBuilder::gateway_by_harness`], which an appliance container's LXC config follows.
    gateway_by_harness: bool,
    appliance_ns: Option<Netns>,
    switch: Netns,
    /// Held until the namespaces above are gone: while held, nobody else uses this lab's names.
    _claim: Claim,
    logs: Arc<Logs>,
    reaper: Arc<Reaper>,
    dir: TempDir,
}

impl Lab {
    pub fn builder() -> LabBuilder {
        LabBuilder {
            clients: 1,
            appliance_netns: true,
            gateway_by_harness: true,
            wan: false,
            wan_address_by_harness: true,
        }
    }

    fn build(opts: LabBuilder) -> Result<Lab> {
        preflight()?;
        if opts.clients > MAX_CLIENTS {
            bail!("{} clients asked, the lab builds at most {MAX_CLIENTS}", opts.clients);
        }
        netns::remove_stale();
        let (names, claim) = Names::claim()?;
        // Namespaces of a dead lab that had the same tag (pid reuse) would block ours.
        netns::remove_tagged(names.tag(), &claim);
        let dir = tempfile::Builder::new()
            .prefix(&format!("pxlab-{}-", names.tag()))
            .tempdir()
            .context("cannot create the lab's temp dir")?;
        let logs = Arc::new(Logs::default());
        let reaper = Arc::new(Reaper::default());

        // Each Netns is owned as soon as it exists, so a failure half-way still cleans up.
        let switch = Netns::create(&names.netns("sw"))?;
        let bridge = names.ifname("b", "")?;
        switch.ip(&["link", "add", &bridge, "type", "bridge"])?;
        switch.ip(&["link", "set", &bridge, "up"])?;

        let (appliance_ns, lan_iface) = if opts.appliance_netns {
            let appliance_ns = Netns::create(&names.netns("ap"))?;
            let lan_iface = names.ifname("a", "")?;
            wire(&switch, &bridge, &names.ifname("s", "a")?, &appliance_ns, &lan_iface, None)?;
            if opts.gateway_by_harness {
                appliance_ns.ip(&["addr", "add", &format!("{GATEWAY}/{LAN_PREFIX}"), "dev", &lan_iface])?;
            }
            (Some(appliance_ns), Some(lan_iface))
        } else {
            (None, None)
        };

        let mut hosts = Vec::with_capacity(opts.clients);
        for i in 0..opts.clients {
            let label = format!("c{i}");
            let netns = Netns::create(&names.netns(&label))?;
            let iface = names.ifname("c", &format!("n{i}"))?;
            let mac = client_mac(i);
            wire(&switch, &bridge, &names.ifname("s", &label)?, &netns, &iface, Some(mac))?;
            hosts.push(Host::new(&label, netns, iface, mac, dir.path(), &logs, &reaper)?);
        }
        let uplink = match &appliance_ns {
            Some(ns) => Uplink::Appliance(ns),
            None => Uplink::Bridge(&switch),
        };
        let wan = opts
            .wan
            .then(|| wan::build(&names, uplink, opts.wan_address_by_harness, dir.path(), &logs, &reaper))
            .transpose()?;

        let appliance = appliance_ns.as_ref().map(|ns| Appliance::new(ns.name(), dir.path(), &logs));
        Ok(Lab {
            names,
            appliance,
            hosts,
            wan,
            lan_iface,
            bridge,
            gateway_by_harness: opts.gateway_by_harness,
            appliance_ns,
            switch,
            _claim: claim,
            logs,
            reaper,
            dir,
        })
    }

    /// A config for this lab: the defaults of the network model, with the LAN interface of the
    /// appliance namespace (without one, the default `eth1`) and a state directory in the lab's
    /// temp dir. Tests change what they test.
    pub fn config(&self) -> RawConfig {
        let mut config = RawConfig::default();
        if let Some(iface) = &self.lan_iface {
            config.lan.interface = iface.clone();
        }
        config.lan.address = format!("{GATEWAY}/{LAN_PREFIX}");
        // The harness puts the WAN address on (or there is no WAN): the appliance follows it.
        config.wan.mode = "host".into();
        if let Some(iface) = self.wan.as_ref().and_then(|wan| wan.iface.clone()) {
            config.wan.interface = iface;
        }
        config.state.dir = self.dir.path().join("state").to_string_lossy().into_owned();
        config
    }

    /// Starts the appliance with `config` and waits until it listens.
    pub fn start_appliance(&self, config: &RawConfig) -> Result<&Appliance> {
        let appliance = self.appliance.as_ref().context(NO_APPLIANCE_NETNS)?;
        appliance.start(config)?;
        Ok(appliance)
    }

    /// The appliance, started or not; panics in a lab without an appliance namespace (a bug in
    /// the test itself).
    pub fn appliance(&self) -> &Appliance {
        match &self.appliance {
            Some(appliance) => appliance,
            None => panic!("{NO_APPLIANCE_NETNS}"),
        }
    }

    /// Client `i`; panics when the lab has fewer clients (a bug in the test itself).
    pub fn client(&self, i: usize) -> &Host {
        match self.hosts.get(i) {
            Some(host) => host,
            None => panic!("the lab has {} clients, no client {i}", self.hosts.len()),
        }
    }

    pub fn clients(&self) -> &[Host] {
        &self.hosts
    }

    /// The outside host on the WAN (the user's management network); panics when the lab was
    /// built without [`LabBuilder::wan`] (a bug in the test itself). A DHCP client run there
    /// configures its interface as on a real machine: its scripts flush [`crate::WAN_UPSTREAM`].
    pub fn wan(&self) -> &Host {
        &self.wan_side().outside
    }

    /// The appliance's WAN interface name (its `eth0`), inside [`Lab::appliance_netns`]; panics
    /// like [`Lab::wan`], and in a lab without an appliance namespace.
    pub fn wan_iface(&self) -> &str {
        match &self.wan_side().iface {
            Some(iface) => iface,
            None => panic!("{NO_APPLIANCE_NETNS}: the WAN ends on Lab::wan_bridge()"),
        }
    }

    /// The WAN bridge inside [`Lab::switch_netns`], where an appliance container plugs its `eth0`
    /// (the lab's `vmbr0`); panics like [`Lab::wan`], and in a lab with an appliance namespace
    /// (whose `eth0` is [`Lab::wan_iface`]).
    pub fn wan_bridge(&self) -> &str {
        match &self.wan_side().bridge {
            Some(bridge) => bridge,
            None => panic!("the lab's WAN ends on its appliance namespace, not on a bridge"),
        }
    }

    /// The WAN side, if the lab has one.
    pub(crate) fn wan_opt(&self) -> Option<&Wan> {
        self.wan.as_ref()
    }

    fn wan_side(&self) -> &Wan {
        match &self.wan {
            Some(wan) => wan,
            None => panic!("the lab has no WAN side: build it with Lab::builder().wan(true)"),
        }
    }

    /// The appliance's namespace (for commands a test runs next to the appliance); panics in a
    /// lab without one.
    pub fn appliance_netns(&self) -> &Netns {
        match &self.appliance_ns {
            Some(ns) => ns,
            None => panic!("{NO_APPLIANCE_NETNS}"),
        }
    }

    /// The switch namespace, which holds the LAN bridge (to plug more into the LAN).
    pub fn switch_netns(&self) -> &Netns {
        &self.switch
    }

    /// The LAN bridge's name inside [`Lab::switch_netns`].
    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// The appliance's LAN interface name, as the config names it; panics in a lab without an
    /// appliance namespace.
    pub fn lan_iface(&self) -> &str {
        match &self.lan_iface {
            Some(iface) => iface,
            None => panic!("{NO_APPLIANCE_NETNS}"),
        }
    }

    /// The lab's temp dir (config, logs, state, client files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Short unique tag of this lab, as used in its names.
    pub fn tag(&self) -> &str {
        self.names.tag()
    }

    /// Every log of the lab, for a failure message.
    pub fn diagnostics(&self) -> String {
        self.logs.render()
    }

    /// Whether the harness gives the appliance its gateway address ([`LabBuilder::gateway_by_harness`]).
    pub(crate) fn gateway_by_harness(&self) -> bool {
        self.gateway_by_harness
    }

    /// Whether the lab has its own appliance namespace on the bridge ([`LabBuilder::appliance_netns`]).
    pub(crate) fn has_appliance_netns(&self) -> bool {
        self.appliance_ns.is_some()
    }

    /// The lab's names (for more of its own, such as a container's).
    pub(crate) fn names(&self) -> &Names {
        &self.names
    }

    /// The lab's logs, to register more (shown when a test fails).
    pub(crate) fn logs(&self) -> &Logs {
        &self.logs
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("===== lab {} failed; its logs follow =====\n{}", self.names.tag(), self.logs.render());
        }
        // Processes first, so nothing holds a namespace; then clients, appliance and switch go
        // (fields drop in declaration order; the TempDir is last).
        if let Some(pid) = self.appliance.as_ref().and_then(Appliance::pid) {
            let _ = crate::process::signal(pid, nix::sys::signal::Signal::SIGKILL);
        }
        self.reaper.kill_all();
        if std::env::var_os(KEEP_ENV).is_some() {
            self.dir.disable_cleanup(true);
            eprintln!("lab {}: kept {} ({KEEP_ENV} is set)", self.names.tag(), self.dir.path().display());
        }
    }
}

/// The lab needs root and iproute2; without them every lab test fails with this message.
fn preflight() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("the network lab needs root (network namespaces, veth, bridges): run the tests as root");
    }
    run(Command::new("ip").arg("-V"))
        .context("the network lab needs iproute2's `ip` (apt-get install iproute2)")?;
    Ok(())
}

/// Client `i`'s MAC: locally administered, unique within a lab (each lab is its own LAN).
fn client_mac(i: usize) -> MacAddr {
    let [hi, lo] = u16::try_from(i).unwrap_or(u16::MAX).to_be_bytes();
    MacAddr([0x02, 0x70, 0x78, 0x00, hi, lo.wrapping_add(1)])
}

/// A veth from `switch` (port `port`, enslaved to `bridge`) to `peer_ns` (named `peer`, with
/// `mac` when given, set before the link is up as a NIC's is), both ends up.
fn wire(
    switch: &Netns,
    bridge: &str,
    port: &str,
    peer_ns: &Netns,
    peer: &str,
    mac: Option<MacAddr>,
) -> Result<()> {
    // Created inside the switch namespace with the peer end put straight into its namespace, so
    // the names never appear in the host's namespace.
    let mac = mac.map(|m| m.to_string());
    let mut args = vec!["link", "add", port, "type", "veth", "peer", "name", peer];
    if let Some(mac) = &mac {
        args.extend(["address", mac.as_str()]);
    }
    args.extend(["netns", peer_ns.name()]);
    switch.ip(&args)?;
    switch.ip(&["link", "set", port, "master", bridge, "up"])?;
    peer_ns.ip(&["link", "set", peer, "up"])?;
    Ok(())
}
