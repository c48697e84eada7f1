//! The provisioner's clients against real TLS servers on `127.0.0.1:0`: trust by pinned
//! fingerprint and by CA file, Proxmox errors mapped to their messages, task waits with the log of
//! a failed task, the streamed template upload, and the appliance's CA proof.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::server::{self, Certs, certs, json as answer, serve};
use proximity_provisioner::appliance::admin::{Admin, AdminError, fetch_proven_ca_at};
use proximity_provisioner::appliance::proof;
use proximity_provisioner::net::fingerprint::Fingerprint;
use proximity_provisioner::net::http::{Endpoint, HttpError};
use proximity_provisioner::net::tls::{Trust, client_config};
use proximity_provisioner::pve::client::is_missing_config;
use proximity_provisioner::pve::multipart::Multipart;
use proximity_provisioner::pve::{ApiToken, Pve, PveError};
use serde_json::{Value, json};

const TOKEN: &str = "root@pam!proximity=0b1f3c2e-5a4d-4c1b-9a8e-7f6d5c4b3a29";

fn pve(certs_addr: std::net::SocketAddr, trust: &Trust) -> anyhow::Result<Pve> {
    let endpoint = Endpoint {
        host: certs_addr.ip().to_string(),
        port: certs_addr.port(),
        tls: client_config(trust)?,
        server_name: "localhost".to_owned(),
    };
    Ok(Pve::new(endpoint, TOKEN.parse::<ApiToken>()?))
}

fn version(_: &server::Seen) -> server::Answer {
    answer(200, json!({"data": {"version": "9.1.1", "release": "9.1", "repoid": "0123abcd"}}))
}

#[tokio::test]
async fn a_pinned_fingerprint_is_trusted_and_another_is_refused() -> anyhow::Result<()> {
    let c = certs()?;
    let server = serve(&c, version).await?;
    let good = pve(server.addr, &Trust::Pinned(Fingerprint::of(&c.leaf_der)))?;
    let data: Value = good.get("/version", &[]).await?;
    assert_eq!(data["release"], "9.1");
    let seen = server.requests();
    assert_eq!(seen[0].uri, "/api2/json/version");
    assert_eq!(
        seen[0].headers.get("authorization").and_then(|v| v.to_str().ok()),
        Some(format!("PVEAPIToken={TOKEN}").as_str())
    );

    let other = pve(server.addr, &Trust::Pinned(Fingerprint([7; 32])))?;
    let err = other.get::<Value>("/version", &[]).await.err();
    assert!(matches!(err, Some(PveError::Http(HttpError::Tls(..)))), "{err:?}");
    // Nothing reached the server over the refused connection.
    assert_eq!(server.requests().len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_ca_file_is_trusted_for_its_names_only() -> anyhow::Result<()> {
    let c = certs()?;
    let server = serve(&c, version).await?;
    let dir = tempfile::tempdir()?;
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &c.ca_pem)?;
    let good = pve(server.addr, &Trust::ca_file(&ca)?)?;
    let _: Value = good.get("/version", &[]).await?;

    let other: Certs = certs()?;
    std::fs::write(&ca, &other.ca_pem)?;
    let wrong = pve(server.addr, &Trust::ca_file(&ca)?)?;
    assert!(matches!(wrong.get::<Value>("/version", &[]).await, Err(PveError::Http(HttpError::Tls(..)))));
    Ok(())
}

#[tokio::test]
async fn proxmox_errors_become_actionable_messages() -> anyhow::Result<()> {
    let c = certs()?;
    let server = serve(&c, |seen| match seen.uri.as_str() {
        "/api2/json/version" => (401, vec![], b"{\"data\":null}".to_vec()),
        "/api2/json/nodes/pve/lxc" => answer(403, json!({"data": null, "message": "Permission check failed (/vms/100, VM.Allocate)\n"})),
        "/api2/json/nodes/pve/network" => answer(
            400,
            json!({"data": null, "message": "Parameter verification failed.\n", "errors": {"iface": "invalid format - value does not look like a valid interface name\n"}}),
        ),
        "/api2/json/nodes/pve/lxc/100/config" => {
            answer(500, json!({"data": null, "message": "Configuration file 'nodes/pve/lxc/100.conf' does not exist\n"}))
        }
        _ => answer(501, json!({"data": null, "message": "Method not implemented"})),
    })
    .await?;
    let client = pve(server.addr, &Trust::Pinned(Fingerprint::of(&c.leaf_der)))?;

    let e = client.get::<Value>("/version", &[]).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        e.contains("PROXMOX_TOKEN") && e.contains("root@pam!proximity") && !e.contains("0b1f3c2e"),
        "{e}"
    );

    let e = client.post("/nodes/pve/lxc", &[("vmid", "100".into())]).await.err();
    let text = e.as_ref().map(ToString::to_string).unwrap_or_default();
    assert!(e.as_ref().is_some_and(PveError::is_access_denied));
    assert!(
        text.contains("VM.Allocate") && text.contains("Permission check failed") && text.contains("ACL"),
        "{text}"
    );

    let e = client
        .post("/nodes/pve/network", &[("iface", "proximity-lan".into())])
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("iface: invalid format"), "{e}");

    let e = client.get::<Value>("/nodes/pve/lxc/100/config", &[]).await.err();
    assert!(e.as_ref().is_some_and(is_missing_config), "{e:?}");

    let e = client.get::<Value>("/nodes/pve/nothing", &[]).await.err();
    assert!(matches!(e, Some(PveError::NotImplemented { .. })), "{e:?}");
    assert_eq!(client.mutations(), 2);
    Ok(())
}

