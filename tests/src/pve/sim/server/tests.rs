//! The server on `127.0.0.1:0` with a real TLS client trusting the PEM it writes: the order of
//! Proxmox's checks (501, then 401, then 400), its status lines and bodies, and the request log.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

use super::{Certificate, Listener, RequestLog, serve};
use crate::pve::schema::Schema;
use crate::pve::sim::{Options, Sim};

const TOKEN: &str = "root@pam!t=s3cret";

struct Client {
    addr: SocketAddr,
    connector: TlsConnector,
}

impl Client {
    fn new(addr: SocketAddr, pem: &str) -> anyhow::Result<Client> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots.add(cert?)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Client { addr, connector: TlsConnector::from(Arc::new(config)) })
    }

    /// One request on its own connection: status, reason phrase, JSON body.
    async fn send(
        &self,
        method: &str,
        path: &str,
        token: bool,
        form: &str,
    ) -> anyhow::Result<(u16, String, Value)> {
        let tcp = TcpStream::connect(self.addr).await?;
        let tls = self.connector.connect(ServerName::IpAddress(self.addr.ip().into()), tcp).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        let driver = tokio::spawn(conn);
        let mut req = Request::builder().method(method).uri(path).header("host", "pve");
        if token {
            req = req.header("authorization", format!("PVEAPIToken={TOKEN}"));
        }
        if !form.is_empty() {
            req = req.header("content-type", "application/x-www-form-urlencoded");
        }
        let response = sender.send_request(req.body(Full::new(Bytes::from(form.to_owned())))?).await?;
        let status = response.status().as_u16();
        let reason = response
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
            .unwrap_or_default();
        let body = response.into_body().collect().await?.to_bytes();
        driver.abort();
        Ok((status, reason, serde_json::from_slice(&body)?))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_answers_like_proxmox() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let options = Options { node: "pve".to_owned(), token: TOKEN.parse()?, data: dir.path().join("data") };
    let sim = Sim::new(options, Schema::official()?)?;
    let socket = TcpListener::bind("127.0.0.1:0").await?;
    let addr = socket.local_addr()?;
    let certificate = Certificate::generate("pve", addr)?;
    let fingerprint = certificate.fingerprint();
    assert_eq!(fingerprint.len(), 32 * 3 - 1, "{fingerprint}");
    let client = Client::new(addr, &certificate.pem)?;
    let log_path = dir.path().join("requests.jsonl");
    let log = RequestLog::open(&log_path)?;
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(Listener { socket, certificate, log }, sim, shutdown.clone()));

    let (status, _, _) = client.send("GET", "/api2/json/nodes/pve/nope", false, "").await?;
    assert_eq!(status, 501, "an unknown path is 501 before any auth");
    let (status, reason, _) = client.send("GET", "/api2/json/version", false, "").await?;
    assert_eq!((status, reason.as_str()), (401, "authentication failure"));
    let (status, _, body) = client.send("GET", "/api2/json/version", true, "").await?;
    assert_eq!((status, &body["data"]["repoid"]), (200, &Value::from("pve-sim")));
    let (status, reason, body) =
        client.send("POST", "/api2/json/nodes/pve/lxc", true, "vmid=100&frobnicate=1").await?;
    assert_eq!((status, reason.as_str()), (400, "Parameter verification failed."));
    assert!(body["errors"]["frobnicate"].is_string(), "{body}");
    let (status, reason, body) = client.send("GET", "/api2/json/nodes/pve/lxc/100/config", true, "").await?;
    assert_eq!(
        (status, reason.as_str()),
        (500, "Configuration file 'nodes/pve/lxc/100.conf' does not exist")
    );
    assert_eq!(body["data"], Value::Null);
    let (status, _, body) = client.send("GET", "/api2/json/cluster/nextid", true, "").await?;
    assert_eq!((status, &body["data"]), (200, &Value::from("100")));

    shutdown.cancel();
    server.await??;
    let logged: Vec<Value> =
        std::fs::read_to_string(&log_path)?.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    let statuses: Vec<u64> = logged.iter().filter_map(|l| l["status"].as_u64()).collect();
    assert_eq!(statuses, [501, 401, 200, 400, 500, 200]);
    assert_eq!(logged[1]["path"], "/api2/json/version");
    assert_eq!(logged[3]["method"], "POST");
    Ok(())
}
