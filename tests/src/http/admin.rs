//! The admin API as a user drives it: curl from a lab host to `https://<appliance>:9090`, the CA
//! certificate fetched once from the open `GET /v1/ca.crt` (the one request made without
//! checking the certificate, as a user trusts it on first use) and then required for everything,
//! and the bearer token read from the file the appliance created in its state directory, or given
//! (a deployment's `admin.token_sha256`), in which case the CA must come with its proof.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::Value;

use super::{Curl, Reply, curl};
use crate::topology::Host;
use crate::wait;

/// The API's port in the default config (`admin.listen = ["0.0.0.0:9090"]`).
pub const ADMIN_PORT: u16 = 9090;
/// The token file's name in the state directory when the config names none.
pub const TOKEN_FILE: &str = "admin.token";
/// From the appliance's ready line to an answering API with its token written; also how long a
/// restarted appliance may take to answer again.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one API call may take: an app mutation commits to disk, nothing more.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

pub use proximity_config::api::CA_PROOF_HEADER;

/// The proof a token holder expects for a CA body: lowercase hex of HMAC-SHA256 keyed with the
/// raw SHA-256 of the token (the contract; computed here, not with the appliance's code).
pub fn ca_proof(token: &str, body: &[u8]) -> String {
    let key = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_ref()), body);
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Waits until the API at `server` answers `/v1/health` and fetches its CA certificate into the
/// host's directory (the one request that does not check the certificate: trust on first use).
/// The base URL, the certificate's path and the reply.
fn fetch_ca(host: &Host, server: Ipv4Addr) -> Result<(String, PathBuf, Reply)> {
    let base = format!("https://{server}:{ADMIN_PORT}");
    wait_healthy(host, &base)?;
    let ca = curl(host, &format!("{base}/v1/ca.crt")).insecure().run()?;
    ensure!(ca.status == 200, "GET /v1/ca.crt without a token: {ca}");
    ensure!(
        ca.text().starts_with("-----BEGIN CERTIFICATE-----"),
        "GET /v1/ca.crt is no PEM certificate: {ca}"
    );
    let cacert = host.dir().join("proximity-ca.pem");
    std::fs::write(&cacert, &ca.body).with_context(|| format!("cannot write {}", cacert.display()))?;
    Ok((base, cacert, ca))
}

/// Whether the `/v1/ca.crt` reply `ca` carries the proof for `token`.
fn check_proof(ca: &Reply, token: &str) -> Result<()> {
    let proof = ca.header(CA_PROOF_HEADER).with_context(|| format!("no {CA_PROOF_HEADER}: {ca}"))?;
    ensure!(
        proof == ca_proof(token, &ca.body),
        "the CA's proof {proof} is not the one for our token: another appliance, or a man in the middle"
    );
    Ok(())
}

/// A client of the admin API on one lab host.
#[derive(Debug, Clone)]
pub struct Admin<'h> {
    host: &'h Host,
    base: String,
    cacert: PathBuf,
    token: String,
}

impl<'h> Admin<'h> {
    /// Waits until the API at `server` answers `/v1/health`, fetches its CA certificate into the
    /// host's directory and reads the token from `state_dir`; the CA's proof must be the one
    /// for that token.
    pub fn connect(host: &'h Host, server: Ipv4Addr, state_dir: &Path) -> Result<Admin<'h>> {
        let (base, cacert, ca) = fetch_ca(host, server)?;
        let token_path = state_dir.join(TOKEN_FILE);
        let token = wait::until(READY_TIMEOUT, &format!("a token in {}", token_path.display()), || {
            Ok(std::fs::read_to_string(&token_path)
                .ok()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty()))
        })?;
        check_proof(&ca, &token)?;
        Ok(Admin { host, base, cacert, token })
    }

    /// As the provisioner connects to a deployment whose token it made (`admin.token_sha256`):
    /// waits for `/v1/health`, fetches the CA and trusts it only when its
    /// [`CA_PROOF_HEADER`] is the proof for `token`.
    pub fn connect_with_token(host: &'h Host, server: Ipv4Addr, token: &str) -> Result<Admin<'h>> {
        let (base, cacert, ca) = fetch_ca(host, server)?;
        check_proof(&ca, token)?;
        Ok(Admin { host, base, cacert, token: token.to_owned() })
    }

    /// Waits until the API answers again (after a restart of the appliance).
    pub fn wait_ready(&self) -> Result<()> {
        wait_healthy(self.host, &self.base)
    }

    /// `https://<appliance>:9090`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The CA certificate fetched from the API (PEM), for `--cacert`.
    pub fn cacert(&self) -> &Path {
        &self.cacert
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn host(&self) -> &'h Host {
        self.host
    }

    /// A request to `path` that trusts the CA and carries no token.
    pub fn anonymous(&self, method: &str, path: &str) -> Curl<'h> {
        curl(self.host, &format!("{}{path}", self.base))
            .method(method)
            .cacert(&self.cacert)
            .timeout(CALL_TIMEOUT)
    }

    /// A request to `path` with the token.
    pub fn request(&self, method: &str, path: &str) -> Curl<'h> {
        self.anonymous(method, path).header(&format!("Authorization: Bearer {}", self.token))
    }

    /// `method path` with an optional JSON body; the response whatever its status.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Reply> {
        let request = self.request(method, path);
        match body {
            Some(body) => request.json(&body.to_string()).run(),
            None => request.run(),
        }
    }

    /// `POST /v1/apps`; fails unless 201. Returns the app as the API shows it.
    pub fn create_app(&self, app: &Value) -> Result<Value> {
        let reply = self.call("POST", "/v1/apps", Some(app))?;
        ensure!(reply.status == 201, "POST /v1/apps {app}: expected 201, got {reply}");
        reply.json()
    }

    /// `DELETE /v1/apps/{name}`; fails unless 204.
    pub fn delete_app(&self, name: &str) -> Result<()> {
        let reply = self.call("DELETE", &format!("/v1/apps/{name}"), None)?;
        ensure!(reply.status == 204, "DELETE /v1/apps/{name}: expected 204, got {reply}");
        Ok(())
    }

    /// `GET /v1/apps/{name}`: `None` on 404.
    pub fn app(&self, name: &str) -> Result<Option<Value>> {
        let reply = self.call("GET", &format!("/v1/apps/{name}"), None)?;
        match reply.status {
            200 => reply.json().map(Some),
            404 => Ok(None),
            _ => anyhow::bail!("GET /v1/apps/{name}: {reply}"),
        }
    }
}

fn wait_healthy(host: &Host, base: &str) -> Result<()> {
    let health = curl(host, &format!("{base}/v1/health")).insecure().timeout(Duration::from_secs(2));
    health.await_status(200, READY_TIMEOUT).map(drop)
}

/// The `error.code` and `error.message` of an API error answer.
pub fn error_of(reply: &Reply) -> Result<(String, String)> {
    let json = reply.json()?;
    let code = json["error"]["code"].as_str().with_context(|| format!("no error.code in {reply}"))?;
    let message =
        json["error"]["message"].as_str().with_context(|| format!("no error.message in {reply}"))?;
    Ok((code.to_owned(), message.to_owned()))
}
