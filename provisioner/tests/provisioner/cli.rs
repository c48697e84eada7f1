//! The `proximity` binary's exit codes and messages, against an in-process TLS server playing
//! the parts of a node that lead to each outcome: 3 for a foreign VMID (before any change) and
//! for pending network changes, 5 for a refused token, 1 without a way to trust the node, 2 for
//! a usage error, and `down` with nothing there succeeds.

use std::process::Output;

use proximity_provisioner::net::fingerprint::Fingerprint;
use serde_json::json;

use crate::server::{Server, certs, json as answer, serve};

const TOKEN: &str = "root@pam!proximity=0b1f3c2e-5a4d-4c1b-9a8e-7f6d5c4b3a29";

async fn proximity(
    server: Option<(&Server, Fingerprint)>,
    args: &[&str],
) -> anyhow::Result<(Output, tempfile::TempDir)> {
    let home = tempfile::tempdir()?;
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_proximity"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("PROXIMITY_INTERFACES_DIR", home.path().join("interfaces.d"))
        .env("PROXMOX_TOKEN", TOKEN)
        .env("PROXMOX_NODE", "pve");
    if let Some((server, fingerprint)) = server {
        command
            .env("PROXMOX_URL", format!("https://{}", server.addr))
            .env("PROXMOX_FINGERPRINT", fingerprint.to_string());
    }
    let output = command.args(args).output().await?;
    Ok((output, home))
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn version_or(
    seen: &crate::server::Seen,
    otherwise: impl Fn(&str) -> crate::server::Answer,
) -> crate::server::Answer {
    if seen.uri == "/api2/json/version" {
        return answer(200, json!({"data": {"version": "9.1.1", "release": "9.1", "repoid": "0123abcd"}}));
    }
    otherwise(&seen.uri)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_vmid_is_refused_before_any_change() -> anyhow::Result<()> {
    let c = certs()?;
    let server = serve(&c, |seen| {
        version_or(seen, |uri| match uri {
            "/api2/json/nodes/pve/lxc/100/config" => {
                answer(200, json!({"data": {"hostname": "db", "tags": "prod", "ostype": "debian"}}))
            }
            _ => answer(501, json!({"data": null})),
        })
    })
    .await?;
    let pin = Fingerprint::of(&c.leaf_der);
    for command in ["up", "down"] {
        let (out, _home) = proximity(Some((&server, pin)), &[command]).await?;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "{command}: {err}");
        assert!(err.contains("VMID 100") && err.contains("db") && err.contains("prod"), "{command}: {err}");
    }
    assert!(server.requests().iter().all(|s| s.method == "GET"), "{:?}", server.requests());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn pending_network_changes_are_refused() -> anyhow::Result<()> {
    let c = certs()?;
    let server = serve(&c, |seen| {
        version_or(seen, |uri| match uri {
            "/api2/json/nodes/pve/lxc/100/config" => {
                answer(500, json!({"data": null, "message": "Configuration file 'nodes/pve/lxc/100.conf' does not exist\n"}))
            }
            "/api2/json/nodes/pve/network" => answer(
                200,
                json!({"data": [{"iface": "vmbr0", "type": "bridge", "active": 1}], "changes": "+auto eno2\n"}),
            ),
            _ => answer(501, json!({"data": null})),
        })
    })
    .await?;
    let (out, _home) =
        proximity(Some((&server, Fingerprint::of(&c.leaf_der))), &["--bridge", "vmbr9", "up"]).await?;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("pending network changes"), "{err}");
    assert!(server.requests().iter().all(|s| s.method == "GET"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_token_exits_5_and_nothing_there_is_fine_for_down() -> anyhow::Result<()> {
    let c = certs()?;
    let denied = serve(&c, |_| (401, vec![], b"{\"data\":null}".to_vec())).await?;
    let (out, _home) = proximity(Some((&denied, Fingerprint::of(&c.leaf_der))), &["up"]).await?;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains("PROXMOX_TOKEN") && !err.contains("0b1f3c2e"), "{err}");

    let empty = serve(&c, |seen| {
        version_or(seen, |uri| match uri {
            "/api2/json/nodes/pve/lxc/100/config" => {
                answer(500, json!({"data": null, "message": "Configuration file 'nodes/pve/lxc/100.conf' does not exist\n"}))
            }
            "/api2/json/nodes/pve/lxc" => answer(200, json!({"data": []})),
            "/api2/json/nodes/pve/storage/local/content?content=vztmpl" => answer(200, json!({"data": []})),
            _ => answer(501, json!({"data": null})),
        })
    })
    .await?;
    let (out, _home) = proximity(Some((&empty, Fingerprint::of(&c.leaf_der))), &["down"]).await?;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to remove"));
    assert!(empty.requests().iter().all(|s| s.method == "GET"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn no_trust_and_usage_errors() -> anyhow::Result<()> {
    let home = tempfile::tempdir()?;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_proximity"))
        .env_clear()
        .env("HOME", home.path())
        .args(["--url", "https://192.0.2.1:8006", "--token", TOKEN, "--node", "pve", "status"])
        .output()
        .await?;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("pvenode cert info") && err.contains("--fingerprint"), "{err}");
    let (out, _home) = proximity(None, &["apps", "add", "web"]).await?;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let (out, _home) = proximity(None, &["--help"]).await?;
    assert!(String::from_utf8_lossy(&out.stdout).contains("3  refused"));
    Ok(())
}
