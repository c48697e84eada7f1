//! The appliance as Proxmox runs it: PID 1 of an unprivileged LXC container (idmapped like
//! `unprivileged=1`) on the lab's LAN and WAN bridges. From there it leases a LAN client its
//! address, answers its names and forwards other queries out of its WAN side, and proxies an app
//! registered through the admin API to a backend on another client, from the LAN and from the
//! WAN; `lxc-stop` then stops it cleanly within seconds.
//!
//! And the static binary it runs asks libc for no names: a static glibc loads NSS modules
//! (`/etc/nsswitch.conf`, `libnss_*.so`) at run time, which the container's rootfs lacks, so a
//! lookup there would fail, silently. Traced with strace where the machine's `/etc` is, the same
//! journey must open nothing under `/etc`, no NSS module, no nscd socket.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use nix::sys::signal::Signal;
use proximity_config::RawConfig;
use proximity_tests::dns::{Dnsmasq, query};
use proximity_tests::http::{Admin, Backend, curl};
use proximity_tests::lxc::{APPLIANCE, Container, ID_BASE, ID_COUNT, INIT, NFT, static_binary};
use proximity_tests::process::{children_of, kill_child, run, signal, spawn_logged, wait_exit};
use proximity_tests::{GATEWAY, Lab, WAN_ADDRESS, WAN_UPSTREAM, appliance, wait};
use serde_json::json;

use crate::support::assert_lan_lease;
use crate::web::{
    BACKEND_PORT, LAB_BACKEND, LIVE_DEADLINE, app_by_ip, assert_resolves, await_status, echo_of, get,
    received,
};

/// What the upstream on the WAN answers for `example.test` and below.
const EXAMPLE_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 80);
/// The lease time of the default config.
const LEASE_TIME: Duration = Duration::from_secs(12 * 3600);
/// "Within a few seconds": the appliance drains for at most 5 s, and has nothing to drain here.
const CLEAN_STOP: Duration = Duration::from_secs(5);
/// What a libc name lookup touches: its config files (all under `/etc`), its modules, nscd.
const NSS_TRACES: [&str; 3] = ["\"/etc/", "libnss_", "nscd"];

#[test]
fn the_appliance_serves_the_lan_as_pid_1_of_an_unprivileged_container() -> Result<()> {
    let lab = Lab::builder().appliance_netns(false).clients(2).wan(true).build()?;
    let _upstream = upstream(&lab)?;
    let mut config = Container::config(&lab);
    config.dns.upstreams = vec![WAN_UPSTREAM.to_string()];
    let container = Container::create(&lab, &config)?;
    let started = Instant::now();
    container.start()?;
    println!("container {}: lxc-start to listening in {:?}", container.name(), started.elapsed());
    let result = (|| {
        assert_unprivileged_init(&container)?;
        use_the_network(&lab, &config, container.state_dir())?;

        // NAT drives nft inside the container: it runs there (libraries, loader, nf_tables).
        let tables = container.attach(&[NFT, "-j", "list", "tables"])?;
        ensure!(tables.contains("\"nftables\""), "`nft -j list tables` in the container said: {tables}");
        // NAT from inside the container: a LAN client reaches a server on the WAN side, which
        // sees the container's WAN address (masqueraded), and the table is ours alone.
        let _far = Backend::lab(lab.wan(), LAB_BACKEND, "far", BACKEND_PORT, None)?;
        let url = format!("http://{WAN_UPSTREAM}:{BACKEND_PORT}/echo");
        let reply = curl(lab.client(0), &url).await_status(200, LIVE_DEADLINE)?;
        let peer = reply.json()?["peer"].as_str().context("no peer in the echo")?.to_owned();
        ensure!(
            peer.starts_with(&format!("{WAN_ADDRESS}:")),
            "the far server saw {peer}, not the WAN address"
        );
        let table = container.attach(&[NFT, "list", "table", "inet", "proximity"])?;
        ensure!(table.contains("masquerade"), "the container's nat table: {table}");

        let took = container.stop()?;
        println!("container {}: lxc-stop to exit in {took:?}", container.name());
        assert!(took < CLEAN_STOP, "lxc-stop took {took:?}");
        assert_eq!(container.state()?, "STOPPED");
        assert_graceful_stop(&container.log(), "SIGPWR")
    })();
    result.map_err(|e| anyhow!("{e:#}\n{}", lab.diagnostics()))
}

