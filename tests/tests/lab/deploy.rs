//! The deploy, end to end, through the Proxmox API: `pve-sim` plays the node, the real
//! `proximity` binary runs in the node's namespace as a user runs it on a node (root, host-mode
//! bridge `proximity-lan`), with the node's certificate pinned by fingerprint. `up` from nothing
//! builds and uploads the template, creates CT 100 and starts it: the appliance takes a WAN
//! address on `vmbr0` by DHCP, proves its CA, answers health and DNS. A client on
//! `proximity-lan` gets a lease from it, resolves names, and reaches the node (the outside)
//! through NAT. Its HTTP server, added with `proximity apps add`, answers at
//! `http(s)://web.prox.local` from the LAN and from the WAN side (the node). A second `up` makes
//! no mutating call (the sim's request log) and says so. A new appliance build upgrades in place
//! with the app and the lease kept (state volume). `down` leaves no container, template,
//! bridge, stanza or state file, and a second `down` finds nothing.

use std::path::Path;

use anyhow::{Context, Result, ensure};
use proximity_config::MacAddr;
use proximity_tests::http::Backend;
use proximity_tests::lxc::static_binary;
use proximity_tests::pve::node::{NODE_ADDRESS, Node};
use proximity_tests::pve::proximity::Proximity;
use proximity_tests::topology::Host;
use proximity_tests::wait;
use serde_json::Value;

use crate::pve_api::PVE_SIM;

/// The app registered in the test.
const APP: &str = "web";
/// Its port on the LAN client.
const APP_PORT: u16 = 8080;
/// The LAN client's MAC.
const CLIENT_MAC: MacAddr = MacAddr([0x02, 0x70, 0x78, 0xfd, 0x01, 0x01]);
/// From `apps add` (or an upgrade's `up`) to the app answering through the proxy.
const APP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// The appliance's LAN address (the gateway), as the provisioner configures it.
const GATEWAY: &str = "10.20.0.1";
/// A server on the node (the outside, for the LAN) that LAN clients reach through NAT.
const OUTSIDE_PORT: u16 = 8090;

