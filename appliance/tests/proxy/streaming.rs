//! Bodies and connections: 64 MiB streamed each way (length and hash checked), an upgraded
//! connection bridged both ways, keep-alive reuse towards the backend.

use std::hash::{DefaultHasher, Hasher};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::support::*;

const BIG: u64 = 64 * 1024 * 1024;
const CHUNK: usize = 1024 * 1024;

/// A body of `remaining` deterministic bytes, made as it is read: 1 MiB chunks, each a
/// rotation of one pseudo-random block so order matters to the hash.
struct Pattern {
    block: Bytes,
    remaining: u64,
    index: usize,
    exact: bool,
}

impl Pattern {
    fn new(len: u64, exact: bool) -> Self {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let block: Vec<u8> = (0..CHUNK / 8)
            .flat_map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()
            })
            .collect();
        Pattern { block: Bytes::from(block), remaining: len, index: 0, exact }
    }

    fn next_chunk(&mut self) -> Option<Bytes> {
        if self.remaining == 0 {
            return None;
        }
        let len = usize::try_from(self.remaining).unwrap().min(CHUNK);
        let at = (self.index * 4099) % CHUNK;
        let mut chunk = Vec::with_capacity(CHUNK);
        chunk.extend_from_slice(&self.block[at..]);
        chunk.extend_from_slice(&self.block[..at]);
        chunk.truncate(len);
        self.index += 1;
        self.remaining -= len as u64;
        Some(Bytes::from(chunk))
    }

    /// Length and hash of the whole body.
    fn digest(len: u64) -> (u64, u64) {
        let mut pattern = Pattern::new(len, true);
        let mut digest = Digest::default();
        while let Some(chunk) = pattern.next_chunk() {
            digest.update(&chunk);
        }
        digest.finish()
    }
}

impl hyper::body::Body for Pattern {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Poll::Ready(self.get_mut().next_chunk().map(|c| Ok(Frame::data(c))))
    }

    fn size_hint(&self) -> SizeHint {
        if self.exact { SizeHint::with_exact(self.remaining) } else { SizeHint::default() }
    }
}

/// The process's peak resident memory so far, in bytes (Linux).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// Most the process may grow while 64 MiB pass through: a proxy that held the whole body
/// would grow by more than it.
const GROWTH_LIMIT: u64 = 48 * 1024 * 1024;

#[derive(Default)]
struct Digest {
    len: u64,
    hasher: DefaultHasher,
}

impl Digest {
    fn update(&mut self, bytes: &[u8]) {
        self.len += bytes.len() as u64;
        // SipHash's `write` is streaming: chunk boundaries do not change the result.
        self.hasher.write(bytes);
    }

    fn finish(&self) -> (u64, u64) {
        (self.len, self.hasher.finish())
    }

    /// Reads `body` to its end frame by frame, keeping nothing.
    async fn of(mut body: Incoming) -> (u64, u64) {
        let mut digest = Digest::default();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                digest.update(&data);
            }
        }
        digest.finish()
    }
}

#[tokio::test]
async fn a_64_mib_upload_streams_through() {
    let backend = Backend::start(|request: Request<Incoming>| async move {
        let (len, hash) = Digest::of(request.into_body()).await;
        text(StatusCode::OK, format!("{len} {hash}"))
    })
    .await;
    let proxy = Proxy::start(table([("a.prox.local", route("a", &[backend.addr]))])).await;
    // Chunked (no length known in advance), as a streaming client would send it.
    let request = Request::post(format!("http://{}/upload", proxy.http))
        .header("host", "a.prox.local")
        .body(Pattern::new(BIG, false).boxed())
        .unwrap();
    let (start, peak) = (Instant::now(), peak_rss());
    let reply = Reply::read(client().request(request).await.unwrap()).await;
    let (took, growth) = (start.elapsed(), peak_rss() - peak);
    assert_eq!(reply.status, StatusCode::OK);
    let (len, hash) = Pattern::digest(BIG);
    assert_eq!(reply.text(), format!("{len} {hash}"));
    println!("64 MiB upload through the proxy: {took:?}, peak memory +{} KiB", growth / 1024);
    assert!(growth < GROWTH_LIMIT, "memory grew by {growth} bytes");
}

#[tokio::test]
async fn a_64_mib_download_streams_through() {
    let backend = Backend::start(|_| async { Response::new(Pattern::new(BIG, true).boxed()) }).await;
    let proxy = Proxy::start(table([("a.prox.local", route("a", &[backend.addr]))])).await;
    let request = Request::get(format!("http://{}/download", proxy.http))
        .header("host", "a.prox.local")
        .body(empty())
        .unwrap();
    let (start, peak) = (Instant::now(), peak_rss());
    let response = client().request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-length"], BIG.to_string().as_str());
    assert_eq!(response.body().size_hint().exact(), Some(BIG));
    let digest = Digest::of(response.into_body()).await;
    let growth = peak_rss() - peak;
    println!("64 MiB download through the proxy: {:?}, peak memory +{} KiB", start.elapsed(), growth / 1024);
    assert!(growth < GROWTH_LIMIT, "memory grew by {growth} bytes");
    assert_eq!(digest, Pattern::digest(BIG));
}

