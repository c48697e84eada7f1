//! A reference floor for `bench/proxy.sh`, not a product: the barest HTTP/1.1 reverse proxy that
//! can be built on hyper (server side) + hyper (client side), to show what a hyper-based proxy
//! costs per request at the least, next to ours and nginx.
//!
//! No routing (every request goes to the one backend, whatever its Host), no forwarded headers
//! (requests and responses pass as they are), no limits or timeouts, no pool: each client
//! connection gets one backend connection of its own, opened when it is accepted and closed with
//! it. HTTP/1.1 only, plain TCP, TCP_NODELAY on both legs (as ours), one current-thread runtime
//! (as ours when pinned to one CPU). A backend that fails closes the client connection.
//!
//! Usage: `hyper_floor LISTEN BACKEND`, e.g. `hyper_floor 127.0.0.1:8091 10.1.0.2:8081`.

use std::cell::RefCell;
use std::error::Error;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use hyper::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::LocalSet;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(backend), None) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: hyper_floor LISTEN BACKEND   (e.g. 127.0.0.1:8091 10.1.0.2:8081)");
        return ExitCode::from(2);
    };
    match run(&listen, Rc::from(backend)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hyper_floor: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(listen: &str, backend: Rc<str>) -> Result<(), Box<dyn Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // A LocalSet: the connections are tasks of this one thread, nothing needs to be Send.
    LocalSet::new().block_on(&runtime, async move {
        let listener =
            TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        loop {
            let client = match listener.accept().await {
                Ok((client, _)) => client,
                Err(e) => {
                    // Out of descriptors and the like: the next accept may succeed.
                    eprintln!("hyper_floor: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            tokio::task::spawn_local(proxy_connection(client, backend.clone()));
        }
    })
}

/// Serves one client connection through a backend connection of its own until either closes.
async fn proxy_connection(client: TcpStream, backend: Rc<str>) {
    if let Err(e) = serve(client, &backend).await {
        eprintln!("hyper_floor: connection: {e}");
    }
}

async fn serve(client: TcpStream, backend: &str) -> Result<(), Box<dyn Error>> {
    client.set_nodelay(true)?;
    let upstream = TcpStream::connect(backend).await.map_err(|e| format!("connect to {backend}: {e}"))?;
    upstream.set_nodelay(true)?;
    let (sender, upstream_conn) = hyper::client::conn::http1::handshake(TokioIo::new(upstream)).await?;
    // The backend connection's I/O runs in a task of its own, as hyper's client examples do; it
    // ends when `sender` is dropped, i.e. with the client connection.
    tokio::task::spawn_local(upstream_conn);
    // hyper serves one request of a connection at a time, so the sender is never borrowed twice.
    let sender = Rc::new(RefCell::new(sender));
    let service = service_fn(move |request: Request<Incoming>| sender.borrow_mut().send_request(request));
    match http1::Builder::new().serve_connection(TokioIo::new(client), service).await {
        // A client that closes with a request in flight (wrk at the end of every run): not news.
        Err(e) if e.is_incomplete_message() => Ok(()),
        result => Ok(result?),
    }
}
