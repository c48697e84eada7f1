//! `lab-ws-client`: a WebSocket client that checks an echo server end to end, as a browser would
//! use it through the proxy: the HTTP/1.1 upgrade handshake (101, the accept key), then a text
//! message, a 200 KB binary message, a ping, and the closing handshake, each echoed unchanged.
//!
//! `lab-ws-client --connect IP:PORT --host NAME [--path /ws] [--cacert FILE]`: exit 0 and
//! `echoed 3 messages` on stdout when everything came back; otherwise non-zero with what went
//! wrong. With `--cacert`, over TLS (`wss://`), SNI `NAME`, trusting only that CA, ALPN
//! `http/1.1` as browsers offer for a WebSocket.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use proximity_tests::stream;
use proximity_tests::websocket::{self, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The whole exchange; a proxy that stalls an upgraded connection fails instead of hanging.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest response head read.
const MAX_HEAD: usize = 16 * 1024;
const BINARY_LEN: usize = 200_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut connect: Option<SocketAddr> = None;
    let (mut host, mut path, mut cacert) = (None, "/ws".to_owned(), None::<PathBuf>);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--connect" => connect = Some(value()?.parse().context("--connect: not an ip:port")?),
            "--host" => host = Some(value()?),
            "--path" => path = value()?,
            "--cacert" => cacert = Some(value()?.into()),
            other => bail!("unknown argument {other:?}"),
        }
    }
    let connect = connect.context("--connect ip:port is required")?;
    let host = host.context("--host NAME is required")?;
    let echoed = tokio::time::timeout(EXCHANGE_TIMEOUT, connect_and_exchange(connect, &host, &path, cacert))
        .await
        .with_context(|| format!("no complete exchange within {EXCHANGE_TIMEOUT:?}"))??;
    println!("echoed {echoed} messages");
    Ok(())
}

async fn connect_and_exchange(
    connect: SocketAddr,
    host: &str,
    path: &str,
    cacert: Option<PathBuf>,
) -> anyhow::Result<usize> {
    let tcp = TcpStream::connect(connect).await.with_context(|| format!("cannot connect to {connect}"))?;
    let Some(cacert) = cacert else { return exchange(tcp, host, path).await };
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(&cacert).with_context(|| format!("cannot read {}", cacert.display()))?
    {
        roots.add(cert.context("bad certificate in the CA file")?)?;
    }
    let mut config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from(host.to_owned()).context("--host is no server name")?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .context("TLS handshake with the proxy failed")?;
    exchange(tls, host, path).await
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    host: &str,
    path: &str,
) -> anyhow::Result<usize> {
    let key = websocket::client_key(u64::from(std::process::id()));
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    io.write_all(request.as_bytes()).await?;
    // Byte by byte up to the blank line, so no frame byte is taken with the head.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        ensure!(head.len() < MAX_HEAD, "response head longer than {MAX_HEAD} bytes");
        let byte = io.read_u8().await.with_context(|| {
            format!("connection ended inside the response head: {:?}", String::from_utf8_lossy(&head))
        })?;
        head.push(byte);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head.lines().next().unwrap_or("");
    ensure!(status.starts_with("HTTP/1.1 101"), "expected 101 Switching Protocols, got:\n{head}");
    let accept = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim().eq_ignore_ascii_case("sec-websocket-accept").then(|| value.trim().to_owned())
    });
    ensure!(accept.as_deref() == Some(websocket::accept_key(&key).as_str()), "wrong accept key in:\n{head}");

    let mut binary = vec![0u8; BINARY_LEN];
    stream::fill(0, &mut binary);
    let messages: [(u8, Vec<u8>, u8); 3] = [
        (OP_TEXT, b"hello through the proxy".to_vec(), OP_TEXT),
        (OP_BINARY, binary, OP_BINARY),
        (OP_PING, b"are you there".to_vec(), OP_PONG),
    ];
    for (i, (opcode, payload, expect)) in messages.iter().enumerate() {
        let mask = [0x12, 0x34, 0x56, u8::try_from(i).unwrap_or(0)];
        websocket::write_frame(&mut io, *opcode, payload, Some(mask)).await?;
        let frame =
            websocket::read_frame(&mut io).await?.with_context(|| format!("no echo of message {i}"))?;
        ensure!(
            frame.fin && frame.opcode == *expect,
            "message {i}: got opcode {} fin {}",
            frame.opcode,
            frame.fin
        );
        ensure!(frame.payload == *payload, "message {i}: the echo differs ({} bytes)", frame.payload.len());
    }
    websocket::write_frame(&mut io, OP_CLOSE, &1000u16.to_be_bytes(), Some([1, 2, 3, 4])).await?;
    let frame = websocket::read_frame(&mut io).await?.context("no close frame back")?;
    ensure!(frame.opcode == OP_CLOSE, "expected a close frame, got opcode {}", frame.opcode);
    Ok(messages.len())
}
