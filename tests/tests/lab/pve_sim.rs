//! `pve-sim`, the Proxmox API test double, driven as the provisioner drives a node: with curl in
//! the node's namespace, trusting the sim's certificate. Token auth (401), unknown paths (501),
//! what the official schema refuses (400: a bad `net0`, an unknown parameter, a wrong type),
//! then a template uploaded, CT 100 created exactly as the provisioner creates it (decision 3 of
//! issue 6), started for real with LXC: the appliance in it takes an address on `vmbr0` by DHCP,
//! which `interfaces` reports, and answers its health check there. Its state volume goes to a
//! second container and back (the upgrade's moves), both are destroyed, and nothing is left: no
//! config, no LXC container, no volume directory.

use std::path::Path;

use anyhow::{Context, Result, ensure};
use proximity_tests::pve::node::{NODE_ADDRESS, Node};
use proximity_tests::wait;
use serde_json::Value;

use crate::pve_api::{Api, Ct100, DHCP_TIMEOUT, PVE_SIM, lan_bridge, replaced, template};

#[test]
fn pve_sim_runs_the_appliance_container_the_way_the_provisioner_asks() -> Result<()> {
    Node::with(Path::new(PVE_SIM), journey)
}

fn journey(node: &Node) -> Result<()> {
    let api = Api { node };
    // Auth and paths, as Proxmox answers them.
    let (status, _) = api.call("GET", "/version", &[], false)?;
    ensure!(status == 401, "no token");
    let version = api.ok("GET", "/version", &[])?;
    ensure!(version["repoid"] == "pve-sim", "{:?} != {:?}", version["repoid"], "pve-sim");
    let body = api.fails(501, "GET", "/nodes/pve/qemu-nope", &[])?;
    ensure!(body["data"] == Value::Null, "{:?} != {:?}", body["data"], Value::Null);
    ensure!(
        api.ok("GET", "/nodes/pve/network", &[("type", "any_bridge")])?.to_string().contains("\"vmbr0\"")
    );
    api.fails_with(
        500,
        "Configuration file 'nodes/pve/lxc/100.conf' does not exist\n",
        "GET",
        "/nodes/pve/lxc/100/config",
        &[],
    )?;

    // The template, uploaded as the provisioner uploads it.
    let volid = api.upload(&template(node.dir())?)?;
    let content = api.ok("GET", "/nodes/pve/storage/local/content", &[("content", "vztmpl")])?;
    ensure!(content.as_array().is_some_and(|c| c.iter().any(|v| v["volid"] == volid)), "content: {content}");

    // CT 100 exactly as the provisioner creates it.
    lan_bridge(node)?;
    let spec = Ct100::new(&volid);
    let create = spec.params();
    let (net0, description) = (spec.param("net0").to_owned(), spec.param("description").to_owned());
    // What Proxmox's schema refuses, the sim refuses, before doing anything.
    let bad_net0 = format!("{net0},frobnicate=1");
    let invalid = [
        ("net0", replaced(&create, "net0", &bad_net0)),
        ("frobnicate", replaced(&create, "frobnicate", "1")),
        ("memory", replaced(&create, "memory", "lots")),
    ];
    for (param, params) in invalid {
        let body = api.fails(400, "POST", "/nodes/pve/lxc", &params)?;
        ensure!(body["errors"][param].is_string(), "no error for {param}: {body}");
        ensure!(body["message"] == "Parameter verification failed.\n", "{body}");
    }
    let listed = api.ok("GET", "/nodes/pve/lxc", &[])?;
    ensure!(listed == Value::Array(Vec::new()), "a refused create made something: {listed}");
    api.run("POST", "/nodes/pve/lxc", &create)?;
    api.fails_with(500, "CT 100 already exists on node 'pve'\n", "POST", "/nodes/pve/lxc", &create)?;
    let config = api.config(100)?;
    ensure!(
        config["description"] == description.as_str(),
        "{:?} != {:?}",
        config["description"],
        description.as_str()
    );
    ensure!(config["memory"] == 256, "{:?} != {:?}", config["memory"], 256);
    let mp0 = config["mp0"].as_str().context("no mp0")?.to_owned();
    ensure!(mp0.starts_with("local-lvm:subvol-100-disk-1,mp=/var/lib/proximity,backup=1"), "mp0: {mp0}");
    let hwaddr = config["net0"].as_str().and_then(|n| n.split(',').find_map(|p| p.strip_prefix("hwaddr=")));
    let hwaddr = hwaddr.context("net0 got no hwaddr")?.to_ascii_lowercase();

    // Started for real: the appliance takes an address on vmbr0 by DHCP and answers there.
    api.run("POST", "/nodes/pve/lxc/100/status/start", &[])?;
    let status = api.ok("GET", "/nodes/pve/lxc/100/status/current", &[])?;
    ensure!(status["status"] == "running", "{:?} != {:?}", status["status"], "running");
    let wan = wait::until(DHCP_TIMEOUT, "eth0's DHCP address in interfaces", || {
        let interfaces = api.ok("GET", "/nodes/pve/lxc/100/interfaces", &[])?;
        let eth0 = interfaces.as_array().into_iter().flatten().find(|i| i["name"] == "eth0").cloned();
        Ok(eth0.filter(|e| e["inet"].as_str().is_some_and(|a| a.starts_with("192.168.100."))))
    })?;
    ensure!(wan["hwaddr"] == hwaddr.as_str(), "{:?} != {:?}", wan["hwaddr"], hwaddr.as_str());
    let address = wan["inet"].as_str().and_then(|a| a.split('/').next()).context("no address")?.to_owned();
    ensure!(address != NODE_ADDRESS.to_string());
    let health = wait::until(DHCP_TIMEOUT, "the appliance's health on its WAN address", || {
        let out = node
            .command("curl")
            .args(["-sk", "--max-time", "2", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("https://{address}:9090/v1/health"))
            .output()?;
        Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()).filter(|c| c == "200"))
    })?;
    ensure!(health == "200", "{:?} != {:?}", health, "200");
    api.fails_with(500, "CT 100 is running - destroy failed\n", "DELETE", "/nodes/pve/lxc/100", &[])?;
    api.fails(500, "POST", "/nodes/pve/lxc/100/move_volume", &[("volume", "mp0"), ("target-vmid", "101")])?;

    // The upgrade's moves: the state volume to a staging CT and back, its files with it.
    api.run("POST", "/nodes/pve/lxc/100/status/shutdown", &[("timeout", "20")])?;
    let status = api.ok("GET", "/nodes/pve/lxc/100/status/current", &[])?;
    ensure!(status["status"] == "stopped", "after shutdown: {status}");
    api.fails_with(500, "CT 100 not running\n", "POST", "/nodes/pve/lxc/100/status/stop", &[])?;
    let state = node.data_dir().join("storage/local-lvm/images/100/subvol-100-disk-1");
    let written = std::fs::read_dir(&state)?.count();
    ensure!(written > 0, "the appliance wrote nothing to its state volume {}", state.display());
    let staging = api.ok("GET", "/cluster/nextid", &[])?;
    ensure!(staging == "101", "{:?} != {:?}", staging, "101");
    let staging_create: Vec<(&str, &str)> = create
        .iter()
        .filter(|(k, _)| !matches!(*k, "mp0" | "vmid" | "tags"))
        .copied()
        .chain([("vmid", "101"), ("tags", "proximity;proximity-staging")])
        .collect();
    api.run("POST", "/nodes/pve/lxc", &staging_create)?;
    let to_staging = [("volume", "mp0"), ("target-vmid", "101"), ("target-volume", "mp0")];
    api.run("POST", "/nodes/pve/lxc/100/move_volume", &to_staging)?;
    let left = api.config(100)?;
    ensure!(left["mp0"] == Value::Null, "100 kept its mp0: {left}");
    let moved = api.config(101)?["mp0"].as_str().context("101 has no mp0")?.to_owned();
    ensure!(moved.starts_with("local-lvm:subvol-101-disk-"), "moved: {moved}");
    api.run(
        "POST",
        "/nodes/pve/lxc/101/move_volume",
        &[("volume", "mp0"), ("target-vmid", "100"), ("target-volume", "mp0")],
    )?;
    let back = api.config(100)?["mp0"].as_str().context("100 has no mp0")?.to_owned();
    ensure!(
        back.starts_with("local-lvm:subvol-100-disk-") && back.contains("mp=/var/lib/proximity"),
        "back: {back}"
    );
    let volume = back.split(',').next().and_then(|v| v.strip_prefix("local-lvm:")).context("volume")?;
    let path = node.data_dir().join("storage/local-lvm/images/100").join(volume);
    ensure!(std::fs::read_dir(&path)?.count() == written, "the state volume lost files on its way");

    // Destroyed, nothing is left.
    api.run("DELETE", "/nodes/pve/lxc/101", &[("purge", "1"), ("destroy-unreferenced-disks", "1")])?;
    api.run(
        "DELETE",
        "/nodes/pve/lxc/100",
        &[("purge", "1"), ("destroy-unreferenced-disks", "1"), ("force", "1")],
    )?;
    api.fails(500, "GET", "/nodes/pve/lxc/100/config", &[])?;
    let listed = api.ok("GET", "/nodes/pve/lxc", &[])?;
    ensure!(listed == Value::Array(Vec::new()), "containers left: {listed}");
    let images = node.data_dir().join("storage/local-lvm/images");
    ensure!(std::fs::read_dir(&images)?.count() == 0, "volumes left in {}", images.display());
    let lxcpath = node.data_dir().join("lxc");
    let lxc_ls = node.command("lxc-ls").arg("-P").arg(&lxcpath).output()?;
    ensure!(String::from_utf8_lossy(&lxc_ls.stdout).trim().is_empty(), "LXC still has containers");
    api.run("DELETE", &format!("/nodes/pve/storage/local/content/{}", volid.replace('/', "%2F")), &[])?;
    let content = api.ok("GET", "/nodes/pve/storage/local/content", &[("content", "vztmpl")])?;
    ensure!(content == Value::Array(Vec::new()), "templates left: {content}");

    let log = node.request_log()?;
    ensure!(log.iter().any(|e| e.status == 401 && e.path == "/api2/json/version"), "request log: {log:?}");
    ensure!(
        log.iter().any(|e| e.method == "POST" && e.path == "/api2/json/nodes/pve/lxc" && e.status == 200)
    );
    Ok(())
}

