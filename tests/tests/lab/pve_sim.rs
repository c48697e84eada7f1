//! `pve-sim`, the Proxmox API test double, driven as the provisioner drives a node: with curl in
//! the node's namespace, trusting the sim's certificate. Token auth (401), unknown paths (501),
//! what the official schema refuses (400: a bad `net0`, an unknown parameter, a wrong type),
//! then a template uploaded, CT 100 created exactly as the provisioner creates it (decision 3 of
//! issue 6), started for real with LXC: the appliance in it takes an address on `vmbr0` by DHCP,
//! which `interfaces` reports, and answers its health check there. Its state volume goes to a
//! second container and back (the upgrade's moves), both are destroyed, and nothing is left: no
//! config, no LXC container, no volume directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use proximity_config::RawConfig;
use proximity_tests::lxc::{self, rootfs, static_binary};
use proximity_tests::pve::node::{BRIDGE, NODE_ADDRESS, Node};
use proximity_tests::wait;
use serde_json::Value;

/// The sim's binary.
const PVE_SIM: &str = env!("CARGO_BIN_EXE_pve-sim");
/// The template's file name, as the image crate names it.
const TEMPLATE: &str = "proximity-appliance_0.1.0-000000000000_amd64.tar.zst";
/// The LAN bridge the provisioner makes on the node (here the test makes it).
const LAN_BRIDGE: &str = "proximity-lan";
/// Until the appliance reads `/etc/proximity.toml` by default (issue 6, decision 1, being added
/// in parallel), the container names its config through `entrypoint`, which the sim turns into
/// `lxc.init.cmd` as pve-container does. Drop it (and use the bare decision-3 parameters) then.
const ENTRYPOINT: (&str, &str) = ("entrypoint", "/sbin/proximity-appliance --config /etc/proximity.toml");
/// A task that takes longer (unpacking a template, starting a container) is stuck.
const TASK_TIMEOUT: Duration = Duration::from_secs(60);
/// From the start task's end to the appliance's WAN address from DHCP.
const DHCP_TIMEOUT: Duration = Duration::from_secs(30);

/// The API as the provisioner speaks it, with curl in the node's namespace.
struct Api<'n> {
    node: &'n Node,
}

impl Api<'_> {
    /// `METHOD /api2/json<path>` with `params` (query for GET/DELETE, form body otherwise), with
    /// or without the token; status and JSON body.
    fn call(&self, method: &str, path: &str, params: &[(&str, &str)], token: bool) -> Result<(u16, Value)> {
        let mut cmd = self.node.command("curl");
        cmd.args(["-sS", "--max-time", "30", "-X", method, "-w", "\n%{http_code}", "--cacert"])
            .arg(self.node.ca_file());
        if token {
            cmd.arg("-H").arg(format!("Authorization: PVEAPIToken={}", self.node.token()));
        }
        if matches!(method, "GET" | "DELETE") && !params.is_empty() {
            cmd.arg("-G");
        }
        for (k, v) in params {
            cmd.arg("--data-urlencode").arg(format!("{k}={v}"));
        }
        cmd.arg(format!("{}/api2/json{path}", self.node.url()));
        self.read(cmd)
    }

    fn read(&self, mut cmd: std::process::Command) -> Result<(u16, Value)> {
        let out = cmd.output().context("cannot run curl")?;
        ensure!(out.status.success(), "curl failed: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').context("no status from curl")?;
        let status: u16 = status.trim().parse().with_context(|| format!("bad status in {text:?}"))?;
        let body = serde_json::from_str(body).with_context(|| format!("not JSON ({status}): {body:?}"))?;
        Ok((status, body))
    }

    /// A call that must succeed; its `data`.
    fn ok(&self, method: &str, path: &str, params: &[(&str, &str)]) -> Result<Value> {
        let (status, body) = self.call(method, path, params, true)?;
        ensure!(status == 200, "{method} {path}: {status} {body}");
        Ok(body["data"].clone())
    }

    /// A call that must fail with `status`; the body.
    fn fails(&self, status: u16, method: &str, path: &str, params: &[(&str, &str)]) -> Result<Value> {
        let (got, body) = self.call(method, path, params, true)?;
        ensure!(got == status, "{method} {path}: wanted {status}, got {got} {body}");
        Ok(body)
    }

    /// A call that must fail with `status` and Proxmox's `message`.
    fn fails_with(
        &self,
        status: u16,
        message: &str,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<()> {
        let body = self.fails(status, method, path, params)?;
        ensure!(body["message"] == message, "{method} {path}: wanted {message:?}, got {body}");
        Ok(())
    }

    /// Polls a task until it stops; fails with its log unless it ended `OK`.
    fn wait_task(&self, upid: &Value) -> Result<()> {
        let upid = upid.as_str().with_context(|| format!("no UPID: {upid}"))?;
        ensure!(upid.starts_with("UPID:pve:"), "not a UPID: {upid}");
        let path = format!("/nodes/pve/tasks/{upid}/status");
        let status = wait::until(TASK_TIMEOUT, &format!("task {upid}"), || {
            let status = self.ok("GET", &path, &[])?;
            Ok((status["status"] == "stopped").then_some(status))
        })?;
        if status["exitstatus"] != "OK" {
            let log = self.ok("GET", &format!("/nodes/pve/tasks/{upid}/log"), &[])?;
            bail!("task {upid} failed: {}\nlog: {log}", status["exitstatus"]);
        }
        Ok(())
    }

    /// `call` + `wait_task` for a long operation.
    fn run(&self, method: &str, path: &str, params: &[(&str, &str)]) -> Result<()> {
        let upid = self.ok(method, path, params)?;
        self.wait_task(&upid)
    }

    fn config(&self, vmid: u32) -> Result<Value> {
        self.ok("GET", &format!("/nodes/pve/lxc/{vmid}/config"), &[])
    }
}

/// A template as the image crate makes one: the lab's appliance rootfs (static binary, config,
/// nft), `/sbin/init` the appliance, owned 0:0, as a tar.zst named [`TEMPLATE`] in `dir`.
fn template(dir: &Path) -> Result<PathBuf> {
    let root = dir.join("rootfs");
    let mut config = RawConfig::default();
    config.lan.interface = lxc::LAN_IFACE.to_owned();
    config.wan.interface = lxc::WAN_IFACE.to_owned();
    config.state.dir = lxc::STATE_DIR.to_owned();
    rootfs::build(&root, &static_binary()?, &config)?;
    for empty in ["run", "tmp"] {
        std::fs::create_dir_all(root.join(empty))?;
    }
    std::os::unix::fs::symlink("proximity-appliance", root.join("sbin/init"))?;
    let path = dir.join(TEMPLATE);
    let mut tar = tar::Builder::new(zstd::Encoder::new(std::fs::File::create(&path)?, 3)?);
    add_tree(&mut tar, &root, Path::new("."))?;
    tar.into_inner()?.finish()?;
    Ok(path)
}

/// Appends `dir` (at `name` in the archive) and everything below it, sorted, owned 0:0.
fn add_tree<W: std::io::Write>(tar: &mut tar::Builder<W>, dir: &Path, name: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(dir)?;
    let mut header = tar::Header::new_gnu();
    header.set_metadata(&meta);
    header.set_uid(0);
    header.set_gid(0);
    if meta.file_type().is_symlink() {
        header.set_size(0);
        tar.append_link(&mut header, name, std::fs::read_link(dir)?)?;
    } else if meta.is_dir() {
        header.set_size(0);
        tar.append_data(&mut header, name, std::io::empty())?;
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.flatten().map(|e| e.file_name()).collect();
        entries.sort();
        for entry in entries {
            add_tree(tar, &dir.join(&entry), &name.join(&entry))?;
        }
    } else {
        tar.append_data(&mut header, name, std::fs::File::open(dir)?)?;
    }
    Ok(())
}

/// `params` with `key` set to `value` (added when absent).
fn replaced<'a>(params: &[(&'a str, &'a str)], key: &'a str, value: &'a str) -> Vec<(&'a str, &'a str)> {
    params.iter().filter(|(k, _)| *k != key).copied().chain([(key, value)]).collect()
}

