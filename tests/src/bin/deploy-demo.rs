//! `deploy-demo`: the README's main command on a machine without Proxmox. It plays a Proxmox VE
//! node with the test double (`pve-sim` in a network namespace with `vmbr0` and a DHCP server on
//! it, [`Node`]), then does what a user does on a real node, with the real `proximity` binary:
//!
//! 1. `proximity up` from nothing (bridge `proximity-lan`, template, CT 100, start, health, DNS);
//! 2. an app: a machine on `proximity-lan` (a namespace with a lease from the appliance) runs a
//!    small web server, registered with `proximity apps add demo`;
//! 3. the URLs, tried from the node (the WAN side, where the user's workstation is) and from the
//!    LAN, then printed with the commands to try them by hand;
//! 4. a second `up` (no change), and the figures: both `up` times, the template's size, the
//!    appliance's memory idle and after a burst of requests;
//! 5. with `--hold`, everything stays until Enter; then `proximity down` and the node goes.
//!
//! Needs root, lxc, dnsmasq, dhclient, curl and dig (`.ci/run` lists the packages). It sends no
//! traffic outside the namespaces it makes. `pve-sim` is a test double: it never pretends to be
//! Proxmox outside this machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use clap::Parser;
use proximity_config::MacAddr;
use proximity_tests::http::Backend;
use proximity_tests::pve::node::Node;
use proximity_tests::pve::proximity::Proximity;

/// The demo app's name, port and the MAC of the machine it runs on.
const APP: &str = "demo";
const APP_PORT: u16 = 8080;
const APP_MAC: MacAddr = MacAddr([0x02, 0x70, 0x78, 0xfd, 0x02, 0x01]);
/// The appliance's LAN address, as `proximity up` configures it.
const GATEWAY: &str = "10.20.0.1";
/// Requests in the burst that measures the appliance's memory under load: parallel curls, each
/// fetching the app's URL this many times over one connection.
const LOAD_CLIENTS: usize = 8;
const LOAD_REQUESTS: usize = 500;

#[derive(Debug, Parser)]
#[command(
    about = "Deploy the appliance onto a simulated Proxmox node (pve-sim, a test double) and show it working"
)]
struct Args {
    /// The appliance binary the template carries (a static build; scripts/deploy-demo.sh makes it).
    #[arg(long)]
    appliance: PathBuf,
    /// The `proximity` binary (default: next to this one).
    #[arg(long)]
    proximity: Option<PathBuf>,
    /// Keep everything until Enter, to try the URLs by hand.
    #[arg(long)]
    hold: bool,
}

fn main() {
    if let Err(e) = run(&Args::parse()) {
        eprintln!("✗ {e:#}");
        std::process::exit(1);
    }
}

/// A binary next to this one (`target/<profile>/`).
fn beside(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let path = exe.with_file_name(name);
    ensure!(path.is_file(), "{} is missing: build the workspace first", path.display());
    Ok(path)
}

fn run(args: &Args) -> Result<()> {
    let proximity = match &args.proximity {
        Some(path) => path.clone(),
        None => beside("proximity")?,
    };
    println!("==> starting a simulated Proxmox node (pve-sim, a test double, in a network namespace)");
    let node = Node::start(&beside("pve-sim")?)?;
    let deploy =
        Deploy { proximity: Proximity::with_binary(&node, proximity)?, appliance: args.appliance.clone() };
    let result = demo(&node, &deploy, args.hold);
    if let Err(e) = &result {
        eprintln!("✗ {e:#}\n{}", node.diagnostics());
    }
    result
}

/// `proximity` for the demo: [`Proximity`] with the demo's appliance, shown to the user.
struct Deploy<'n> {
    proximity: Proximity<'n>,
    appliance: PathBuf,
}

impl Deploy<'_> {
    /// Runs with the user's terminal (progress on stderr, the summary on stdout); how long it took.
    fn shown(&self, args: &[&str]) -> Result<Duration> {
        println!("\n$ proximity {}", args.join(" "));
        let started = Instant::now();
        let status = self
            .proximity
            .command(&self.appliance, args)
            .status()
            .with_context(|| format!("cannot run proximity {args:?}"))?;
        ensure!(status.success(), "proximity {} failed ({status})", args.join(" "));
        Ok(started.elapsed())
    }

    fn json(&self, args: &[&str]) -> Result<serde_json::Value> {
        self.proximity.json(&self.appliance, args)
    }
}

