//! The test harness: real hyper backends and the proxy on 127.0.0.1:0, clients, polling.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use proximity_appliance::proxy::{self, Limits, Metrics, Route, RouteTable, Routes};
use proximity_appliance::shutdown::Stop;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub(crate) type Body = BoxBody<Bytes, BoxError>;

/// Longest any test waits for something to happen.
pub(crate) const PATIENCE: Duration = Duration::from_secs(10);

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

pub(crate) fn empty() -> Body {
    full(Bytes::new())
}

pub(crate) fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
}

/// The request as a backend saw it: `METHOD URI VERSION` then `name: value` lines.
pub(crate) fn describe(request: &Request<Incoming>) -> String {
    let mut out = format!("{} {} {:?}\n", request.method(), request.uri(), request.version());
    for (name, value) in request.headers() {
        out.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("<binary>")));
    }
    out
}

/// A header value out of [`describe`]'s text (first occurrence).
pub(crate) fn seen_header<'a>(described: &'a str, name: &str) -> Option<&'a str> {
    described.lines().skip(1).find_map(|l| l.split_once(": ").filter(|(n, _)| *n == name).map(|(_, v)| v))
}

/// An HTTP/1.1 backend on 127.0.0.1:0 that counts the connections it accepts.
pub(crate) struct Backend {
    pub(crate) addr: SocketAddr,
    pub(crate) accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Backend {
    pub(crate) async fn start<F, Fut>(handler: F) -> Backend
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let handler = Arc::new(handler);
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                count.fetch_add(1, Ordering::SeqCst);
                let handler = handler.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let handler = handler.clone();
                        async move { Ok::<_, Infallible>(handler(request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Backend { addr, accepted, task }
    }

    /// Answers every request with `body`.
    pub(crate) async fn saying(body: &'static str) -> Backend {
        Backend::start(move |_| async move { text(StatusCode::OK, body) }).await
    }

    /// Answers every request with [`describe`] of it.
    pub(crate) async fn echoing() -> Backend {
        Backend::start(|request| async move { text(StatusCode::OK, describe(&request)) }).await
    }

    pub(crate) fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) fn route(app: &str, backends: &[SocketAddr]) -> Route {
    Route { app: app.to_string(), backends: backends.to_vec(), health_check: None }
}

pub(crate) fn table(routes: impl IntoIterator<Item = (&'static str, Route)>) -> RouteTable {
    RouteTable::new(routes.into_iter().map(|(host, route)| (host.to_string(), route)))
}

/// A proxy serving on 127.0.0.1:0 (plain, and TLS when given a config).
pub(crate) struct Proxy {
    pub(crate) http: SocketAddr,
    pub(crate) https: Option<SocketAddr>,
    pub(crate) routes: Arc<Routes>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) stop: Stop,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Proxy {
    pub(crate) async fn start(table: RouteTable) -> Proxy {
        Proxy::start_with(table, Limits::default(), None).await
    }

    pub(crate) async fn start_with(
        table: RouteTable,
        limits: Limits,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Proxy {
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http_addr = http.local_addr().unwrap();
        let (https, https_addr) = match &tls {
            Some(_) => {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                (vec![listener], Some(addr))
            }
            None => (vec![], None),
        };
        let routes = Arc::new(Routes::new(table));
        let metrics = Arc::new(Metrics::default());
        let stop = Stop::manual();
        let task = tokio::spawn(proxy::serve(
            vec![http],
            https,
            tls,
            routes.clone(),
            metrics.clone(),
            limits,
            stop.clone(),
        ));
        Proxy { http: http_addr, https: https_addr, routes, metrics, stop, task: Some(task) }
    }

    /// Asks for a graceful stop and waits for `serve` to return.
    pub(crate) async fn stop(mut self) -> std::io::Result<()> {
        self.stop.request(false);
        let task = self.task.take().unwrap();
        tokio::time::timeout(PATIENCE, task).await.expect("serve did not return").unwrap()
    }

    pub(crate) fn task(&mut self) -> &mut JoinHandle<std::io::Result<()>> {
        self.task.as_mut().unwrap()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.request(true);
    }
}

/// A response read whole.
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

    pub(crate) async fn read(response: Response<Incoming>) -> Reply {
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Reply { status: parts.status, headers: parts.headers, body }
    }
}

/// A pooled HTTP/1.1 client, as a browser would be.
pub(crate) fn client() -> Client<HttpConnector, Body> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// `GET path` with `Host: host` through the proxy at `proxy`.
pub(crate) async fn get(proxy: SocketAddr, host: &str, path: &str) -> Reply {
    let request = Request::get(format!("http://{proxy}{path}")).header("host", host).body(empty()).unwrap();
    Reply::read(client().request(request).await.unwrap()).await
}

/// Sends `request` on a fresh HTTP/1.1 connection to `addr`, headers exactly as given.
pub(crate) async fn send_h1(addr: SocketAddr, request: Request<Body>) -> Reply {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    Reply::read(sender.send_request(request).await.unwrap()).await
}

/// Polls `check` until it holds, failing the test after [`PATIENCE`].
pub(crate) async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An address nothing listens on (bound, then closed).
pub(crate) async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// Reads a raw HTTP/1.1 response head (up to the blank line) from `stream`.
pub(crate) async fn read_head(stream: &mut TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n =
            tokio::time::timeout(PATIENCE, stream.read(&mut byte)).await.expect("no response head").unwrap();
        assert!(n > 0, "connection closed in the head: {}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}
