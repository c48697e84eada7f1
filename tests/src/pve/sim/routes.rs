//! From a validated request (its schema path template) to the sim's handler. Long operations
//! start a task and answer its UPID; the rest answer at once.

use std::sync::Arc;

use serde_json::{Value, json};

use super::Sim;
use super::error::ApiError;
use super::network;
use super::tasks::DEFAULT_LOG_LIMIT;
use crate::pve::schema::Checked;

/// What `GET /version` says: the API level the sim follows, and that it is the test double.
const VERSION: &str = "9.0.0";
const RELEASE: &str = "9.0";
const REPOID: &str = "pve-sim";

/// A parameter from the body/query, else from the path.
fn param<'a>(c: &'a Checked, name: &str) -> Option<&'a str> {
    c.params.get(name).or_else(|| c.path_params.get(name)).map(String::as_str)
}

fn required<'a>(c: &'a Checked, name: &str) -> Result<&'a str, ApiError> {
    param(c, name).ok_or_else(|| ApiError::param(name, "property is missing and it is not optional"))
}

fn number<T: std::str::FromStr>(c: &Checked, name: &str) -> Result<Option<T>, ApiError> {
    param(c, name)
        .map(|v| {
            v.parse()
                .map_err(|_| ApiError::param(name, format!("value '{v}' does not look like a valid integer")))
        })
        .transpose()
}

fn flag(c: &Checked, name: &str) -> bool {
    matches!(param(c, name), Some("1" | "true" | "yes" | "on"))
}

fn vmid(c: &Checked) -> Result<u32, ApiError> {
    number(c, "vmid")?.ok_or_else(|| ApiError::param("vmid", "property is missing and it is not optional"))
}

/// Proxmox's check before a stop or shutdown task: the CT exists and runs.
fn running(sim: &Sim, vmid: u32) -> Result<(), ApiError> {
    sim.lxc.read(vmid)?;
    match sim.lxc.state(vmid).0 {
        true => Ok(()),
        false => Err(ApiError::internal(format!("CT {vmid} not running"))),
    }
}