fn sha256_hex(path: &Path) -> Result<String> {
    let digest = ring::digest::digest(&ring::digest::SHA256, &std::fs::read(path)?);
    Ok(digest.as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

#[test]
fn pve_sim_runs_the_appliance_container_the_way_the_provisioner_asks() -> Result<()> {
    let node = Node::start(Path::new(PVE_SIM))?;
    let result = journey(&node);
    result.map_err(|e| anyhow!("{e:#}\n{}", node.diagnostics()))
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
    let file = template(node.dir())?;
    let sum = sha256_hex(&file)?;
    let mut cmd = node.command("curl");
    cmd.args(["-sS", "-X", "POST", "-w", "\n%{http_code}", "--cacert"]).arg(node.ca_file());
    cmd.arg("-H").arg(format!("Authorization: PVEAPIToken={}", node.token()));
    cmd.args(["-F", "content=vztmpl", "-F", &format!("checksum={sum}"), "-F", "checksum-algorithm=sha256"]);
    cmd.arg("-F").arg(format!("filename=@{}", file.display()));
    cmd.arg(format!("{}/api2/json/nodes/pve/storage/local/upload", node.url()));
    let (status, body) = api.read(cmd)?;
    ensure!(status == 200, "upload: {status} {body}");
    api.wait_task(&body["data"])?;
    let volid = format!("local:vztmpl/{TEMPLATE}");
    let content = api.ok("GET", "/nodes/pve/storage/local/content", &[("content", "vztmpl")])?;
    ensure!(content.as_array().is_some_and(|c| c.iter().any(|v| v["volid"] == volid)), "content: {content}");

    // CT 100 exactly as the provisioner creates it.
    let ip = |args: &[&str]| node.netns().ip(args);
    ip(&["link", "add", LAN_BRIDGE, "type", "bridge"])?;
    ip(&["link", "set", LAN_BRIDGE, "up"])?;
    let description =
        format!("Proximity appliance\nproximity-spec: {}\nproximity-template: {volid}", "ab".repeat(32));
    let net0 = format!("name=eth0,bridge={BRIDGE},ip=dhcp,firewall=0");
    let net1 = format!("name=eth1,bridge={LAN_BRIDGE},ip=10.20.0.1/24,firewall=0");
    let create = [
        ("vmid", "100"),
        ("ostemplate", volid.as_str()),
        ("ostype", "unmanaged"),
        ("arch", "amd64"),
        ("unprivileged", "1"),
        ("hostname", "proximity"),
        ("memory", "256"),
        ("swap", "0"),
        ("cores", "1"),
        ("rootfs", "local-lvm:1"),
        ("mp0", "local-lvm:1,mp=/var/lib/proximity,backup=1"),
        ("net0", net0.as_str()),
        ("net1", net1.as_str()),
        ("onboot", "1"),
        ("tags", "proximity"),
        ("description", description.as_str()),
        ENTRYPOINT,
    ];
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
