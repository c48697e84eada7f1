//! The router without a socket: the OpenAPI document against the routes actually served.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower_service::Service;

use super::*;
use crate::names::{NameTable, Names};

fn state(dir: &std::path::Path) -> Arc<ApiState> {
    let config = proximity_config::from_toml_str("[lan]\naddress = \"10.20.0.1/24\"\n").unwrap();
    let store = Store::open(dir).unwrap();
    let names = Arc::new(Names::new(NameTable::empty(1)));
    let directory = Arc::new(Directory::new(names, Vec::new(), &[], Vec::new(), Vec::new()));
    let token = Token::new("t".repeat(40));
    Arc::new(ApiState::new(&config, store, directory, token, Arc::default()))
}

/// Every `(METHOD, path)` the document describes.
fn documented() -> BTreeSet<(String, String)> {
    let doc: serde_json::Value = serde_json::from_str(OPENAPI_JSON).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys().filter(|k| *k != "parameters") {
            out.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    out
}

#[test]
fn every_route_is_documented_and_every_documented_route_exists() {
    let served: BTreeSet<(String, String)> =
        routes().into_iter().map(|(m, p, _)| (m.to_owned(), p.to_owned())).collect();
    assert_eq!(served, documented());
}

/// The method each route is listed with is the one its handler answers: a request with it
/// reaches the handler (not the 404 fallback, not 405).
#[tokio::test]
async fn every_listed_method_reaches_its_handler() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path());
    let mut router = router(state.clone());
    for (method, path, _) in routes() {
        let uri = path
            .replace("{name}", "nothing")
            .replace("{ip}", "10.20.0.9")
            .replace("{mac}", "52:54:00:00:00:09")
            .replace("{protocol}", "tcp")
            .replace("{port}", "2222");
        let request = Request::builder()
            .method(method)
            .uri(&uri)
            .header("authorization", format!("Bearer {}", "t".repeat(40)))
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .unwrap();
        let response = router.call(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&body);
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}: {body}");
        assert!(!body.contains("no such endpoint"), "{method} {uri}: {body}");
    }
    // And a path that is not listed is not served.
    let request = Request::builder()
        .uri("/v1/nothing")
        .header("authorization", format!("Bearer {}", "t".repeat(40)))
        .body(Body::empty())
        .unwrap();
    assert_eq!(router.call(request).await.unwrap().status(), StatusCode::NOT_FOUND);
    state.store.close();
}

#[test]
fn open_paths_are_documented_as_open() {
    let doc: serde_json::Value = serde_json::from_str(OPENAPI_JSON).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let open = item["get"]["security"].as_array().is_some_and(Vec::is_empty);
        assert_eq!(open, OPEN_PATHS.contains(&path.as_str()), "{path}");
    }
}
