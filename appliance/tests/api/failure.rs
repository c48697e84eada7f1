//! A store that fails: the answer is a generic 500, and nothing changed in memory (names,
//! routes, the app list), so the API and DNS still show what is on disk.

use http::{Method, StatusCode};

use crate::support::{Harness, app_body};

#[tokio::test]
async fn a_failed_commit_changes_nothing_and_hides_why() {
    let h = Harness::start().await;
    assert_eq!(
        h.call(Method::POST, "/v1/apps", Some(&app_body("web", 50))).await.status,
        StatusCode::CREATED
    );
    let before = h.get("/v1/apps").await.json();
    let table = h.state.directory.names().current();

    // The writer stops: every commit fails from now on.
    h.state.store.close();
    let store_path = h.state.store.path().display().to_string();
    for (method, path, body) in [
        (Method::POST, "/v1/apps", Some(app_body("api", 51))),
        (Method::PUT, "/v1/apps/web", Some(app_body("web", 52))),
        (Method::PUT, "/v1/apps/new", Some(app_body("new", 53))),
        (Method::DELETE, "/v1/apps/web", None),
    ] {
        let reply = h.call(method.clone(), path, body.as_deref()).await;
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR, "{method} {path}");
        let (code, message) = reply.error();
        assert_eq!(code, "internal");
        assert!(
            !message.contains(&store_path) && !message.contains("redb") && !message.contains("store"),
            "{message}"
        );
        assert!(!reply.text().contains("state"), "{}", reply.text());
    }
    assert_eq!(h.get("/v1/apps").await.json(), before);
    assert_eq!(*h.state.directory.names().current(), *table, "the name table is untouched");
    // Reads still work, and a mutation that needs no write still answers.
    assert_eq!(h.get("/v1/apps/web").await.status, StatusCode::OK);
    assert_eq!(h.call(Method::PUT, "/v1/apps/web", Some(&app_body("web", 50))).await.status, StatusCode::OK);
    h.stop().await;
}
