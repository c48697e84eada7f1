//! The lab's side of `pve-sim`: the API as the provisioner speaks it (curl in the node's
//! namespace, trusting the sim's certificate, polling tasks), and the template the image
//! crate builds from the lab's static appliance.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use proximity_config::RawConfig;
use proximity_provisioner::deploy::spec::Spec;
use proximity_tests::lxc::{self, static_binary};
use proximity_tests::pve::node::{BRIDGE, Node};
use proximity_tests::wait;
use serde_json::Value;

/// The sim's binary.
pub(crate) const PVE_SIM: &str = env!("CARGO_BIN_EXE_pve-sim");
/// The LAN bridge the provisioner makes on the node (here the test makes it).
pub(crate) const LAN_BRIDGE: &str = "proximity-lan";
/// A task that takes longer (unpacking a template, starting a container) is stuck.
pub(crate) const TASK_TIMEOUT: Duration = Duration::from_secs(60);
/// From the start task's end to the appliance's WAN address from DHCP.
pub(crate) const DHCP_TIMEOUT: Duration = Duration::from_secs(30);

/// The API as the provisioner speaks it, with curl in the node's namespace.
pub(crate) struct Api<'n> {
    pub(crate) node: &'n Node,
}

impl Api<'_> {
    /// `METHOD /api2/json<path>` with `params` (query for GET/DELETE, form body otherwise), with
    /// or without the token; status and JSON body.
    pub(crate) fn call(
        &self,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
        token: bool,
    ) -> Result<(u16, Value)> {
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

    pub(crate) fn read(&self, mut cmd: std::process::Command) -> Result<(u16, Value)> {
        let out = cmd.output().context("cannot run curl")?;
        ensure!(out.status.success(), "curl failed: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').context("no status from curl")?;
        let status: u16 = status.trim().parse().with_context(|| format!("bad status in {text:?}"))?;
        let body = serde_json::from_str(body).with_context(|| format!("not JSON ({status}): {body:?}"))?;
        Ok((status, body))
    }

    /// A call that must succeed; its `data`.
    pub(crate) fn ok(&self, method: &str, path: &str, params: &[(&str, &str)]) -> Result<Value> {
        let (status, body) = self.call(method, path, params, true)?;
        ensure!(status == 200, "{method} {path}: {status} {body}");
        Ok(body["data"].clone())
    }

    /// A call that must fail with `status`; the body.
    pub(crate) fn fails(
        &self,
        status: u16,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<Value> {
        let (got, body) = self.call(method, path, params, true)?;
        ensure!(got == status, "{method} {path}: wanted {status}, got {got} {body}");
        Ok(body)
    }

    /// A call that must fail with `status` and Proxmox's `message`.
    pub(crate) fn fails_with(
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

    /// Polls a task until it stops; its exit status and its log.
    pub(crate) fn task_result(&self, upid: &Value) -> Result<(String, Value)> {
        let upid = upid.as_str().with_context(|| format!("no UPID: {upid}"))?;
        ensure!(upid.starts_with("UPID:pve:"), "not a UPID: {upid}");
        let path = format!("/nodes/pve/tasks/{upid}/status");
        let status = wait::until(TASK_TIMEOUT, &format!("task {upid}"), || {
            let status = self.ok("GET", &path, &[])?;
            Ok((status["status"] == "stopped").then_some(status))
        })?;
        let exit = status["exitstatus"].as_str().context("a stopped task has an exitstatus")?.to_owned();
        let log = self.ok("GET", &format!("/nodes/pve/tasks/{upid}/log"), &[])?;
        Ok((exit, log))
    }

    /// Polls a task until it stops; fails with its log unless it ended `OK`.
    pub(crate) fn wait_task(&self, upid: &Value) -> Result<()> {
        let (exit, log) = self.task_result(upid)?;
        if exit != "OK" {
            bail!("task {upid} failed: {exit}\nlog: {log}");
        }
        Ok(())
    }

    /// `call` + `wait_task` for a long operation.
    pub(crate) fn run(&self, method: &str, path: &str, params: &[(&str, &str)]) -> Result<()> {
        let upid = self.ok(method, path, params)?;
        self.wait_task(&upid)
    }

    /// Uploads the template `file` to `local` as the provisioner does (multipart, with its
    /// SHA-256) and waits for the task; its volume id.
    pub(crate) fn upload(&self, file: &Path) -> Result<String> {
        let name = file.file_name().context("a template file has a name")?.to_string_lossy().into_owned();
        let mut cmd = self.node.command("curl");
        cmd.args(["-sS", "-X", "POST", "-w", "\n%{http_code}", "--cacert"]).arg(self.node.ca_file());
        cmd.arg("-H").arg(format!("Authorization: PVEAPIToken={}", self.node.token()));
        let sum = sha256_hex(file)?;
        cmd.args([
            "-F",
            "content=vztmpl",
            "-F",
            &format!("checksum={sum}"),
            "-F",
            "checksum-algorithm=sha256",
        ]);
        cmd.arg("-F").arg(format!("filename=@{}", file.display()));
        cmd.arg(format!("{}/api2/json/nodes/pve/storage/local/upload", self.node.url()));
        let (status, body) = self.read(cmd)?;
        ensure!(status == 200, "upload: {status} {body}");
        self.wait_task(&body["data"])?;
        Ok(format!("local:vztmpl/{name}"))
    }

    pub(crate) fn config(&self, vmid: u32) -> Result<Value> {
        self.ok("GET", &format!("/nodes/pve/lxc/{vmid}/config"), &[])
    }
}

/// The template `proximity up` would upload: [`proximity_image::build`] from the lab's static
/// appliance, with the container's interfaces and state dir, into `dir`.
pub(crate) fn template(dir: &Path) -> Result<PathBuf> {
    let mut config = RawConfig::default();
    config.lan.interface = lxc::LAN_IFACE.to_owned();
    config.wan.interface = lxc::WAN_IFACE.to_owned();
    config.state.dir = lxc::STATE_DIR.to_owned();
    let inputs = proximity_image::Inputs {
        appliance: static_binary()?,
        config: config.to_toml().context("cannot write the template's config")?,
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    Ok(proximity_image::build(&inputs, dir)?.path)
}

/// `params` with `key` set to `value` (added when absent).
pub(crate) fn replaced<'a>(
    params: &[(&'a str, &'a str)],
    key: &'a str,
    value: &'a str,
) -> Vec<(&'a str, &'a str)> {
    params.iter().filter(|(k, _)| *k != key).copied().chain([(key, value)]).collect()
}

pub(crate) fn sha256_hex(path: &Path) -> Result<String> {
    let digest = ring::digest::digest(&ring::digest::SHA256, &std::fs::read(path)?);
    Ok(digest.as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

/// The `proximity-lan` bridge on the node, made as the provisioner makes it in host mode (with
/// `ip` here; the provisioner uses rtnetlink).
pub(crate) fn lan_bridge(node: &Node) -> Result<()> {
    node.netns().ip(&["link", "add", LAN_BRIDGE, "type", "bridge"])?;
    node.netns().ip(&["link", "set", LAN_BRIDGE, "up"])?;
    Ok(())
}

/// CT 100 as the provisioner creates it (issue 6, decision 3), from template `volid`: the
/// provisioner's own [`Spec`], so the sim is tested with the calls `proximity up` makes.
pub(crate) struct Ct100 {
    params: Vec<(&'static str, String)>,
}

impl Ct100 {
    pub(crate) fn new(volid: &str) -> Ct100 {
        let spec = Spec {
            vmid: 100,
            template: volid.to_owned(),
            storage: "local-lvm".to_owned(),
            wan_bridge: BRIDGE.to_owned(),
            lan_bridge: LAN_BRIDGE.to_owned(),
        };
        Ct100 { params: spec.create_params(true) }
    }

    /// The parameters of `POST /nodes/{node}/lxc`.
    pub(crate) fn params(&self) -> Vec<(&str, &str)> {
        self.params.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    /// One parameter's value (empty when absent).
    pub(crate) fn param(&self, key: &str) -> &str {
        self.params.iter().find(|(k, _)| *k == key).map_or("", |(_, v)| v.as_str())
    }
}