#[tokio::test]
async fn a_failed_task_shows_its_log_and_a_slow_one_times_out() -> anyhow::Result<()> {
    let c = certs()?;
    let polls = Arc::new(AtomicUsize::new(0));
    let counter = polls.clone();
    let server = serve(&c, move |seen| {
        if seen.uri.contains("/status") && seen.uri.contains("vzcreate") {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            if n < 2 {
                return answer(200, json!({"data": {"status": "running"}}));
            }
            return answer(200, json!({"data": {"status": "stopped", "exitstatus": "unable to create CT 100 - no space"}}));
        }
        if seen.uri.contains("/log") {
            return answer(200, json!({"data": [{"n": 1, "t": "extracting archive"}, {"n": 2, "t": "TASK ERROR: no space left on device"}]}));
        }
        answer(200, json!({"data": {"status": "running"}}))
    })
    .await?;
    let client = pve(server.addr, &Trust::Pinned(Fingerprint::of(&c.leaf_der)))?;
    let upid = "UPID:pve:00001234:00005678:65F00000:vzcreate:100:root@pam!proximity:";
    let e = client
        .wait_task("pve", upid, Duration::from_secs(30))
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("no space") && e.contains("TASK ERROR: no space left on device"), "{e}");
    assert_eq!(polls.load(Ordering::SeqCst), 3);
    // The UPID is one encoded path segment.
    assert!(
        server.requests().iter().any(|s| s.uri.contains("/tasks/UPID%3Apve%3A")),
        "{:?}",
        server.requests()
    );

    let slow = "UPID:pve:00001234:00005678:65F00000:vzstart:100:root@pam!proximity:";
    let e = client.wait_task("pve", slow, Duration::from_secs(1)).await.err();
    assert!(e.as_ref().is_some_and(PveError::is_timeout), "{e:?}");
    Ok(())
}

#[tokio::test]
async fn the_template_upload_streams_a_well_formed_body() -> anyhow::Result<()> {
    let c = certs()?;
    let server =
        serve(&c, |_| answer(200, json!({"data": "UPID:pve:1:2:3:imgcopy::root@pam!proximity:"}))).await?;
    let client = pve(server.addr, &Trust::Pinned(Fingerprint::of(&c.leaf_der)))?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("t.tar.zst");
    let data: Vec<u8> = (0..700_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&file, &data)?;
    let m = Multipart::new(
        "bound",
        &[("content", "vztmpl"), ("checksum-algorithm", "sha256"), ("checksum", "ab")],
        "filename",
        "t.tar.zst",
    );
    let body = m.stream(&file).await?;
    let answer = client
        .post_body(
            "/nodes/pve/storage/local/upload",
            &m.content_type(),
            body,
            m.len(data.len() as u64),
            Duration::from_secs(30),
        )
        .await?;
    assert!(answer.as_str().is_some_and(|u| u.starts_with("UPID:")));
    let seen = server.requests();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].uri.as_str()),
        ("POST", "/api2/json/nodes/pve/storage/local/upload")
    );
    assert_eq!(seen[0].body.as_ref(), m.to_bytes(&data).as_slice());
    assert_eq!(
        seen[0].headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("multipart/form-data; boundary=bound")
    );
    Ok(())
}

#[tokio::test]
async fn the_appliance_ca_is_pinned_only_with_its_proof() -> anyhow::Result<()> {
    let c = certs()?;
    let token = "a".repeat(64);
    let body = c.ca_pem.clone();
    let good_proof = proof::prove(&token, body.as_bytes());
    let served = body.clone();
    let server = serve(&c, move |seen| match seen.uri.as_str() {
        "/v1/ca.crt" => (200, vec![(proof::HEADER, good_proof.clone())], served.clone().into_bytes()),
        "/v1/health" => answer(
            200,
            json!({"status": "ok", "version": "0.1.0", "uptime_secs": 3, "services": {"dns": "running"}}),
        ),
        _ => answer(401, json!({"error": {"code": "unauthorized", "message": "no token"}})),
    })
    .await?;
    let ca = fetch_proven_ca_at(server.addr, &token).await?;
    assert_eq!(ca, body);
    let e = fetch_proven_ca_at(server.addr, &"b".repeat(64)).await.err();
    assert!(matches!(e, Some(AdminError::Proof(proof::ProofError::Mismatch))), "{e:?}");

    // Pinned: health works, verified against the CA for ns.prox.local.
    let admin = Admin::at(server.addr, &ca, &token)?;
    assert_eq!(admin.health().await?.status, "ok");
    assert!(matches!(admin.leases().await, Err(AdminError::Unauthorized)));
    // A CA that did not sign the server's certificate is refused.
    let stranger = certs()?;
    let wrong = Admin::at(server.addr, &stranger.ca_pem, &token)?;
    assert!(matches!(wrong.health().await, Err(AdminError::Http(HttpError::Tls(..)))));
    Ok(())
}
