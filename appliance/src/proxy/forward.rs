//! Rewriting heads between client and backend: the host a request names, hop-by-hop headers
//! (removed both ways), `X-Forwarded-*`, the upgrade handshake headers, the backend's URI.
//!
//! No `Via` and no `Forwarded` (RFC 7239): the `X-Forwarded-*` trio is what apps behind Caddy
//! and nginx read, and `Via` would only announce the proxy to both sides.

use std::net::IpAddr;

use http::header::{
    CONNECTION, HOST, HeaderMap, HeaderName, HeaderValue, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE,
    TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use http::{Uri, Version, request};

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Headers that describe one connection, not the message (RFC 9110 7.6.1), plus the
/// non-standard `Keep-Alive` and `Proxy-Connection` still seen in the wild.
const HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// Where a request came from, as the backend is told. Made once per client connection.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    /// The client's address, as `X-Forwarded-For` names it.
    client: HeaderValue,
    https: bool,
}

impl Origin {
    pub(crate) fn new(client: IpAddr, https: bool) -> Self {
        // An address's text is always a valid header value.
        let text = client.to_canonical().to_string();
        let client = HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        Origin { client, https }
    }
}

/// The host a request names, as sent: the URI's authority (HTTP/2 `:authority`, HTTP/1.1
/// absolute-form, which takes precedence over Host per RFC 9112 3.2.2), else the Host header.
pub(crate) fn requested_host(parts: &request::Parts) -> Option<&str> {
    match parts.uri.authority() {
        // Without any `user@`: never part of a host.
        Some(authority) => Some(authority.as_str().rsplit_once('@').map_or(authority.as_str(), |(_, h)| h)),
        None => parts.headers.get(HOST).and_then(|v| v.to_str().ok()),
    }
}

/// The protocol an HTTP/1.1 request asks to upgrade to (`Connection: upgrade` + `Upgrade`).
pub(crate) fn upgrade_protocol(parts: &request::Parts) -> Option<HeaderValue> {
    if parts.version != Version::HTTP_11 || !connection_has(&parts.headers, "upgrade") {
        return None;
    }
    parts.headers.get(UPGRADE).cloned()
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Removes the hop-by-hop headers: the fixed list and every header `Connection` names. Most
/// heads have none: one pass over the names finds that, where removing each would hash nine.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    if headers.contains_key(CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Rewrites a client's request head for a backend: hop-by-hop headers removed (`upgrade`
/// handshake headers put back), Host kept as the client named it, `X-Forwarded-For` appended
/// to, `X-Forwarded-Proto` and `X-Forwarded-Host` set, HTTP/1.1.
pub(crate) fn request_head(
    parts: &mut request::Parts,
    host: &HeaderValue,
    origin: &Origin,
    upgrade: Option<&HeaderValue>,
) {
    let headers = &mut parts.headers;
    remove_hop_by_hop(headers);
    headers.insert(HOST, host.clone());
    let chain = match headers.contains_key(X_FORWARDED_FOR) {
        false => None,
        true => {
            let prior: Option<Vec<&str>> =
                headers.get_all(X_FORWARDED_FOR).iter().map(|v| v.to_str().ok()).collect();
            // A list we cannot read is a list we cannot extend: start over from what we know.
            prior.and_then(|prior| {
                let client = origin.client.to_str().unwrap_or("unknown");
                HeaderValue::from_str(&format!("{}, {client}", prior.join(", "))).ok()
            })
        }
    };
    let chain = chain.unwrap_or_else(|| origin.client.clone());
    headers.insert(X_FORWARDED_FOR, chain);
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(if origin.https { "https" } else { "http" }));
    headers.insert(X_FORWARDED_HOST, host.clone());
    if let Some(protocol) = upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(UPGRADE, protocol.clone());
    }
    parts.version = Version::HTTP_11;
}

/// Rewrites a backend's response head for the client: hop-by-hop headers removed, except the
/// handshake of an upgrade the backend accepted (101).
pub(crate) fn response_head(headers: &mut HeaderMap, upgraded: bool) {
    let protocol = if upgraded { headers.get(UPGRADE).cloned() } else { None };
    remove_hop_by_hop(headers);
    if let Some(protocol) = protocol {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(UPGRADE, protocol);
    }
}