fn demo(node: &Node, deploy: &Deploy<'_>, hold: bool) -> Result<()> {
    let first_up = deploy.shown(&["up"])?;
    let status = deploy.json(&["status", "--json"])?;
    let wan = status["wan_address"].as_str().context("no WAN address in `status`")?.to_owned();

    println!(
        "\n==> an app on proximity-lan: a machine with a lease from the appliance, a web server on :{APP_PORT}"
    );
    let machine = node.lan_client(APP, "proximity-lan", APP_MAC)?;
    let lease = machine.dhclient().obtain()?;
    let _server = Backend::lab(&machine, &beside("lab-backend")?.to_string_lossy(), APP, APP_PORT, None)?;
    println!("✓ {APP} got {} from the appliance's DHCP", lease.ip);
    deploy.shown(&["apps", "add", APP, "--ip", &lease.ip.to_string(), "--port", &APP_PORT.to_string()])?;

    let ca = node.dir().join("appliance-ca.crt");
    deploy.proximity.pinned_ca(&ca)?;
    println!("\n==> trying the URLs");
    let url = format!("http://{APP}.prox.local/");
    let https = format!("https://{APP}.prox.local/");
    check_dig(node.command("dig"), &wan, &wan, "from the WAN side (the node)")?;
    check_dig(machine.command("dig"), GATEWAY, GATEWAY, "from the LAN")?;
    check_curl(node.command("curl"), &url, 80, &wan, None, "from the WAN side")?;
    check_curl(node.command("curl"), &https, 443, &wan, Some(&ca), "from the WAN side")?;
    check_curl(machine.command("curl"), &https, 443, GATEWAY, Some(&ca), "from the LAN")?;

    let second_up = deploy.shown(&["up"])?;

    println!("\n==> figures");
    let template = std::fs::read_dir(node.data_dir().join("storage/local/template/cache"))?
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().map(|m| m.len()).unwrap_or(0)))
        .find(|(name, _)| name.starts_with("proximity-appliance_"))
        .context("no template in the node's storage")?;
    let pid = node.init_pid(100)?;
    let idle = memory(pid)?;
    load(node, &url, &wan)?;
    let loaded = memory(pid)?;
    println!("up from nothing     {:.1} s", first_up.as_secs_f64());
    println!("up with no change   {:.1} s", second_up.as_secs_f64());
    println!("template            {} ({:.2} MB)", template.0, template.1 as f64 / 1e6);
    println!("appliance RSS idle  {:.1} MiB", idle.rss_kib as f64 / 1024.0);
    println!(
        "after {} requests {:.1} MiB (peak {:.1} MiB)",
        LOAD_CLIENTS * LOAD_REQUESTS,
        loaded.rss_kib as f64 / 1024.0,
        loaded.peak_kib as f64 / 1024.0
    );

    let ns = node.netns().name();
    println!("\n==> try it (the node's namespace is the user's side; the appliance's WAN address is {wan})");
    println!("sudo ip netns exec {ns} dig @{wan} {APP}.prox.local");
    println!("sudo ip netns exec {ns} curl --resolve {APP}.prox.local:80:{wan} {url}");
    println!(
        "sudo ip netns exec {ns} curl --cacert {} --resolve {APP}.prox.local:443:{wan} {https}",
        ca.display()
    );
    println!(
        "admin API: https://{wan}:9090/v1/health (token and pinned CA in {})",
        deploy.proximity.home().display()
    );
    if hold {
        println!("\nPress Enter to remove everything.");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).context("cannot read stdin")?;
    }
    drop(_server);
    drop(machine);
    deploy.shown(&["down"])?;
    Ok(())
}

fn check_dig(mut cmd: Command, server: &str, want: &str, side: &str) -> Result<()> {
    let name = format!("{APP}.prox.local");
    let out = cmd.args(["+short", "+time=2", "+tries=3", &format!("@{server}"), &name]).output()?;
    let got = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    ensure!(got == want, "dig @{server} {name} {side} gave {got:?}, not {want}");
    println!("✓ {name} is {got} {side}");
    Ok(())
}

fn check_curl(
    mut cmd: Command,
    url: &str,
    port: u16,
    address: &str,
    ca: Option<&Path>,
    side: &str,
) -> Result<()> {
    cmd.args([
        "-sS",
        "--fail",
        "--max-time",
        "10",
        "--resolve",
        &format!("{APP}.prox.local:{port}:{address}"),
    ]);
    if let Some(ca) = ca {
        cmd.arg("--cacert").arg(ca);
    }
    let out = cmd.arg(format!("{url}echo")).output()?;
    let body = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && body.contains(&format!("\"backend\":\"{APP}\"")),
        "{url} {side} failed: {}{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("✓ {url} answers {side}{}", if ca.is_some() { " (verified against the pinned CA)" } else { "" });
    Ok(())
}

struct Memory {
    rss_kib: u64,
    peak_kib: u64,
}

fn memory(pid: u32) -> Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok(Memory { rss_kib: field("VmRSS:")?, peak_kib: field("VmHWM:")? })
}

/// [`LOAD_CLIENTS`] curls at once from the node, each fetching the app [`LOAD_REQUESTS`] times
/// over one kept-alive connection.
fn load(node: &Node, url: &str, wan: &str) -> Result<()> {
    let mut children = Vec::with_capacity(LOAD_CLIENTS);
    for _ in 0..LOAD_CLIENTS {
        let mut cmd = node.command("curl");
        cmd.args(["-s", "-o", "/dev/null", "--resolve", &format!("{APP}.prox.local:80:{wan}")]);
        cmd.args(std::iter::repeat_n(url, LOAD_REQUESTS));
        children.push(cmd.stdout(Stdio::null()).spawn().context("cannot run curl")?);
    }
    for mut child in children {
        let status = child.wait()?;
        ensure!(status.success(), "a curl of the load failed ({status})");
    }
    Ok(())
}