#[test]
fn the_static_binary_asks_libc_for_no_names() -> Result<()> {
    run(Command::new("strace").arg("-V")).context("this test needs strace (apt-get install strace)")?;
    let lab = Lab::builder().clients(2).wan(true).build()?;
    let _upstream = upstream(&lab)?;
    let mut config = lab.config();
    config.dns.upstreams = vec![WAN_UPSTREAM.to_string()];
    std::fs::create_dir_all(&config.state.dir)?;
    let config_path = lab.dir().join("static.toml");
    std::fs::write(&config_path, config.to_toml()?)?;
    let (trace_path, log_path) = (lab.dir().join("static.strace"), lab.dir().join("static.log"));
    let mut cmd = lab.appliance_netns().command("strace");
    // -f: every thread; -qq: no attach and exit notes among the calls. execve: to leave out the
    // programs the appliance runs (nft, dynamic and free to use NSS), which -f follows too.
    cmd.args(["-f", "-qq", "-e", "trace=open,openat,openat2,connect,execve", "-o"]).arg(&trace_path);
    cmd.arg(static_binary()?).arg("--config").arg(&config_path);
    let mut strace = spawn_logged(&mut cmd, &log_path)?;
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let result = (|| {
        wait::until(appliance::READY_TIMEOUT, "the static appliance to listen under strace", || {
            if let Some(status) = strace.try_wait()? {
                anyhow::bail!("strace exited ({status})");
            }
            Ok(log().contains(appliance::READY_LINE).then_some(()))
        })?;
        use_the_network(&lab, &config, Path::new(&config.state.dir))?;
        let pid = *children_of(strace.id()).first().context("strace has no child")?;
        signal(pid, Signal::SIGTERM)?;
        wait_exit(&mut strace, appliance::STOP_TIMEOUT)?.context("no exit after SIGTERM")?;
        assert_graceful_stop(&log(), "SIGTERM")?;

        let trace = std::fs::read_to_string(&trace_path)?;
        // The trace saw the appliance at work: it opened its config and its store.
        ensure!(
            trace.contains(&format!("{}\"", config_path.display())),
            "strace saw no config read:\n{trace}"
        );
        let binary = static_binary()?.display().to_string();
        let others: Vec<&str> = trace
            .lines()
            .filter(|l| l.contains("execve(") && !l.contains(&binary))
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        let lookups: Vec<&str> = trace
            .lines()
            .filter(|l| l.split_whitespace().next().is_some_and(|pid| !others.contains(&pid)))
            .filter(|l| NSS_TRACES.iter().any(|t| l.contains(t)))
            .collect();
        ensure!(
            lookups.is_empty(),
            "the static binary looked names up through libc:\n{}",
            lookups.join("\n")
        );
        Ok(())
    })();
    kill_child(&mut strace);
    result.map_err(|e| anyhow!("{e:#}\n----- appliance under strace -----\n{}\n{}", log(), lab.diagnostics()))
}

/// The upstream DNS server on the WAN, knowing `example.test`.
fn upstream(lab: &Lab) -> Result<Dnsmasq<'_>> {
    Dnsmasq::builder(lab.wan(), WAN_UPSTREAM).address("example.test", EXAMPLE_IP).start()
}

