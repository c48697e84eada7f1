//! Routing by host, our failure pages (404, 502, 503, 504), failover, health checks, metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::StatusCode;
use proximity_appliance::proxy::{BackendError, HealthCheck, Limits};
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::support::*;

#[tokio::test]
async fn routes_by_host_whatever_its_case_port_or_dot() {
    let a = Backend::saying("app a").await;
    let b = Backend::saying("app b").await;
    let proxy = Proxy::start(table([
        ("a.prox.local", route("a", &[a.addr])),
        ("B.Prox.Local", route("b", &[b.addr])),
    ]))
    .await;
    for (host, body) in [
        ("a.prox.local", "app a"),
        ("A.PROX.LOCAL:8080", "app a"),
        ("a.prox.local.", "app a"),
        ("b.prox.local", "app b"),
        ("b.PROX.local.:80", "app b"),
    ] {
        let reply = get(proxy.http, host, "/").await;
        assert_eq!((reply.status, reply.text().as_str()), (StatusCode::OK, body), "{host}");
    }
    assert_eq!(proxy.metrics.requests("a", 200), 3);
    assert_eq!(proxy.metrics.requests("b", 200), 2);
}

#[tokio::test]
async fn unknown_host_is_a_404_that_names_nothing_internal() {
    let a = Backend::saying("app a").await;
    let proxy = Proxy::start(table([("a.prox.local", route("secret-app", &[a.addr]))])).await;
    for host in ["nope.prox.local", "prox.local", "a.prox.local.evil"] {
        let reply = get(proxy.http, host, "/").await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        let body = reply.text();
        assert!(body.contains("Not Found"), "{body}");
        for secret in ["secret-app", "127.0.0.1", &a.addr.port().to_string(), "a.prox.local"] {
            assert!(!body.contains(secret), "404 page names {secret}: {body}");
        }
    }
    assert_eq!(proxy.metrics.unknown_hosts(), 3);
    assert_eq!(a.accepted(), 0);

    // An empty table is valid: everything is a 404.
    proxy.routes.publish(table([]));
    assert_eq!(get(proxy.http, "a.prox.local", "/").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn closed_backend_port_is_a_502() {
    let dead = closed_port().await;
    let proxy = Proxy::start(table([("a.prox.local", route("a", &[dead]))])).await;
    let reply = get(proxy.http, "a.prox.local", "/").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    let body = reply.text();
    assert!(!body.contains(&dead.port().to_string()) && !body.contains("refused"), "{body}");
    assert_eq!(proxy.metrics.backend_errors(BackendError::Refused), 1);
    assert_eq!(proxy.metrics.requests("a", 502), 1);
}

#[tokio::test]
async fn backend_that_closes_every_connection_at_once_is_a_502() {
    // Accepts, then closes before reading anything: each new connection ends unused.
    let closing = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closing_addr = closing.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = closing.accept().await {
            drop(stream);
        }
    });
    let proxy = Proxy::start(table([("a.prox.local", route("a", &[closing_addr]))])).await;
    let reply = tokio::time::timeout(Duration::from_secs(10), get(proxy.http, "a.prox.local", "/"))
        .await
        .expect("the proxy answers, rather than reconnecting forever");
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(proxy.metrics.requests("a", 502), 1);
    assert!(proxy.metrics.backend_connections() <= 2, "{} connections", proxy.metrics.backend_connections());
}

#[tokio::test]
async fn backend_that_never_answers_is_a_504() {
    // Accepts connections and reads nothing, answers nothing.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let _holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let limits = Limits { response_timeout: Duration::from_millis(300), ..Limits::default() };
    let proxy = Proxy::start_with(table([("a.prox.local", route("a", &[silent_addr]))]), limits, None).await;
    let start = Instant::now();
    let reply = get(proxy.http, "a.prox.local", "/").await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert!(reply.text().contains("Gateway Timeout"));
    assert_eq!(proxy.metrics.backend_errors(BackendError::ResponseTimeout), 1);
}

#[tokio::test]
async fn a_refused_backend_fails_over_to_the_next() {
    let live = Backend::saying("alive").await;
    let dead = closed_port().await;
    let proxy = Proxy::start(table([("a.prox.local", route("a", &[dead, live.addr]))])).await;
    // Round robin starts at each backend in turn; every request must land on the live one.
    for _ in 0..6 {
        let reply = get(proxy.http, "a.prox.local", "/").await;
        assert_eq!((reply.status, reply.text().as_str()), (StatusCode::OK, "alive"));
    }
    assert!(proxy.metrics.backend_errors(BackendError::Refused) >= 3);
}