/// The client's request target in origin form (`/path?query`), as a backend gets it: HTTP/2
/// and absolute-form requests name the scheme and authority too. `None` for targets with no
/// origin form (`OPTIONS *` is the one a client may send).
pub(crate) fn origin_form(uri: &Uri) -> Option<Uri> {
    match uri.path_and_query() {
        Some(path) if !path.as_str().starts_with('/') => None,
        Some(_) if uri.scheme().is_none() && uri.authority().is_none() => Some(uri.clone()),
        Some(path) => Some(Uri::from(path.clone())),
        // `http://host` with no path at all.
        None => uri.authority().map(|_| Uri::from_static("/")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use http::Request;

    use super::*;

    fn parts(req: Request<()>) -> request::Parts {
        req.into_parts().0
    }

    fn origin() -> Origin {
        Origin::new(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 7)), true)
    }

    #[test]
    fn host_from_authority_before_header() {
        let p =
            parts(Request::get("http://user@Wiki.prox.local:81/x").header(HOST, "other").body(()).unwrap());
        assert_eq!(requested_host(&p), Some("Wiki.prox.local:81"));
        let p = parts(Request::get("/x").header(HOST, "wiki.prox.local").body(()).unwrap());
        assert_eq!(requested_host(&p), Some("wiki.prox.local"));
        assert_eq!(requested_host(&parts(Request::get("/x").body(()).unwrap())), None);
    }

    #[test]
    fn request_head_strips_hop_by_hop_and_forwards() {
        let mut p = parts(
            Request::get("/x")
                .header(HOST, "wiki.prox.local")
                .header(CONNECTION, "keep-alive, X-Secret")
                .header("x-secret", "1")
                .header("keep-alive", "timeout=5")
                .header(TE, "trailers")
                .header(PROXY_AUTHORIZATION, "Basic x")
                .header(X_FORWARDED_FOR, "192.0.2.1")
                .header(X_FORWARDED_PROTO, "gopher")
                .header("x-kept", "yes")
                .body(())
                .unwrap(),
        );
        let host = HeaderValue::from_static("wiki.prox.local");
        request_head(&mut p, &host, &origin(), None);
        let h = &p.headers;
        for gone in ["connection", "x-secret", "keep-alive", "te", "proxy-authorization", "upgrade"] {
            assert!(!h.contains_key(gone), "{gone}");
        }
        assert_eq!(h[X_FORWARDED_FOR], "192.0.2.1, 10.0.0.7");
        assert_eq!(h[X_FORWARDED_PROTO], "https");
        assert_eq!(h[X_FORWARDED_HOST], "wiki.prox.local");
        assert_eq!(h[HOST], "wiki.prox.local");
        assert_eq!(h["x-kept"], "yes");
    }

    #[test]
    fn upgrade_handshake_survives() {
        let mut p = parts(
            Request::get("/ws")
                .header(HOST, "a")
                .header(CONNECTION, "Upgrade")
                .header(UPGRADE, "websocket")
                .body(())
                .unwrap(),
        );
        let protocol = upgrade_protocol(&p);
        assert_eq!(protocol.as_ref().map(|v| v.as_bytes()), Some(&b"websocket"[..]));
        request_head(&mut p, &HeaderValue::from_static("a"), &origin(), protocol.as_ref());
        assert_eq!(p.headers[CONNECTION], "upgrade");
        assert_eq!(p.headers[UPGRADE], "websocket");
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        response_head(&mut h, true);
        assert_eq!(h[UPGRADE], "websocket");
        response_head(&mut h, false);
        assert!(h.is_empty());
    }

    #[test]
    fn backends_get_origin_form() {
        let origin = |u: &str| origin_form(&u.parse().unwrap()).map(|u| u.to_string());
        assert_eq!(origin("http://wiki.prox.local/a/b?c=d").as_deref(), Some("/a/b?c=d"));
        assert_eq!(origin("https://wiki.prox.local").as_deref(), Some("/"));
        assert_eq!(origin("/x?y").as_deref(), Some("/x?y"));
        assert_eq!(origin("*"), None);
    }
}