/// Runs the handler of `method` on `c.template`.
pub fn dispatch(sim: &Arc<Sim>, method: &str, c: &Checked, file: Option<Vec<u8>>) -> Result<Value, ApiError> {
    if let Some(node) = c.path_params.get("node") {
        if *node != sim.options.node {
            return Err(ApiError::internal(format!(
                "hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known"
            )));
        }
    }
    let owner = sim.options.token.owner();
    match (method, c.template.as_str()) {
        ("GET", "/version") => Ok(json!({ "version": VERSION, "release": RELEASE, "repoid": REPOID })),
        ("GET", "/nodes") => Ok(json!([{ "node": sim.options.node, "status": "online", "type": "node",
                                         "id": format!("node/{}", sim.options.node) }])),
        ("GET", "/cluster/nextid") => Ok(json!(sim.lxc.next_id(number(c, "vmid")?)?.to_string())),
        ("GET", "/nodes/{node}/network") => sim.network.list(param(c, "type")),
        ("POST", "/nodes/{node}/network") => sim.network.create(&c.params).map(|()| Value::Null),
        ("PUT", "/nodes/{node}/network") => {
            let (added, removed) = sim.network.take();
            Ok(json!(
                sim.tasks.spawn("srvreload", "networking", &owner, move |log| network::apply(
                    &added, &removed, log
                ))
            ))
        }
        ("GET", "/nodes/{node}/network/{iface}") => sim.network.get(required(c, "iface")?),
        ("DELETE", "/nodes/{node}/network/{iface}") => {
            sim.network.delete(required(c, "iface")?).map(|()| Value::Null)
        }
        ("GET", "/nodes/{node}/storage") => Ok(sim.storage.list()),
        ("GET", "/nodes/{node}/storage/{storage}/content") => {
            sim.storage.content(required(c, "storage")?, param(c, "content"), number(c, "vmid")?)
        }
        ("DELETE", "/nodes/{node}/storage/{storage}/content/{volume}") => {
            let storage = required(c, "storage")?.to_owned();
            let volume = required(c, "volume")?.to_owned();
            let volid = if volume.contains(':') { volume.clone() } else { format!("{storage}:{volume}") };
            sim.storage.template_path(&volid)?;
            let s = Arc::clone(sim);
            Ok(json!(sim.tasks.spawn("imgdel", &storage.clone(), &owner, move |_| {
                s.storage.delete_template(&storage, &volume)
            })))
        }
        ("POST", "/nodes/{node}/storage/{storage}/upload") => upload(sim, c, file, &owner),
        ("GET", "/nodes/{node}/lxc") => {
            Ok(Value::Array(sim.lxc.vmids().into_iter().filter_map(|id| sim.lxc.status(id).ok()).collect()))
        }
        ("POST", "/nodes/{node}/lxc") => {
            let create = sim.lxc.begin_create(&c.params, &sim.storage)?;
            let (id, start) = (create.vmid, flag(c, "start"));
            let s = Arc::clone(sim);
            Ok(json!(sim.tasks.spawn("vzcreate", &id.to_string(), &owner, move |log| {
                s.lxc.finish_create(create, &s.storage, log)?;
                if start { s.lxc.start(id, &s.storage, log) } else { Ok(()) }
            })))
        }
        ("GET", "/nodes/{node}/lxc/{vmid}/config") => Ok(sim.lxc.read(vmid(c)?)?.to_json()),
        ("PUT", "/nodes/{node}/lxc/{vmid}/config") => {
            sim.lxc.update(vmid(c)?, &c.params).map(|()| Value::Null)
        }
        ("DELETE", "/nodes/{node}/lxc/{vmid}") => {
            let (id, force) = (vmid(c)?, flag(c, "force"));
            let unreferenced = flag(c, "destroy-unreferenced-disks");
            sim.lxc.check_destroy(id, force)?;
            let s = Arc::clone(sim);
            Ok(json!(sim.tasks.spawn("vzdestroy", &id.to_string(), &owner, move |log| {
                s.lxc.destroy(id, force, unreferenced, &s.storage, log)
            })))
        }
        ("GET", "/nodes/{node}/lxc/{vmid}/status/current") => sim.lxc.status(vmid(c)?),
        ("POST", "/nodes/{node}/lxc/{vmid}/status/start") => {
            let id = vmid(c)?;
            sim.lxc.check_lock(id)?;
            if sim.lxc.state(id).0 {
                return Err(ApiError::internal(format!("CT {id} already running")));
            }
            let s = Arc::clone(sim);
            Ok(json!(sim.tasks.spawn("vzstart", &id.to_string(), &owner, move |log| {
                let lock = s.lxc.lock(id);
                let _guard = lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                s.lxc.start(id, &s.storage, log)
            })))
        }
        ("POST", "/nodes/{node}/lxc/{vmid}/status/stop") => {
            let id = vmid(c)?;
            running(sim, id)?;
            let s = Arc::clone(sim);
            Ok(json!(sim.tasks.spawn("vzstop", &id.to_string(), &owner, move |_| s.lxc.stop(id))))
        }
        ("POST", "/nodes/{node}/lxc/{vmid}/status/shutdown") => {
            let id = vmid(c)?;
            running(sim, id)?;
            let timeout = number::<u64>(c, "timeout")?.unwrap_or(60);
            let force = flag(c, "forceStop");
            let s = Arc::clone(sim);
            Ok(json!(
                sim.tasks.spawn("vzshutdown", &id.to_string(), &owner, move |_| s
                    .lxc
                    .shutdown(id, timeout, force))
            ))
        }
        ("POST", "/nodes/{node}/lxc/{vmid}/move_volume") => {
            let id = vmid(c)?;
            let key = required(c, "volume")?.to_owned();
            let Some(target) = number::<u32>(c, "target-vmid")? else {
                return Err(ApiError::param(
                    "target-vmid",
                    "pve-sim moves volumes to another container only",
                ));
            };
            let target_key = param(c, "target-volume").unwrap_or(&key).to_owned();
            sim.lxc.check_move(id, &key, target, &target_key)?;
            let s = Arc::clone(sim);
            Ok(json!(sim.tasks.spawn("move_volume", &id.to_string(), &owner, move |log| {
                s.lxc.move_volume(id, &key, target, &target_key, &s.storage, log)
            })))
        }
        ("GET", "/nodes/{node}/lxc/{vmid}/interfaces") => sim.lxc.interfaces(vmid(c)?),
        ("GET", "/nodes/{node}/tasks/{upid}/status") => sim.tasks.status(required(c, "upid")?),
        ("GET", "/nodes/{node}/tasks/{upid}/log") => {
            let start = number(c, "start")?.unwrap_or(0);
            let limit = number(c, "limit")?.unwrap_or(DEFAULT_LOG_LIMIT);
            Ok(sim.tasks.log(required(c, "upid")?, start, limit)?.0)
        }
        (m, path) => Err(ApiError::new(501, format!("Method '{m} {path}' not implemented"))),
    }
}

/// `POST .../upload`: the body is kept now, checked and moved into place by the `imgcopy` task.
fn upload(sim: &Arc<Sim>, c: &Checked, file: Option<Vec<u8>>, owner: &str) -> Result<Value, ApiError> {
    let storage = required(c, "storage")?.to_owned();
    let content = required(c, "content")?;
    let filename = required(c, "filename")?.to_owned();
    let data = file.ok_or_else(|| ApiError::param("filename", "no file in the upload"))?;
    sim.storage.check_upload(&storage, content, &filename)?;
    let checksum = match (param(c, "checksum"), param(c, "checksum-algorithm")) {
        (Some(sum), Some(alg)) => Some((alg.to_owned(), sum.to_owned())),
        (None, None) => None,
        _ => return Err(ApiError::param("checksum", "checksum and checksum-algorithm go together")),
    };
    let tmp = sim.storage.upload_tmp(&storage, &filename);
    std::fs::write(&tmp, &data).map_err(|e| ApiError::internal(format!("cannot store the upload: {e}")))?;
    let s = Arc::clone(sim);
    // Proxmox's upload worker has no id.
    Ok(json!(sim.tasks.spawn("imgcopy", "", owner, move |log| {
        log.line(format!("starting file import from: {}", tmp.display()));
        let sum = checksum.as_ref().map(|(a, s)| (a.as_str(), s.as_str()));
        s.storage.finish_upload(&storage, &filename, &tmp, sum, log).map(|_| ())
    })))
}
