//! The server's own behaviour: route tables published under load, the connection cap, the
//! slowloris and idle timeouts, graceful stop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::{Request, StatusCode};
use proximity_appliance::proxy::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::support::*;

#[tokio::test]
async fn publishing_route_tables_under_load_fails_no_request() {
    let one = Backend::saying("one").await;
    let two = Backend::saying("two").await;
    let proxy = Proxy::start(table([("a.prox.local", route("a", &[one.addr]))])).await;
    let done = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (addr, done) = (proxy.http, done.clone());
        clients.push(tokio::spawn(async move {
            let client = client();
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !done.load(Ordering::SeqCst) {
                let request =
                    Request::get(format!("http://{addr}/")).header("host", "a.prox.local").body(empty());
                match client.request(request.unwrap()).await {
                    Ok(response) => {
                        let reply = Reply::read(response).await;
                        if reply.status == StatusCode::OK && matches!(reply.text().as_str(), "one" | "two") {
                            ok += 1;
                        } else {
                            failed.push(format!("{} {}", reply.status, reply.text()));
                        }
                    }
                    Err(e) => failed.push(e.to_string()),
                }
            }
            (ok, failed)
        }));
    }
    for i in 0..200 {
        let backend = if i % 2 == 0 { two.addr } else { one.addr };
        // Other hosts come and go too; the table is rebuilt each time.
        let other = format!("other{i}.prox.local");
        proxy.routes.publish(proximity_appliance::proxy::RouteTable::new([
            ("a.prox.local".to_string(), route("a", &[backend])),
            (other, route("other", &[backend])),
        ]));
        // Let requests run against each table.
        tokio::task::yield_now().await;
        if i % 20 == 0 {
            let reply = get(proxy.http, "a.prox.local", "/").await;
            assert_eq!(reply.status, StatusCode::OK);
        }
    }
    done.store(true, Ordering::SeqCst);
    let mut total = 0;
    for client in clients {
        let (ok, failed) = client.await.unwrap();
        assert!(failed.is_empty(), "failed requests: {failed:?}");
        total += ok;
    }
    assert!(total > 0);
    println!("{total} requests during 200 publishes");
}

#[tokio::test]
async fn past_the_connection_cap_clients_wait_until_one_closes() {
    let backend = Backend::saying("ok").await;
    let limits = Limits { max_connections: 2, ..Limits::default() };
    let proxy = Proxy::start_with(table([("a.prox.local", route("a", &[backend.addr]))]), limits, None).await;
    const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: a.prox.local\r\n\r\n";

    let mut first = TcpStream::connect(proxy.http).await.unwrap();
    first.write_all(REQUEST).await.unwrap();
    assert!(read_head(&mut first).await.starts_with("HTTP/1.1 200"));
    let mut second = TcpStream::connect(proxy.http).await.unwrap();
    second.write_all(REQUEST).await.unwrap();
    assert!(read_head(&mut second).await.starts_with("HTTP/1.1 200"));
    assert_eq!(proxy.metrics.open_connections(), 2);

    // The third connects (backlog) but is not served while two are open.
    let mut third = TcpStream::connect(proxy.http).await.unwrap();
    third.write_all(REQUEST).await.unwrap();
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(300), third.read(&mut byte)).await;
    assert!(early.is_err(), "third connection served past the cap");
    assert_eq!(proxy.metrics.open_connections(), 2);

    drop(first);
    assert!(read_head(&mut third).await.starts_with("HTTP/1.1 200"));
    drop(second);
}

/// Reads until the peer closes (EOF or reset); the time it took.
async fn time_to_close(stream: &mut TcpStream) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await.expect("connection not closed") {
            Ok(0) | Err(_) => return start.elapsed(),
            Ok(_) => {}
        }
    }
}