/// `dig +short @server name` run by `cmd` (a command for `dig` in some namespace).
fn dig(mut cmd: std::process::Command, server: &str, name: &str) -> Result<String> {
    let out = cmd.args(["+short", "+time=2", "+tries=2", &format!("@{server}"), name]).output()?;
    ensure!(out.status.success(), "dig failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `curl` run by `cmd` for `url`, its host resolved to `address`; the body of a 200.
fn curl(
    mut cmd: std::process::Command,
    url: &str,
    port: u16,
    address: &str,
    cacert: Option<&Path>,
) -> Result<String> {
    cmd.args(["-sS", "--fail", "--max-time", "10", "--resolve", &format!("web.prox.local:{port}:{address}")]);
    if let Some(ca) = cacert {
        cmd.arg("--cacert").arg(ca);
    }
    let out = cmd.arg(url).output()?;
    ensure!(
        out.status.success(),
        "curl {url} via {address} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The app answers over HTTP and HTTPS from the LAN and from the WAN side (polled: the
/// appliance may still be starting after an upgrade).
fn app_answers(node: &Node, client: &Host, wan: &str, ca: &Path) -> Result<()> {
    let mut last = String::new();
    let answered = wait::until(APP_TIMEOUT, "the app through the proxy from both sides", || {
        last.clear();
        let tries = [
            ("LAN http", curl(client.command("curl"), "http://web.prox.local/echo", 80, GATEWAY, None)),
            (
                "LAN https",
                curl(client.command("curl"), "https://web.prox.local/echo", 443, GATEWAY, Some(ca)),
            ),
            ("WAN http", curl(node.command("curl"), "http://web.prox.local/echo", 80, wan, None)),
            ("WAN https", curl(node.command("curl"), "https://web.prox.local/echo", 443, wan, Some(ca))),
        ];
        for (side, body) in tries {
            match body {
                Ok(body) if body.contains("\"backend\":\"web\"") => {}
                Ok(body) => last = format!("{side}: {body}"),
                Err(e) => last = format!("{side}: {e:#}"),
            }
            if !last.is_empty() {
                return Ok(None);
            }
        }
        Ok(Some(()))
    });
    answered.with_context(|| format!("last: {last}"))
}

/// The IPs in `proximity leases --json`.
fn leased(leases: &Value) -> Vec<String> {
    leases.as_array().into_iter().flatten().filter_map(|l| l["ip"].as_str().map(str::to_owned)).collect()
}

#[test]
fn proximity_deploys_upgrades_and_removes_the_appliance_through_the_proxmox_api() -> Result<()> {
    Node::with(Path::new(PVE_SIM), journey)
}

fn journey(node: &Node) -> Result<()> {
    let proximity = Proximity::new(node)?;
    let first = static_binary()?;

    // From nothing.
    let started = std::time::Instant::now();
    let out = proximity.ok(&first, &["up"])?;
    // For the README's measurements; not asserted.
    eprintln!("deploy: up from nothing took {:.1} s", started.elapsed().as_secs_f64());
    ensure!(out.contains("WAN address") && !out.contains("no change"), "first up: {out}");
    let status = proximity.json(&first, &["status", "--json"])?;
    ensure!(status["container"] == "running", "status: {status}");
    ensure!(status["spec_match"] == true, "status: {status}");
    ensure!(status["health"].as_str().is_some_and(|h| h == "ok" || h == "degraded"), "status: {status}");
    let wan = status["wan_address"].as_str().context("no WAN address in status")?.to_owned();
    ensure!(wan.starts_with("192.168.100."), "WAN address {wan} is not from vmbr0's DHCP");
    let link = node.netns().ip(&["-j", "link", "show", "proximity-lan"])?;
    ensure!(link.contains("\"UP\""), "proximity-lan is not up: {link}");
    let stanza = std::fs::read_to_string(proximity.interfaces_dir().join("proximity-lan"))?;
    ensure!(stanza.contains("managed by proximity") && stanza.contains("iface proximity-lan inet manual"));
    let mode = std::fs::metadata(proximity.state_file())?.permissions();
    ensure!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777 == 0o600, "state file mode {mode:?}");

    // A client on the LAN: a lease, names, the outside through NAT.
    let client = node.lan_client("c0", "proximity-lan", CLIENT_MAC)?;
    let lease = client.dhclient().obtain()?;
    ensure!(lease.ip.to_string().starts_with("10.20.0."), "lease {lease:?}");
    ensure!(lease.routers == [GATEWAY.parse::<std::net::Ipv4Addr>()?], "lease {lease:?}");
    client.ping(NODE_ADDRESS)?;
    // The node has no route to the LAN: the server there sees the appliance's WAN address.
    let _outside =
        Backend::lab(node.host(), env!("CARGO_BIN_EXE_lab-backend"), "outside", OUTSIDE_PORT, None)?;
    let echo = curl_json(client.command("curl"), &format!("http://{NODE_ADDRESS}:{OUTSIDE_PORT}/echo"))?;
    let peer = echo["peer"].as_str().unwrap_or_default();
    ensure!(peer.starts_with(&format!("{wan}:")), "the outside saw {peer}, not the WAN address {wan}");
    let ip = lease.ip.to_string();
    ensure!(leased(&proximity.json(&first, &["leases", "--json"])?).contains(&ip), "the lease is not listed");

    // An app on the client, registered through the admin API (pinned CA, token from the state file).
    let _backend = Backend::lab(&client, env!("CARGO_BIN_EXE_lab-backend"), APP, APP_PORT, None)?;
    proximity.ok(&first, &["apps", "add", APP, "--ip", &ip, "--port", &APP_PORT.to_string()])?;
    let apps = proximity.json(&first, &["apps", "list", "--json"])?;
    ensure!(apps.as_array().is_some_and(|a| a.iter().any(|x| x["name"] == APP)), "apps: {apps}");
    ensure!(dig(node.command("dig"), &wan, "web.prox.local")? == wan, "web.prox.local from the WAN side");
    ensure!(dig(client.command("dig"), GATEWAY, "web.prox.local")? == GATEWAY, "web.prox.local from the LAN");
    let ca = node.dir().join("appliance-ca.pem");
    proximity.pinned_ca(&ca)?;
    app_answers(node, &client, &wan, &ca)?;

    // Nothing changed: no mutating call, and it says so.
    let before = node.request_log()?.len();
    let started = std::time::Instant::now();
    let out = proximity.ok(&first, &["up"])?;
    eprintln!("deploy: a no-change up took {:.1} s", started.elapsed().as_secs_f64());
    ensure!(out.contains("no change"), "second up: {out}");
    let mutating: Vec<_> = node.request_log()?.into_iter().skip(before).filter(|e| e.is_mutating()).collect();
    ensure!(mutating.is_empty(), "a second up made mutating calls: {mutating:?}");

    // Another machine (no state file, so no token) is refused rather than taking the appliance over.
    let elsewhere = node.dir().join("elsewhere");
    std::fs::create_dir_all(&elsewhere)?;
    let before = node.request_log()?.len();
    let out = proximity.command(&first, &["up"]).env("HOME", &elsewhere).output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.code() == Some(3), "up without the token: {:?}\n{stderr}", out.status);
    ensure!(stderr.contains("another machine"), "up without the token said: {stderr}");
    let mutating: Vec<_> = node.request_log()?.into_iter().skip(before).filter(|e| e.is_mutating()).collect();
    ensure!(mutating.is_empty(), "up without the token made mutating calls: {mutating:?}");

    // A new build upgrades in place; the state volume (the app) is kept.
    let second = node.dir().join("proximity-appliance");
    std::fs::copy(&first, &second)?;
    let mut bytes = std::fs::read(&second)?;
    bytes.extend_from_slice(b"\0a new build");
    std::fs::write(&second, bytes)?;
    let out = proximity.ok(&second, &["up"])?;
    ensure!(!out.contains("no change"), "upgrade: {out}");
    let status = proximity.json(&second, &["status", "--json"])?;
    ensure!(status["container"] == "running" && status["spec_match"] == true, "after the upgrade: {status}");
    let apps = proximity.json(&second, &["apps", "list", "--json"])?;
    ensure!(
        apps.as_array().is_some_and(|a| a.iter().any(|x| x["name"] == APP)),
        "the upgrade lost the app: {apps}"
    );
    let leases = proximity.json(&second, &["leases", "--json"])?;
    ensure!(leased(&leases).contains(&ip), "the upgrade lost the lease of {ip}: {leases}");
    let state: Value = serde_json::from_str(&std::fs::read_to_string(proximity.state_file())?)?;
    ensure!(
        state["ca_pem"].as_str() == Some(std::fs::read_to_string(&ca)?.as_str()),
        "the upgrade changed the CA"
    );
    app_answers(node, &client, &wan_after_upgrade(&proximity, &second)?, &ca)?;
    let cts = node.request_log()?;
    ensure!(
        cts.iter().any(|e| e.method == "POST" && e.path.ends_with("/move_volume")),
        "no move_volume in {cts:?}"
    );

    // The node reboots: CT 100 is `onboot`, so it comes back by itself (a new init), with its state.
    let init_before = node.init_pid(100)?;
    node.reboot()?;
    let back = wait::until(APP_TIMEOUT, "CT 100 running after the node's reboot", || {
        let status = proximity.json(&second, &["status", "--json"])?;
        Ok((status["container"] == "running" && status["wan_address"].is_string()).then_some(status))
    })?;
    let wan = back["wan_address"].as_str().context("no WAN address after the reboot")?.to_owned();
    ensure!(node.init_pid(100)? != init_before, "CT 100 kept its init across the node's reboot");
    app_answers(node, &client, &wan, &ca)?;

    // Down leaves nothing of ours (the client goes first: it is the test's, not the deploy's).
    drop(_backend);
    drop(_outside);
    drop(client);
    // The check below sees the running container (so its empty answer after `down` means something).
    ensure!(!processes_under(node.data_dir())?.is_empty(), "no process of the running container found");
    let out = proximity.ok(&second, &["down"])?;
    ensure!(out.contains("removed"), "down: {out}");
    let status = proximity.json(&second, &["status", "--json"])?;
    ensure!(status["container"] == "absent", "after down: {status}");
    ensure!(node.netns().ip(&["link", "show", "proximity-lan"]).is_err(), "proximity-lan is still there");
    ensure!(!proximity.interfaces_dir().join("proximity-lan").exists(), "the stanza is still there");
    ensure!(!proximity.state_file().exists(), "the state file is still there");
    let templates: Vec<_> = std::fs::read_dir(node.data_dir().join("storage/local/template/cache"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    ensure!(templates.is_empty(), "templates left: {templates:?}");
    let lxc: Vec<_> = std::fs::read_dir(node.data_dir().join("lxc"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    ensure!(lxc.is_empty(), "containers left: {lxc:?}");
    let left = processes_under(node.data_dir())?;
    ensure!(left.is_empty(), "processes of the deploy left: {left:?}");
    let out = proximity.ok(&second, &["down"])?;
    ensure!(out.contains("nothing to remove"), "second down: {out}");
    Ok(())
}

/// The WAN address `status` reports (the upgraded container may have a new lease).
fn wan_after_upgrade(proximity: &Proximity<'_>, appliance: &Path) -> Result<String> {
    let status = proximity.json(appliance, &["status", "--json"])?;
    Ok(status["wan_address"].as_str().context("no WAN address in status")?.to_owned())
}

/// `curl` of `url` by `cmd`, its 200 body as JSON.
fn curl_json(mut cmd: std::process::Command, url: &str) -> Result<Value> {
    let out = cmd.args(["-sS", "--fail", "--max-time", "10", url]).output()?;
    ensure!(out.status.success(), "curl {url} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).with_context(|| format!("{url} gave no JSON"))
}

/// Processes whose command line names `dir` (the sim's data dir: LXC's monitors) or whose root
/// is under it (the containers' processes), but not the sim itself.
fn processes_under(dir: &Path) -> Result<Vec<String>> {
    let needle = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let root = std::fs::read_link(entry.path().join("root")).unwrap_or_default();
        if (cmdline.contains(&needle) || root.starts_with(dir)) && !cmdline.contains("pve-sim") {
            found.push(format!("{}: {cmdline}", entry.file_name().to_string_lossy()));
        }
    }
    Ok(found)
}

/// The README's main command (`scripts/deploy-demo.sh` runs `deploy-demo` with a `template`
/// build; here the lab's static build): it deploys, shows the app from both sides, reports its
/// figures and removes everything.
#[test]
fn the_deploy_demo_runs_from_nothing_to_down() -> Result<()> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_deploy-demo"))
        .arg("--appliance")
        .arg(static_binary()?)
        .arg("--proximity")
        .arg(Proximity::binary()?)
        .stdin(std::process::Stdio::null())
        .output()
        .context("cannot run deploy-demo")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "deploy-demo failed ({}):\n{stdout}\n{stderr}", out.status);
    let checks = stdout.lines().filter(|l| l.starts_with('✓')).count();
    ensure!(checks == 6, "deploy-demo showed {checks} checks, not 6:\n{stdout}");
    for line in ["no change", "up from nothing", "appliance RSS idle", "removed: container 100"] {
        ensure!(stdout.contains(line), "deploy-demo printed no {line:?}:\n{stdout}");
    }
    Ok(())
}

/// API mode: `--bridge vmbr9` (a name the Proxmox network API accepts) is made with `POST` and
/// applied with `PUT /nodes/{node}/network`, and refused while someone else's network change is
/// pending (applying ours would apply theirs): exit 3, nothing created. Once the user has applied
/// theirs, `up` makes the bridge and puts CT 100's `eth1` on it; `down` removes that bridge and
/// leaves the user's.
#[test]
fn an_api_bridge_waits_for_pending_changes_then_is_made_and_removed_through_the_api() -> Result<()> {
    Node::with(Path::new(PVE_SIM), api_bridge)
}

fn api_bridge(node: &Node) -> Result<()> {
    let proximity = Proximity::new(node)?;
    let appliance = static_binary()?;
    let api = crate::pve_api::Api { node };
    api.ok("POST", "/nodes/pve/network", &[("iface", "vmbr5"), ("type", "bridge"), ("autostart", "1")])?;

    let before = node.request_log()?.len();
    let out = proximity.run(&appliance, &["up", "--bridge", "vmbr9"])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.code() == Some(3), "up with a pending change: {:?}\n{stderr}", out.status);
    ensure!(stderr.contains("pending network changes"), "up with a pending change said: {stderr}");
    let mutating: Vec<_> = node.request_log()?.into_iter().skip(before).filter(|e| e.is_mutating()).collect();
    ensure!(mutating.is_empty(), "a refused up made mutating calls: {mutating:?}");

    // The user applies their change; now up goes through.
    api.run("PUT", "/nodes/pve/network", &[])?;
    proximity.ok(&appliance, &["up", "--bridge", "vmbr9"])?;
    let link = node.netns().ip(&["-j", "link", "show", "vmbr9"])?;
    ensure!(link.contains("\"UP\""), "vmbr9 is not up: {link}");
    let config = api.config(100)?;
    let net1 = config["net1"].as_str().unwrap_or_default();
    ensure!(net1.contains("bridge=vmbr9"), "CT 100's net1 is {net1}");
    let client = node.lan_client("c0", "vmbr9", CLIENT_MAC)?;
    let lease = client.dhclient().obtain()?;
    ensure!(lease.routers == [GATEWAY.parse::<std::net::Ipv4Addr>()?], "lease on vmbr9: {lease:?}");
    drop(client);

    let out = proximity.ok(&appliance, &["down", "--bridge", "vmbr9"])?;
    ensure!(out.contains("vmbr9"), "down: {out}");
    ensure!(node.netns().ip(&["link", "show", "vmbr9"]).is_err(), "vmbr9 is still there");
    ensure!(node.netns().ip(&["link", "show", "vmbr5"]).is_ok(), "down removed the user's vmbr5");
    Ok(())
}

/// Host mode makes the bridge and its stanza on the machine `proximity` runs on, so `up` from
/// another machine (a workstation on the node's network, with root) is refused (exit 3) before
/// anything is changed, there or on the node; `--bridge vmbrN` is the way from afar.
#[test]
fn a_host_bridge_is_refused_off_the_node() -> Result<()> {
    Node::with(Path::new(PVE_SIM), off_the_node)
}

fn off_the_node(node: &Node) -> Result<()> {
    let workstation = node.lan_client("ws", "vmbr0", CLIENT_MAC)?;
    workstation.netns().ip(&["addr", "add", "192.168.100.50/24", "dev", workstation.iface()])?;
    workstation.ping(NODE_ADDRESS)?;
    let proximity = Proximity::new(node)?;
    let binary = workstation.command(&Proximity::binary()?.to_string_lossy());
    let out = proximity.command_in(binary, &static_binary()?, &["up"]).output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.code() == Some(3), "up off the node: {:?}\n{stderr}", out.status);
    ensure!(stderr.contains("not the node"), "up off the node said: {stderr}");
    ensure!(
        workstation.netns().ip(&["link", "show", "proximity-lan"]).is_err(),
        "a bridge on the workstation"
    );
    ensure!(node.netns().ip(&["link", "show", "proximity-lan"]).is_err(), "a bridge on the node");
    ensure!(!proximity.interfaces_dir().join("proximity-lan").exists(), "a stanza on the workstation");
    let mutating: Vec<_> = node.request_log()?.into_iter().filter(|e| e.is_mutating()).collect();
    ensure!(mutating.is_empty(), "a refused up made mutating calls: {mutating:?}");
    Ok(())
}

/// A container at VMID 100 that is not Proximity's (no `proximity` tag) is never touched: `up`
/// and `down` both refuse with exit 3, naming it, and make no mutating call; it is still there.
#[test]
fn someone_elses_container_at_vmid_100_is_left_alone() -> Result<()> {
    Node::with(Path::new(PVE_SIM), foreign_vmid)
}

fn foreign_vmid(node: &Node) -> Result<()> {
    let api = crate::pve_api::Api { node };
    let volid = api.upload(&crate::pve_api::template(node.dir())?)?;
    let params = [
        ("vmid", "100"),
        ("ostemplate", volid.as_str()),
        ("hostname", "db"),
        ("tags", "prod"),
        ("rootfs", "local-lvm:1"),
        ("ostype", "unmanaged"),
        ("unprivileged", "1"),
    ];
    api.run("POST", "/nodes/pve/lxc", &params)?;
    let proximity = Proximity::new(node)?;
    let before = node.request_log()?.len();
    for command in ["up", "down"] {
        let out = proximity.run(&static_binary()?, &[command])?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(out.status.code() == Some(3), "{command} with a foreign CT 100: {:?}\n{stderr}", out.status);
        ensure!(stderr.contains("VMID 100") && stderr.contains("db"), "{command} said: {stderr}");
    }
    let mutating: Vec<_> = node.request_log()?.into_iter().skip(before).filter(|e| e.is_mutating()).collect();
    ensure!(mutating.is_empty(), "refused commands made mutating calls: {mutating:?}");
    let config = api.config(100)?;
    ensure!(config["hostname"] == "db" && config["tags"] == "prod", "CT 100 changed: {config}");
    ensure!(node.netns().ip(&["link", "show", "proximity-lan"]).is_err(), "a bridge was made");
    Ok(())
}
