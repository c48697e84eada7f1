//! The proxy's own answers when it cannot pass a response on: small fixed pages that say what
//! a user can do about it and name nothing internal (no backend, no error text).

use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Response, StatusCode};

use super::body::ProxyBody;

/// `Retry-After` of a 503 for an app whose backends all fail their health checks.
pub const RETRY_AFTER_SECONDS: u32 = 5;

const NOT_FOUND: &str = "<!doctype html>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n\
<p>No app answers at this address. Check the name.</p>\n";
const BAD_GATEWAY: &str = "<!doctype html>\n<title>502 Bad Gateway</title>\n<h1>Bad Gateway</h1>\n\
<p>The app is not answering. It may be stopped or starting; try again shortly.</p>\n";
const UNAVAILABLE: &str = "<!doctype html>\n<title>503 Service Unavailable</title>\n\
<h1>Service Unavailable</h1>\n<p>The app is not healthy right now. Try again shortly.</p>\n";
const GATEWAY_TIMEOUT: &str = "<!doctype html>\n<title>504 Gateway Timeout</title>\n\
<h1>Gateway Timeout</h1>\n<p>The app took too long to answer. Try again shortly.</p>\n";
const REQUEST_TIMEOUT: &str = "<!doctype html>\n<title>408 Request Timeout</title>\n\
<h1>Request Timeout</h1>\n<p>The request body stopped arriving. Try again.</p>\n";
const NOT_ALLOWED: &str = "<!doctype html>\n<title>405 Method Not Allowed</title>\n\
<h1>Method Not Allowed</h1>\n<p>This is not a forward proxy.</p>\n";

/// The pages, by the failure they report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    UnknownHost,
    BadGateway,
    Unavailable,
    GatewayTimeout,
    /// The client stopped sending its request body.
    RequestTimeout,
    /// `CONNECT`: we route to apps, we do not tunnel anywhere a client names.
    NotAllowed,
}

impl Page {
    pub fn status(self) -> StatusCode {
        match self {
            Page::UnknownHost => StatusCode::NOT_FOUND,
            Page::BadGateway => StatusCode::BAD_GATEWAY,
            Page::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Page::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            Page::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Page::NotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    fn text(self) -> &'static str {
        match self {
            Page::UnknownHost => NOT_FOUND,
            Page::BadGateway => BAD_GATEWAY,
            Page::Unavailable => UNAVAILABLE,
            Page::GatewayTimeout => GATEWAY_TIMEOUT,
            Page::RequestTimeout => REQUEST_TIMEOUT,
            Page::NotAllowed => NOT_ALLOWED,
        }
    }

    /// The response (hyper leaves the body out for a HEAD request).
    pub(crate) fn response(self) -> Response<ProxyBody> {
        let mut response = Response::new(ProxyBody::fixed(self.text()));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self == Page::Unavailable {
            headers.insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        response
    }
}