#[tokio::test]
async fn a_client_sending_its_head_too_slowly_is_disconnected() {
    let backend = Backend::saying("ok").await;
    let limits = Limits { header_read_timeout: Duration::from_millis(300), ..Limits::default() };
    let proxy = Proxy::start_with(table([("a.prox.local", route("a", &[backend.addr]))]), limits, None).await;
    let stream = TcpStream::connect(proxy.http).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let start = Instant::now();
    // One byte of a never-ending header every 50 ms.
    let trickle = tokio::spawn(async move {
        write.write_all(b"GET / HTTP/1.1\r\nHost: a.prox.local\r\nX-Slow: ").await.unwrap();
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tick.tick().await;
            if write.write_all(b"a").await.is_err() {
                return;
            }
        }
    });
    let mut buf = [0u8; 1024];
    let closed =
        tokio::time::timeout(PATIENCE, read.read(&mut buf)).await.expect("slow client not disconnected");
    assert!(matches!(closed, Ok(0) | Err(_)), "got a response: {closed:?}");
    let took = start.elapsed();
    trickle.abort();
    assert!(took >= Duration::from_millis(300), "closed after {took:?}");
    assert_eq!(proxy.metrics.header_timeouts(), 1);
    assert_eq!(backend.accepted(), 0);
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    let limits = Limits { header_read_timeout: Duration::from_millis(200), ..Limits::default() };
    let proxy = Proxy::start_with(table([]), limits, None).await;
    let mut stream = TcpStream::connect(proxy.http).await.unwrap();
    let took = time_to_close(&mut stream).await;
    assert!(took >= Duration::from_millis(150), "closed after {took:?}");
}

#[tokio::test]
async fn idle_keep_alive_lasts_the_idle_timeout_not_the_header_timeout() {
    let backend = Backend::saying("ok").await;
    let limits = Limits {
        header_read_timeout: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(600),
        ..Limits::default()
    };
    let proxy = Proxy::start_with(table([("a.prox.local", route("a", &[backend.addr]))]), limits, None).await;
    let mut stream = TcpStream::connect(proxy.http).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: a.prox.local\r\n\r\n").await.unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut body = [0u8; 2];
    stream.read_exact(&mut body).await.unwrap();
    let idle = time_to_close(&mut stream).await;
    assert!(idle >= Duration::from_millis(550), "idle connection closed after {idle:?}");
}

#[tokio::test]
async fn graceful_stop_lets_the_request_in_flight_finish() {
    let (arrived_tx, mut arrived) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let gate = release.clone();
    let backend = Backend::start(move |_| {
        let (arrived_tx, gate) = (arrived_tx.clone(), gate.clone());
        async move {
            let _ = arrived_tx.send(());
            gate.notified().await;
            text(StatusCode::OK, "finished")
        }
    })
    .await;
    let mut proxy = Proxy::start(table([("a.prox.local", route("a", &[backend.addr]))])).await;
    let addr = proxy.http;
    let in_flight = tokio::spawn(async move { get(addr, "a.prox.local", "/slow").await });
    tokio::time::timeout(PATIENCE, arrived.recv()).await.unwrap();

    proxy.stop.request(false);
    // No new connections once stopping.
    eventually("the listener closed", || async { TcpStream::connect(addr).await.is_err() }).await;
    assert!(!proxy.task().is_finished(), "serve returned with a request in flight");

    release.notify_one();
    let reply = tokio::time::timeout(PATIENCE, in_flight).await.unwrap().unwrap();
    assert_eq!((reply.status, reply.text().as_str()), (StatusCode::OK, "finished"));
    proxy.stop().await.unwrap();
}

#[tokio::test]
async fn fast_stop_cuts_what_is_in_flight() {
    let backend = Backend::start(|_| async {
        std::future::pending::<()>().await;
        text(StatusCode::OK, "never")
    })
    .await;
    let mut proxy = Proxy::start(table([("a.prox.local", route("a", &[backend.addr]))])).await;
    let mut stream = TcpStream::connect(proxy.http).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: a.prox.local\r\n\r\n").await.unwrap();
    eventually("the request at the backend", || async { backend.accepted() == 1 }).await;
    proxy.stop.request(true);
    let served = tokio::time::timeout(PATIENCE, proxy.task()).await.expect("serve did not return");
    served.unwrap().unwrap();
    time_to_close(&mut stream).await;
}
