//! What the app tests share: a lab with the appliance, a LAN client that drives the admin API,
//! backends that got their address by DHCP, and asking for an app by name as a user does: the
//! name looked up with `dig` at the appliance, then curl to the address it answered.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use proximity_config::RawConfig;
use proximity_tests::dns::query;
use proximity_tests::http::{Admin, Curl, Reply, curl};
use proximity_tests::{GATEWAY, Host, Lab};
use serde_json::{Value, json};

use crate::support::DOMAIN;

pub(crate) const LAB_BACKEND: &str = env!("CARGO_BIN_EXE_lab-backend");
pub(crate) const WS_CLIENT: &str = env!("CARGO_BIN_EXE_lab-ws-client");
/// Where backends listen in their namespaces.
pub(crate) const BACKEND_PORT: u16 = 8080;
/// How long a change made through the API may take to show to a client. The issue promises
/// 10 ms; this is a deadline against hangs, tests print what they measured.
pub(crate) const LIVE_DEADLINE: Duration = Duration::from_secs(5);

/// `<label>.prox.local`.
pub(crate) fn fqdn(label: &str) -> String {
    format!("{label}.{DOMAIN}")
}

/// A started appliance (with `edit` applied to the lab's config) and the API driven from client
/// 0, which got its address by dhclient first. Returns the config for restarts and state paths.
pub(crate) fn start(lab: &Lab, edit: impl FnOnce(&mut RawConfig)) -> Result<RawConfig> {
    let mut config = lab.config();
    edit(&mut config);
    lab.start_appliance(&config)?;
    lab.client(0).dhclient().obtain()?;
    Ok(config)
}

/// The admin API as client 0 uses it.
pub(crate) fn admin<'l>(lab: &'l Lab, config: &RawConfig) -> Result<Admin<'l>> {
    Admin::connect(lab.client(0), GATEWAY, config.state.dir.as_ref())
}

/// `{"name", "backend": {"ip"}, "port"}`.
pub(crate) fn app_by_ip(name: &str, ip: Ipv4Addr) -> Value {
    json!({ "name": name, "backend": { "ip": ip.to_string() }, "port": BACKEND_PORT })
}

/// The single address `server` answers for `name`, asked with dig from `host`.
pub(crate) fn resolve(host: &Host, server: Ipv4Addr, name: &str) -> Result<Ipv4Addr> {
    let reply = query(host, server, name, "A").run()?;
    match reply.addresses()[..] {
        [ip] => Ok(ip),
        _ => anyhow::bail!("{name} @{server} from {}: expected one address, got {reply}", host.label()),
    }
}

/// `scheme://<name>.prox.local<path>` from `host`, the name resolved at `server` (the
/// appliance's LAN or WAN address), trusting `cacert` for https.
pub(crate) fn get<'h>(
    host: &'h Host,
    server: Ipv4Addr,
    scheme: &str,
    label: &str,
    path: &str,
    cacert: &std::path::Path,
) -> Result<Curl<'h>> {
    let name = fqdn(label);
    let ip = resolve(host, server, &name)?;
    let port = if scheme == "https" { 443 } else { 80 };
    Ok(curl(host, &format!("{scheme}://{name}{path}")).resolve(&name, port, ip).cacert(cacert))
}

/// Repeats `request` until it is answered with `status`; returns that reply and how long it took.
pub(crate) fn await_status(request: &Curl, status: u16, deadline: Duration) -> Result<(Reply, Duration)> {
    let started = Instant::now();
    let reply = request.await_status(status, deadline)?;
    Ok((reply, started.elapsed()))
}

/// The echo of `lab-backend` in a reply, after checking it came from `backend` with 200.
pub(crate) fn echo_of(reply: &Reply, backend: &str) -> Result<Value> {
    ensure!(reply.status == 200, "expected 200 from {backend}: {reply}");
    let echo = reply.json()?;
    ensure!(echo["backend"] == backend, "answered by another backend than {backend}: {reply}");
    Ok(echo)
}

/// The values the backend received for header `name`.
pub(crate) fn received(echo: &Value, name: &str) -> Vec<String> {
    echo["headers"][name]
        .as_array()
        .map(|values| values.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// The address the appliance answers for `label` from `host` (which must be on the LAN).
pub(crate) fn assert_resolves(host: &Host, server: Ipv4Addr, label: &str, expect: Ipv4Addr) -> Result<()> {
    let got = resolve(host, server, &fqdn(label))?;
    assert_eq!(got, expect, "{} @{server} from {}", fqdn(label), host.label());
    Ok(())
}
