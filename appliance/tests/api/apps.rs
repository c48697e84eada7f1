//! Apps from the client's side: create, read, replace, delete, and what DNS (the name table)
//! shows after each answer.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use proximity_appliance::dhcp::server::unix_now;

use crate::support::{Harness, app_body, lease};

/// Longest the name may take to show after the 201: the DNS server reads the same table.
const PUBLISH_LIMIT: Duration = Duration::from_millis(10);

#[tokio::test]
async fn create_read_replace_delete() {
    let h = Harness::start().await;
    assert_eq!(h.get("/v1/apps").await.json(), serde_json::json!([]));

    let sent = Instant::now();
    let created = h.call(Method::POST, "/v1/apps", Some(&app_body("web", 50))).await;
    let answered = Instant::now();
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    // Published before the answer: the first look finds it.
    let names = h.state.directory.names();
    let mut looks = 0;
    let visible = loop {
        looks += 1;
        if names.load().app("web").is_some() {
            break answered.elapsed();
        }
        assert!(
            answered.elapsed() < PUBLISH_LIMIT,
            "web not in the name table {PUBLISH_LIMIT:?} after the 201"
        );
        tokio::task::yield_now().await;
    };
    println!(
        "registration: POST answered in {:?}; name visible {visible:?} after the 201 (look {looks})",
        answered - sent
    );
    assert_eq!(looks, 1);
    assert_eq!(names.load().app("web").unwrap().backend, Some(Ipv4Addr::new(10, 20, 0, 50)));

    assert_eq!(created.headers["location"], "/v1/apps/web");
    let view = created.json();
    assert_eq!(view["name"], "web");
    assert_eq!(view["backend"], serde_json::json!({"ip": "10.20.0.50"}));
    assert_eq!(view["port"], 8080);
    assert_eq!(view["urls"], serde_json::json!(["http://web.prox.local/", "https://web.prox.local/"]));
    assert_eq!(view["backend_address"], "10.20.0.50");
    assert_eq!(view["live"], true);

    assert_eq!(h.get("/v1/apps/web").await.json(), view);
    assert_eq!(h.get("/v1/apps/WEB").await.json(), view);
    h.call(Method::POST, "/v1/apps", Some(&app_body("api", 51))).await;
    let names_listed: Vec<String> = h
        .get("/v1/apps")
        .await
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names_listed, ["api", "web"]);

    // What GET returns can be PUT back, changed.
    let mut changed = view.clone();
    changed["port"] = 9090.into();
    changed["backend"] = serde_json::json!({"mac": "02:00:00:00:00:77"});
    let replaced = h.call(Method::PUT, "/v1/apps/web", Some(&changed.to_string())).await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.text());
    assert_eq!(replaced.json()["port"], 9090);
    // A MAC with no lease: no address yet, not live.
    assert_eq!(replaced.json()["backend_address"], serde_json::Value::Null);
    assert_eq!(replaced.json()["live"], false);
    assert_eq!(h.get("/v1/apps/web").await.json()["port"], 9090);

    let deleted = h.call(Method::DELETE, "/v1/apps/web", None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(deleted.body.is_empty());
    assert!(names.load().app("web").is_none());
    assert_eq!(h.get("/v1/apps/web").await.error().0, "not_found");
    assert_eq!(h.call(Method::DELETE, "/v1/apps/web", None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(h.get("/v1/apps").await.json().as_array().unwrap().len(), 1);
    h.stop().await;
}

#[tokio::test]
async fn post_twice_is_a_conflict() {
    let h = Harness::start().await;
    assert_eq!(
        h.call(Method::POST, "/v1/apps", Some(&app_body("web", 50))).await.status,
        StatusCode::CREATED
    );
    let again = h.call(Method::POST, "/v1/apps", Some(&app_body("Web", 60))).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let (code, message) = again.error();
    assert_eq!(code, "name_taken");
    assert!(message.starts_with("name: ") && message.contains("an app"), "{message}");
    // The first one stands.
    assert_eq!(h.get("/v1/apps/web").await.json()["backend"]["ip"], "10.20.0.50");
    h.stop().await;
}

/// The same PUT twice: the second is a 200 that writes nothing (it works with the store closed).
#[tokio::test]
async fn put_is_idempotent() {
    let h = Harness::start().await;
    let first = h.call(Method::PUT, "/v1/apps/web", Some(&app_body("web", 50))).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    assert_eq!(first.headers["location"], "/v1/apps/web");
    let serial = h.state.directory.names().load().serial();

    h.state.store.close();
    let second = h.call(Method::PUT, "/v1/apps/web", Some(&app_body("web", 50))).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text());
    assert_eq!(second.json(), first.json());
    assert_eq!(h.state.directory.names().load().serial(), serial, "nothing republished");
    // A real change does need the store (and fails without it).
    let changed = h.call(Method::PUT, "/v1/apps/web", Some(&app_body("web", 51))).await;
    assert_eq!(changed.status, StatusCode::INTERNAL_SERVER_ERROR);
    h.stop().await;
}

/// Reservations own their names; a DHCP client's host name does not keep an app from it.
#[tokio::test]
async fn owners_of_names() {
    let h = Harness::start().await;
    let reply = h.call(Method::POST, "/v1/apps", Some(&app_body("nas", 50))).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    let (code, message) = reply.error();
    assert_eq!(code, "name_taken");
    assert!(message.starts_with("name: ") && message.contains("reservation"), "{message}");
    let reply = h.call(Method::PUT, "/v1/apps/nas", Some(&app_body("nas", 50))).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);

    h.state.directory.set_leases(&[lease(120, "laptop")], 1, unix_now());
    assert!(h.state.directory.names().load().host("laptop").is_some());
    let reply = h.call(Method::POST, "/v1/apps", Some(&app_body("laptop", 50))).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let table = h.state.directory.names().load();
    assert!(table.app("laptop").is_some());
    assert!(table.host("laptop").is_none(), "the client lost the name to the app");
    h.stop().await;
}

/// Apps are in the store: a restart (store reopened, directory rebuilt from it) keeps them.
#[tokio::test]
async fn apps_survive_a_restart() {
    let h = Harness::start().await;
    for (name, n) in [("web", 50), ("api", 51), ("docs", 52)] {
        assert_eq!(
            h.call(Method::POST, "/v1/apps", Some(&app_body(name, n))).await.status,
            StatusCode::CREATED
        );
    }
    assert_eq!(h.call(Method::DELETE, "/v1/apps/api", None).await.status, StatusCode::NO_CONTENT);
    let before = h.get("/v1/apps").await.json();
    let dir = h.stop().await;

    let h = Harness::start_in(dir, None, |_| {}).await;
    assert_eq!(h.get("/v1/apps").await.json(), before);
    assert!(h.state.directory.names().load().app("docs").is_some());
    assert!(h.state.directory.names().load().app("api").is_none());
    h.stop().await;
}