#[tokio::test]
async fn an_upgraded_connection_is_bridged_both_ways() {
    let backend = Backend::start(|mut request: Request<Incoming>| async move {
        if request.headers().get("upgrade").is_none_or(|v| v != "echo") {
            return text(StatusCode::BAD_REQUEST, "upgrade expected");
        }
        let upgrade = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            let mut io = TokioIo::new(upgrade.await.unwrap());
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = io.read(&mut buf).await.unwrap_or(0);
                if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        });
        let mut response = text(StatusCode::SWITCHING_PROTOCOLS, "");
        response.headers_mut().insert("connection", "upgrade".parse().unwrap());
        response.headers_mut().insert("upgrade", "echo".parse().unwrap());
        response
    })
    .await;
    let proxy = Proxy::start(table([("a.prox.local", route("a", &[backend.addr]))])).await;
    let mut stream = TcpStream::connect(proxy.http).await.unwrap();
    stream
        .write_all(b"GET /ws HTTP/1.1\r\nHost: a.prox.local\r\nConnection: keep-alive, Upgrade\r\nUpgrade: echo\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut stream).await.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo\r\n") && head.contains("connection: upgrade\r\n"), "{head}");

    for round in 0..3 {
        let message = format!("ping {round}");
        stream.write_all(message.as_bytes()).await.unwrap();
        let mut echoed = vec![0u8; message.len()];
        stream.read_exact(&mut echoed).await.unwrap();
        assert_eq!(echoed, message.as_bytes());
    }
    // A megabyte each way at once.
    let payload: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let (mut read, mut write) = stream.into_split();
    let sent = payload.clone();
    let writer = tokio::spawn(async move {
        write.write_all(&sent).await.unwrap();
        write.shutdown().await.unwrap();
    });
    let mut echoed = Vec::new();
    tokio::time::timeout(PATIENCE, read.read_to_end(&mut echoed)).await.unwrap().unwrap();
    writer.await.unwrap();
    assert_eq!(echoed.len(), payload.len());
    assert!(echoed == payload);
    eventually("the tunnel closed", || async { proxy.metrics.open_connections() == 0 }).await;
}

#[tokio::test]
async fn backend_connections_are_kept_alive_and_reused() {
    let backend = Backend::saying("ok").await;
    let proxy = Proxy::start(table([("a.prox.local", route("a", &[backend.addr]))])).await;
    // Each request on a fresh client connection: only the backend side is pooled.
    for _ in 0..50 {
        let reply = get(proxy.http, "a.prox.local", "/").await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    assert!(backend.accepted() <= 2, "backend accepted {} connections for 50 requests", backend.accepted());
    assert_eq!(proxy.metrics.backend_connections(), backend.accepted() as u64);
}

/// One chunk, then nothing ever again.
struct Stall(Option<Bytes>);

impl hyper::body::Body for Stall {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut().0.take() {
            Some(chunk) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            None => Poll::Pending,
        }
    }
}

#[tokio::test]
async fn a_backend_silent_mid_body_has_its_response_cut() {
    let backend =
        Backend::start(|_| async { Response::new(Stall(Some(Bytes::from_static(b"partial"))).boxed()) })
            .await;
    let limits = proximity_appliance::proxy::Limits {
        response_timeout: std::time::Duration::from_millis(300),
        ..Default::default()
    };
    let proxy = Proxy::start_with(table([("a.prox.local", route("a", &[backend.addr]))]), limits, None).await;
    let request =
        Request::get(format!("http://{}/", proxy.http)).header("host", "a.prox.local").body(empty()).unwrap();
    let response = client().request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let start = Instant::now();
    let body =
        tokio::time::timeout(PATIENCE, response.into_body().collect()).await.expect("body never ended");
    assert!(body.is_err(), "a cut body must not look complete");
    assert!(start.elapsed() >= std::time::Duration::from_millis(250));
    eventually("the client connection closed", || async { proxy.metrics.open_connections() == 0 }).await;
}

#[tokio::test]
async fn a_client_silent_mid_upload_gets_a_408() {
    let backend = Backend::start(|request: Request<Incoming>| async move {
        match request.into_body().collect().await {
            Ok(body) => text(StatusCode::OK, body.to_bytes()),
            Err(_) => text(StatusCode::BAD_REQUEST, "cut"),
        }
    })
    .await;
    let limits = proximity_appliance::proxy::Limits {
        idle_timeout: std::time::Duration::from_millis(300),
        ..Default::default()
    };
    let proxy = Proxy::start_with(table([("a.prox.local", route("a", &[backend.addr]))]), limits, None).await;
    let mut stream = TcpStream::connect(proxy.http).await.unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: a.prox.local\r\nContent-Length: 100\r\n\r\nonly this")
        .await
        .unwrap();
    let start = Instant::now();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert!(start.elapsed() >= std::time::Duration::from_millis(250));
    assert_eq!(proxy.metrics.body_timeouts(), 1);
}