#[tokio::test]
async fn failing_health_check_is_a_503_until_it_passes_again() {
    let healthy = Arc::new(AtomicBool::new(true));
    let flag = healthy.clone();
    let backend = Backend::start(move |request| {
        let up = flag.load(Ordering::SeqCst);
        async move {
            match (request.uri().path(), up) {
                ("/healthz", true) => text(StatusCode::NO_CONTENT, ""),
                ("/healthz", false) => text(StatusCode::INTERNAL_SERVER_ERROR, "sick"),
                _ => text(StatusCode::OK, "app"),
            }
        }
    })
    .await;
    let check = HealthCheck {
        interval: Duration::from_millis(50),
        timeout: Duration::from_millis(500),
        ..HealthCheck::new("/healthz")
    };
    let mut checked = route("a", &[backend.addr]);
    checked.health_check = Some(check);
    let proxy = Proxy::start(table([("a.prox.local", checked)])).await;
    assert_eq!(get(proxy.http, "a.prox.local", "/").await.status, StatusCode::OK);

    healthy.store(false, Ordering::SeqCst);
    eventually("a 503 once the check fails", || async {
        get(proxy.http, "a.prox.local", "/").await.status == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    let reply = get(proxy.http, "a.prox.local", "/").await;
    assert!(reply.headers.contains_key("retry-after"));
    assert!(!reply.text().contains("sick") && !reply.text().contains("127.0.0.1"));
    assert!(proxy.metrics.backend_errors(BackendError::Unhealthy) >= 1);
    let mut rendered = String::new();
    proxy.metrics.render(&mut rendered);
    let down = format!("proximity_proxy_backend_down{{app=\"a\",backend=\"{}\"}} 1", backend.addr);
    assert!(rendered.lines().any(|l| l == down), "{rendered}");

    healthy.store(true, Ordering::SeqCst);
    eventually("a 200 once the check passes", || async {
        get(proxy.http, "a.prox.local", "/").await.status == StatusCode::OK
    })
    .await;
}

#[tokio::test]
async fn health_checks_skip_the_failing_backend_of_two() {
    let good = Backend::start(|_| async { text(StatusCode::OK, "good") }).await;
    let bad = Backend::start(|request| async move {
        match request.uri().path() {
            "/healthz" => text(StatusCode::SERVICE_UNAVAILABLE, ""),
            _ => text(StatusCode::OK, "bad"),
        }
    })
    .await;
    let mut checked = route("a", &[bad.addr, good.addr]);
    checked.health_check =
        Some(HealthCheck { interval: Duration::from_millis(50), ..HealthCheck::new("healthz") });
    let proxy = Proxy::start(table([("a.prox.local", checked)])).await;
    eventually("the failing backend taken out", || async {
        let mut replies = Vec::new();
        for _ in 0..4 {
            replies.push(get(proxy.http, "a.prox.local", "/").await.text());
        }
        replies.iter().all(|r| r == "good")
    })
    .await;
}

#[tokio::test]
async fn metrics_render_what_happened() {
    let a = Backend::saying("a").await;
    let proxy = Proxy::start(table([("a.prox.local", route("a", &[a.addr]))])).await;
    get(proxy.http, "a.prox.local", "/").await;
    get(proxy.http, "nope.prox.local", "/").await;
    let mut out = String::new();
    proxy.metrics.render(&mut out);
    for line in [
        "proximity_proxy_requests_total{app=\"a\",code=\"200\"} 1",
        "proximity_proxy_request_duration_seconds_count{app=\"a\"} 1",
        "proximity_proxy_unknown_host_total 1",
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line} in\n{out}");
    }
    assert!(out.contains("# TYPE proximity_proxy_open_connections gauge"));
}

#[tokio::test]
async fn backend_that_cannot_be_reached_in_time_is_a_504() {
    // A listener that never accepts, its queue filled: further SYNs are dropped, so a connect
    // hangs (Linux) rather than being refused.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&"127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap().into()).unwrap();
    socket.listen(0).unwrap();
    let full = socket.local_addr().unwrap().as_socket().unwrap();
    let mut queued = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_millis(200), tokio::net::TcpStream::connect(full)).await {
            Ok(Ok(stream)) => queued.push(stream),
            Ok(Err(e)) => panic!("connect to the full listener failed: {e}"),
            Err(_) => break,
        }
        assert!(queued.len() < 16, "the listen queue never filled");
    }
    let limits = Limits { connect_timeout: Duration::from_millis(300), ..Limits::default() };
    let proxy = Proxy::start_with(table([("a.prox.local", route("a", &[full]))]), limits, None).await;
    let start = Instant::now();
    let reply = get(proxy.http, "a.prox.local", "/").await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(proxy.metrics.backend_errors(BackendError::ConnectTimeout), 1);
    drop(socket);
}