/// What users do with the appliance serving the lab (its config `config`, its state dir as the host
/// sees it `state_dir`): client 0 leases an address and its name resolves, a name only the
/// upstream on the WAN knows is forwarded there, and an app on client 1 registered with the admin
/// token answers by name over http and https from the LAN and at the WAN address from outside.
fn use_the_network(lab: &Lab, config: &RawConfig, state_dir: &Path) -> Result<()> {
    let (user, server, outside) = (lab.client(0), lab.client(1), lab.wan());
    let lease = user.udhcpc().hostname("laptop").obtain()?;
    assert_lan_lease(&lease, config, LEASE_TIME);
    assert_resolves(user, GATEWAY, "laptop", lease.ip)?;
    let reply = query(user, GATEWAY, "www.example.test", "A").run()?;
    assert_eq!(reply.addresses(), [EXAMPLE_IP], "forwarded out of the WAN side: {reply}");

    let backend_ip = server.dhclient().obtain()?.ip;
    let _web = Backend::lab(server, LAB_BACKEND, "web", BACKEND_PORT, None)?;
    let api = Admin::connect(user, GATEWAY, state_dir)?;
    let app = api.create_app(&app_by_ip("web", backend_ip))?;
    assert_eq!(app["live"], json!(true), "{app}");
    assert_resolves(user, GATEWAY, "web", GATEWAY)?;
    let request = get(user, GATEWAY, "http", "web", "/echo", api.cacert())?;
    let (reply, took) = await_status(&request, 200, LIVE_DEADLINE)?;
    println!("web: registration to first 200 through the proxy: {took:?}");
    let echo = echo_of(&reply, "web")?;
    assert_eq!(received(&echo, "x-forwarded-for"), [lease.ip.to_string()], "{reply}");
    assert_eq!(received(&echo, "host"), ["web.prox.local"], "{reply}");
    let reply = get(user, GATEWAY, "https", "web", "/echo", api.cacert())?.run()?;
    assert_eq!(received(&echo_of(&reply, "web")?, "x-forwarded-proto"), ["https"], "{reply}");

    assert_resolves(outside, WAN_ADDRESS, "web", WAN_ADDRESS)?;
    let reply = get(outside, WAN_ADDRESS, "http", "web", "/echo", api.cacert())?.run()?;
    let echo = echo_of(&reply, "web")?;
    assert_eq!(received(&echo, "x-forwarded-for"), [WAN_UPSTREAM.to_string()], "from the WAN: {reply}");
    Ok(())
}

/// The appliance is the container's init, PID 1 of its own pid namespace, and its root is host
/// uid and gid [`ID_BASE`]: an unprivileged container.
fn assert_unprivileged_init(container: &Container) -> Result<()> {
    let pid = container.init_pid()?;
    let proc = |file: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/{file}")).with_context(|| format!("/proc/{pid}/{file}"))
    };
    let cmdline = proc("cmdline")?;
    ensure!(
        cmdline.starts_with(&format!("{INIT}\0")),
        "lxc-info's pid {pid} is not the appliance: {cmdline:?}"
    );
    // `/sbin/init` is the template's link to the appliance binary.
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).with_context(|| format!("/proc/{pid}/exe"))?;
    ensure!(exe.ends_with(APPLIANCE.trim_start_matches('/')), "init of pid {pid} runs {}", exe.display());
    let status = proc("status")?;
    let field = |name: &str| -> Vec<String> {
        let line = status.lines().find_map(|l| l.strip_prefix(name)).unwrap_or_default();
        line.split_whitespace().map(str::to_owned).collect()
    };
    assert_eq!(field("NSpid:").last().map(String::as_str), Some("1"), "not PID 1 inside:\n{status}");
    let root = ID_BASE.to_string();
    assert_eq!(field("Uid:"), [root.as_str(); 4], "{status}");
    assert_eq!(field("Gid:"), [root.as_str(); 4], "{status}");
    for map in ["uid_map", "gid_map"] {
        let words: Vec<String> = proc(map)?.split_whitespace().map(str::to_owned).collect();
        assert_eq!(words, ["0".to_owned(), root.clone(), ID_COUNT.to_string()], "/proc/{pid}/{map}");
    }
    ensure!(container.log().contains("running as pid 1"), "the appliance did not see itself as pid 1");
    Ok(())
}

/// `log` shows a graceful stop on `signal`, and after it the appliance's last word, `stopped`.
fn assert_graceful_stop(log: &str, signal: &str) -> Result<()> {
    let wanted = format!("signal=\"{signal}\"");
    let stopping = log
        .lines()
        .position(|l| l.contains("stopping") && l.contains(&wanted) && l.contains("mode=\"graceful\""))
        .with_context(|| format!("no graceful stop on {signal} in the log"))?;
    ensure!(
        log.lines().skip(stopping).any(|l| l.trim_end().ends_with(" stopped")),
        "no clean `stopped` after the {signal}"
    );
    Ok(())
}
