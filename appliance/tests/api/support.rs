//! The harness: a real store in a temporary directory, a real directory of names, the admin API
//! served by `api::serve` on 127.0.0.1:0, and a hyper client speaking HTTP/1.1 to it.

use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use proximity_appliance::api::{self, ApiState, LeaseAdmin, ServiceStates, Token};
use proximity_appliance::dhcp::server::unix_now;
use proximity_appliance::names::{Directory, NameTable, Names};
use proximity_appliance::nat::Forwards;
use proximity_appliance::shutdown::Stop;
use proximity_appliance::state::{Lease, LeaseState, Store, StoreError};
use proximity_config::{Config, MacAddr};
use tempfile::TempDir;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Longest any test waits for something to happen; only a failure waits this long.
pub(crate) const PATIENCE: Duration = Duration::from_secs(10);
/// The API's body limit, as the tests see it.
pub(crate) const MAX_BODY: usize = proximity_appliance::api::MAX_BODY_BYTES;
/// The token the harness's API wants.
pub(crate) const TOKEN: &str = "0123456789abcdef0123456789abcdef-test-token";

/// LAN 10.20.0.1/24, domain prox.local, pool .100-.250, reservation `nas` at 10.20.0.10, a
/// forward of tcp 2222 to 10.20.0.50:22.
pub(crate) fn config() -> Config {
    proximity_config::from_toml_str(
        r#"
[lan]
address = "10.20.0.1/24"
[dhcp]
range = "10.20.0.100-10.20.0.250"
[[dhcp.reservations]]
mac = "02:00:00:00:01:0a"
ip = "10.20.0.10"
name = "nas"
[dns]
domain = "prox.local"
ttl = "30s"
[[nat.forwards]]
protocol = "tcp"
port = 2222
to = "10.20.0.50:22"
"#,
    )
    .expect("test config")
}

/// The DHCP server's part, faked: a list of leases; release marks one released.
#[derive(Debug, Default)]
pub(crate) struct FakeLeases {
    pub(crate) leases: Mutex<Vec<Lease>>,
    /// What the API last gave the DHCP server.
    pub(crate) reservations: Mutex<Vec<proximity_config::Reservation>>,
}

impl LeaseAdmin for FakeLeases {
    fn leases(&self) -> Vec<Lease> {
        self.leases.lock().unwrap().clone()
    }

    fn release(&self, ip: Ipv4Addr) -> Pin<Box<dyn Future<Output = Result<bool, StoreError>> + Send + '_>> {
        Box::pin(async move {
            let mut leases = self.leases.lock().unwrap();
            match leases.iter_mut().find(|l| l.ip == ip && l.state == LeaseState::Active) {
                Some(lease) => {
                    lease.state = LeaseState::Released;
                    Ok(true)
                }
                None => Ok(false),
            }
        })
    }

    fn set_reservations(&self, reservations: &[proximity_config::Reservation]) {
        *self.reservations.lock().unwrap() = reservations.to_vec();
    }
}

/// An active lease of 10.20.0.`n` to a client calling itself `hostname`.
pub(crate) fn lease(n: u8, hostname: &str) -> Lease {
    let now = unix_now();
    Lease {
        ip: Ipv4Addr::new(10, 20, 0, n),
        client_id: vec![1, n],
        mac: MacAddr([2, 0, 0, 0, 0, n]),
        hostname: Some(hostname.into()),
        state: LeaseState::Active,
        starts: now - 10,
        expires: now + 3600,
    }
}

/// An answer as a client sees it.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Reply {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// `(code, message)` of an error answer, checking its shape.
    pub(crate) fn error(&self) -> (String, String) {
        let body = self.json();
        let error = body["error"].as_object().unwrap_or_else(|| panic!("not an error body: {body}"));
        assert_eq!(error.len(), 2, "{body}");
        (error["code"].as_str().unwrap().to_owned(), error["message"].as_str().unwrap().to_owned())
    }
}

/// The admin API serving on 127.0.0.1:0 over a store in `dir`.
pub(crate) struct Harness {
    pub(crate) dir: TempDir,
    pub(crate) state: Arc<ApiState>,
    pub(crate) addr: SocketAddr,
    pub(crate) stop: Stop,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Harness {
    pub(crate) async fn start() -> Harness {
        Harness::start_in(tempfile::tempdir().unwrap(), None, |_| {}).await
    }

    pub(crate) async fn start_with(setup: impl FnOnce(&mut ApiState)) -> Harness {
        Harness::start_in(tempfile::tempdir().unwrap(), None, setup).await
    }

    /// Opens (or reopens) the store in `dir`, builds the directory from what it holds as `run`
    /// does, and serves (over TLS when `tls` is given).
    pub(crate) async fn start_in(
        dir: TempDir,
        tls: Option<Arc<rustls::ServerConfig>>,
        setup: impl FnOnce(&mut ApiState),
    ) -> Harness {
        let config = config();
        let store = Store::open(&dir.path().join("state")).unwrap();
        let (apps, reservations) = (store.apps().unwrap(), store.reservations().unwrap());
        let forwards = Forwards::new(config.nat.forwards.clone(), store.forwards().unwrap());
        let names = Arc::new(Names::new(NameTable::empty(1000)));
        let directory = Directory::new(names, config.dhcp.reservations.clone(), &[], apps, reservations);
        directory.refresh(unix_now());
        let services = Arc::new(ServiceStates::default());
        let mut state = ApiState::new(&config, store, Arc::new(directory), Token::new(TOKEN), services);
        state.forwards = Arc::new(forwards);
        setup(&mut state);
        let state = Arc::new(state);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Stop::manual();
        let task = tokio::spawn(api::serve(vec![listener], tls, state.clone(), stop.clone()));
        Harness { dir, state, addr, stop, task: Some(task) }
    }

    /// Stops the server (gracefully), checks it ended well, closes the store; gives the
    /// directory back for a restart.
    pub(crate) async fn stop(mut self) -> TempDir {
        self.stop.request(false);
        if let Some(task) = self.task.take() {
            tokio::time::timeout(PATIENCE, task).await.expect("serve stops").unwrap().unwrap();
        }
        self.state.store.close();
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    /// Sends a request with the harness's token.
    pub(crate) async fn call(&self, method: Method, path: &str, body: Option<&str>) -> Reply {
        let mut headers = vec![("authorization", format!("Bearer {TOKEN}"))];
        if body.is_some() {
            headers.push(("content-type", "application/json".into()));
        }
        self.send(method, path, &headers, body.unwrap_or_default().as_bytes().to_vec()).await
    }

    pub(crate) async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    /// Sends a request with exactly these headers.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path).header("host", "proximity");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        send(self.addr, request.body(Full::new(Bytes::from(body))).unwrap()).await
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.request(true);
    }
}

/// One request over a fresh HTTP/1.1 connection.
pub(crate) async fn send(addr: SocketAddr, request: Request<Full<Bytes>>) -> Reply {
    let exchange = async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
        let driver = tokio::spawn(conn);
        let response = sender.send_request(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        driver.abort();
        Reply { status: parts.status, headers: parts.headers, body }
    };
    tokio::time::timeout(PATIENCE, exchange).await.expect("an answer in time")
}

/// The body of an app `name` with its backend at 10.20.0.`n`:8080.
pub(crate) fn app_body(name: &str, n: u8) -> String {
    format!(r#"{{"name": "{name}", "backend": {{"ip": "10.20.0.{n}"}}, "port": 8080}}"#)
}
