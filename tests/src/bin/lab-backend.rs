//! `lab-backend`: the HTTP app the lab puts behind the proxy, in a client namespace that got its
//! address by DHCP. HTTP/1.1 (and h2c), every answer tagged `x-backend: NAME`.
//!
//! - `GET /echo...`: JSON of what arrived: method, URI, version, headers (name -> values, in
//!   order), the peer and the local address the connection came in on.
//! - `POST|PUT /upload`: streams the body; answers `{"bytes": N, "sha256": "..."}`.
//! - `GET /download?bytes=N`: streams N bytes of the lab's pattern (`proximity_tests::stream`).
//! - `GET /healthz`: 200, or 500 while the `--unhealthy-flag` file exists.
//! - `GET /hang`: never answers (a backend that timed out).
//! - `GET /ws` with `Upgrade: websocket`: echoes every data frame, answers pings, ends on close.
//! - anything else: 404 `not here`.
//!
//! `lab-backend --listen 0.0.0.0:8080 [--name NAME] [--unhealthy-flag PATH]`; prints
//! `listening on ADDR` once bound.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use proximity_tests::stream::{self, Digest};
use proximity_tests::websocket::{self, OP_CLOSE, OP_PING, OP_PONG};
use tokio::net::TcpListener;

type ResponseBody = BoxBody<Bytes, Infallible>;

#[derive(Debug)]
struct Backend {
    name: String,
    unhealthy_flag: Option<PathBuf>,
}

fn parse_args() -> anyhow::Result<(SocketAddr, Backend)> {
    let mut listen = None;
    let mut backend = Backend { name: "backend".into(), unhealthy_flag: None };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => listen = Some(value()?.parse().context("--listen: not an ip:port")?),
            "--name" => backend.name = value()?,
            "--unhealthy-flag" => backend.unhealthy_flag = Some(value()?.into()),
            other => bail!("unknown argument {other:?}"),
        }
    }
    Ok((listen.context("--listen ip:port is required")?, backend))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (listen, backend) = parse_args()?;
    let listener = TcpListener::bind(listen).await.with_context(|| format!("cannot bind {listen}"))?;
    println!("listening on {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    let backend = Arc::new(backend);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                eprintln!("accept: {e}");
                continue;
            }
        };
        let local = stream.local_addr().unwrap_or(listen);
        let backend = backend.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let backend = backend.clone();
                async move { Ok::<_, Infallible>(backend.handle(request, peer, local).await) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).await {
                eprintln!("connection from {peer}: {e}");
            }
        });
    }
}

impl Backend {
    async fn handle(
        &self,
        request: Request<Incoming>,
        peer: SocketAddr,
        local: SocketAddr,
    ) -> Response<ResponseBody> {
        let path = request.uri().path().to_owned();
        let mut response = match (request.method(), path.as_str()) {
            (_, p) if p.starts_with("/echo") => echo(&request, peer, local, &self.name),
            (&Method::POST | &Method::PUT, "/upload") => upload(request).await,
            (&Method::GET, "/download") => download(&request),
            (&Method::GET, "/healthz") => self.health(),
            (&Method::GET, "/hang") => std::future::pending().await,
            (&Method::GET, "/ws") => websocket_echo(request),
            _ => text(StatusCode::NOT_FOUND, "not here\n"),
        };
        if let Ok(name) = HeaderValue::from_str(&self.name) {
            response.headers_mut().insert("x-backend", name);
        }
        response
    }

    fn health(&self) -> Response<ResponseBody> {
        match &self.unhealthy_flag {
            Some(flag) if flag.exists() => text(StatusCode::INTERNAL_SERVER_ERROR, "unhealthy\n"),
            _ => text(StatusCode::OK, "ok\n"),
        }
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<ResponseBody> {
    let mut response =
        Response::new(BoxBody::new(http_body_util::Full::new(Bytes::from_static(body.as_bytes()))));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<ResponseBody> {
    let body = Bytes::from(value.to_string());
    let mut response = Response::new(BoxBody::new(http_body_util::Full::new(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn echo(
    request: &Request<Incoming>,
    peer: SocketAddr,
    local: SocketAddr,
    name: &str,
) -> Response<ResponseBody> {
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, value) in request.headers() {
        headers
            .entry(key.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into());
    }
    let value = serde_json::json!({
        "backend": name,
        "method": request.method().as_str(),
        "uri": request.uri().to_string(),
        "version": format!("{:?}", request.version()),
        "headers": headers,
        "peer": peer.to_string(),
        "local": local.to_string(),
    });
    json(StatusCode::OK, &value)
}

async fn upload(request: Request<Incoming>) -> Response<ResponseBody> {
    let mut body = request.into_body();
    let mut digest = Digest::default();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    digest.update(data);
                }
            }
            Err(e) => {
                eprintln!("upload cut after {} bytes: {e}", digest.bytes());
                return text(StatusCode::BAD_REQUEST, "upload cut\n");
            }
        }
    }
    json(StatusCode::OK, &serde_json::json!({ "bytes": digest.bytes(), "sha256": digest.hex() }))
}

fn download(request: &Request<Incoming>) -> Response<ResponseBody> {
    let query = request.uri().query().unwrap_or("");
    let Some(len) =
        query.split('&').find_map(|kv| kv.strip_prefix("bytes=")).and_then(|n| n.parse::<u64>().ok())
    else {
        return text(StatusCode::BAD_REQUEST, "give ?bytes=N\n");
    };
    let mut response = Response::new(BoxBody::new(PatternBody { offset: 0, len }));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    response
}

/// The pattern's first `len` bytes, produced a chunk at a time as hyper asks for them.
#[derive(Debug)]
struct PatternBody {
    offset: u64,
    len: u64,
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.offset >= self.len {
            return Poll::Ready(None);
        }
        let n = usize::try_from((self.len - self.offset).min(stream::CHUNK as u64)).unwrap_or(stream::CHUNK);
        let mut chunk = vec![0u8; n];
        stream::fill(self.offset, &mut chunk);
        self.offset += n as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
    }

    fn is_end_stream(&self) -> bool {
        self.offset >= self.len
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len - self.offset)
    }
}

fn websocket_echo(mut request: Request<Incoming>) -> Response<ResponseBody> {
    let wants = request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let key = request.headers().get("sec-websocket-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (true, Some(key)) = (wants, key) else {
        return text(StatusCode::BAD_REQUEST, "websocket upgrade expected\n");
    };
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                if let Err(e) = echo_frames(TokioIo::new(upgraded)).await {
                    eprintln!("websocket: {e}");
                }
            }
            Err(e) => eprintln!("websocket upgrade failed: {e}"),
        }
    });
    let mut response = Response::new(BoxBody::new(http_body_util::Empty::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&websocket::accept_key(&key)) {
        headers.insert("sec-websocket-accept", accept);
    }
    response
}

async fn echo_frames<S>(mut io: S) -> std::io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(frame) = websocket::read_frame(&mut io).await? {
        match frame.opcode {
            OP_CLOSE => {
                websocket::write_frame(&mut io, OP_CLOSE, &frame.payload, None).await?;
                return Ok(());
            }
            OP_PING => websocket::write_frame(&mut io, OP_PONG, &frame.payload, None).await?,
            OP_PONG => {}
            opcode => websocket::write_frame(&mut io, opcode, &frame.payload, None).await?,
        }
    }
    Ok(())
}