#[test]
fn pve_sim_applies_network_changes_and_stops_its_containers_with_itself() -> Result<()> {
    Node::with(Path::new(PVE_SIM), network_then_stop)
}

/// The network API (what the provisioner's API mode uses for `vmbrN`), then SIGTERM to the
/// sim with a container running.
fn network_then_stop(node: &Node) -> Result<()> {
    let api = Api { node };
    // `proximity-lan` is not a `pve-iface`: the provisioner must make it itself (DESIGN.md).
    let body =
        api.fails(400, "POST", "/nodes/pve/network", &[("iface", "proximity-lan"), ("type", "bridge")])?;
    ensure!(body["errors"]["iface"].is_string(), "{body}");
    // Nothing pending: a reload that changes nothing, as ifreload of an unchanged file.
    api.run("PUT", "/nodes/pve/network", &[])?;
    let vmbr1 = [("iface", "vmbr1"), ("type", "bridge"), ("cidr", "10.30.0.1/24"), ("autostart", "1")];
    api.ok("POST", "/nodes/pve/network", &vmbr1)?;
    let again = api.fails(400, "POST", "/nodes/pve/network", &vmbr1)?;
    ensure!(again["errors"]["iface"] == "interface already exists", "{again}");
    let pending = api.ok("GET", "/nodes/pve/network/vmbr1", &[])?;
    ensure!(pending["active"] == 0 && pending["type"] == "bridge", "pending: {pending}");
    ensure!(node.netns().ip(&["link", "show", "vmbr1"]).is_err(), "vmbr1 exists before the apply");
    // As Proxmox, the listing carries the pending diff beside its data, until applied.
    let (_, listing) = api.call("GET", "/nodes/pve/network", &[], true)?;
    let changes = listing["changes"].as_str().unwrap_or_default();
    ensure!(
        changes.contains("+iface vmbr1 inet static") && changes.contains("+\tcidr 10.30.0.1/24"),
        "{listing}"
    );
    api.run("PUT", "/nodes/pve/network", &[])?;
    let (_, listing) = api.call("GET", "/nodes/pve/network", &[], true)?;
    ensure!(listing.get("changes").is_none(), "changes after the apply: {listing}");
    let addrs = node.netns().ipv4_addrs("vmbr1")?;
    ensure!(addrs == [([10, 30, 0, 1].into(), 24)], "vmbr1 has {addrs:?}");
    let bridges = api.ok("GET", "/nodes/pve/network", &[("type", "any_bridge")])?;
    let listed = bridges.as_array().into_iter().flatten().find(|b| b["iface"] == "vmbr1").cloned();
    ensure!(listed.is_some_and(|b| b["active"] == 1 && b["cidr"] == "10.30.0.1/24"), "bridges: {bridges}");
    api.ok("DELETE", "/nodes/pve/network/vmbr1", &[])?;
    ensure!(node.netns().ip(&["link", "show", "vmbr1"]).is_ok(), "vmbr1 went before the apply");
    api.run("PUT", "/nodes/pve/network", &[])?;
    ensure!(node.netns().ip(&["link", "show", "vmbr1"]).is_err(), "vmbr1 is still there");

    // A NIC on a missing bridge: the start fails as Proxmox's does, the log says why.
    let volid = api.upload(&template(node.dir())?)?;
    let spec = Ct100::new(&volid);
    api.run("POST", "/nodes/pve/lxc", &spec.params())?;
    let (exit, log) = api.task_result(&api.ok("POST", "/nodes/pve/lxc/100/status/start", &[])?)?;
    ensure!(exit == "startup for container '100' failed", "exit status {exit:?}");
    ensure!(log.to_string().contains("bridge 'proximity-lan' does not exist"), "log: {log}");

    // A container the sim started stops with it (lxc-stop -k on SIGTERM).
    lan_bridge(node)?;
    api.run("POST", "/nodes/pve/lxc/100/status/start", &[])?;
    let info = |node: &Node| -> Result<String> {
        let out = node.lxc("info", 100).arg("-s").output()?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    ensure!(info(node)?.contains("RUNNING"), "CT 100 after start: {}", info(node)?);
    let status = node.stop_sim()?;
    ensure!(status.success(), "pve-sim exited with {status}");
    ensure!(info(node)?.contains("STOPPED"), "CT 100 after the sim's stop: {}", info(node)?);
    Ok(())
}
