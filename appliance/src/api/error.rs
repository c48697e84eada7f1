//! What a request can fail with, as the client sees it: a status and
//! `{"error": {"code", "message"}}`. 4xx keep their detail (it is about the client's own input);
//! 5xx say nothing of the cause, which goes to the log instead.
//!
//! Also [`JsonBody`], the request body extractor: size limit, media type, JSON syntax and shape,
//! each failing with its own code.

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use proximity_config::ConfigErrors;
use proximity_config::api::ErrorBody;
use serde::de::DeserializeOwned;
use tracing::warn;

use super::MAX_BODY_BYTES;

/// The message of every 500: the cause is in the appliance's log, never in the answer.
const INTERNAL_MESSAGE: &str = "internal error; the appliance's log has the details";

/// A failed request.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// The body is not JSON (syntax); the message says where.
    InvalidJson(String),
    /// The body is JSON but not what the endpoint takes, or a field's value is refused.
    InvalidRequest(String),
    Unauthorized,
    NotFound(String),
    MethodNotAllowed,
    /// The name belongs to someone else; the message says to whom.
    NameTaken(String),
    /// Something else the request needs is taken (a MAC's or an address's reservation, a lease).
    Conflict(String),
    BodyTooLarge,
    UnsupportedMediaType,
    /// Our fault. `what` names the operation, `cause` the real error (logged, never sent).
    Internal {
        what: &'static str,
        cause: String,
    },
}

impl ApiError {
    pub(crate) fn internal(what: &'static str, cause: &dyn std::error::Error) -> Self {
        ApiError::Internal { what, cause: crate::errors::chain(cause) }
    }

    pub(crate) fn invalid(errors: &ConfigErrors) -> Self {
        ApiError::InvalidRequest(ErrorBody::invalid(errors).error.message)
    }

    fn parts(&self) -> (StatusCode, &'static str, &str) {
        match self {
            ApiError::InvalidJson(m) => (StatusCode::BAD_REQUEST, "invalid_json", m),
            ApiError::InvalidRequest(m) => (StatusCode::BAD_REQUEST, ErrorBody::INVALID_REQUEST, m),
            ApiError::Unauthorized => {
                (StatusCode::UNAUTHORIZED, "unauthorized", "a valid bearer token is required")
            }
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m),
            ApiError::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this method is not allowed here")
            }
            ApiError::NameTaken(m) => (StatusCode::CONFLICT, "name_taken", m),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "conflict", m),
            ApiError::BodyTooLarge => {
                (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "the request body is too large")
            }
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the request body must be application/json",
            ),
            ApiError::Internal { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal", INTERNAL_MESSAGE),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal { what, cause } = &self {
            warn!(operation = what, error = %cause, "admin api: internal error");
        }
        let (status, code, message) = self.parts();
        let mut response = (status, Json(ErrorBody::new(code, message))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// A JSON request body of at most [`MAX_BODY_BYTES`]. A `Content-Type` is optional; when present
/// it must be JSON, or `application/x-www-form-urlencoded`, which is what `curl -d` sends unless
/// told otherwise: the body is still parsed as JSON, so nothing is lost by taking it, and
/// `curl -d '{"name":...}'` works as users type it.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, ApiError> {
        if let Some(value) = request.headers().get(header::CONTENT_TYPE)
            && !is_json(value)
            && !is_curl_default(value)
        {
            discard(request.into_body()).await;
            return Err(ApiError::UnsupportedMediaType);
        }
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            discard(request.into_body()).await;
            return Err(ApiError::BodyTooLarge);
        }
        let mut body = request.into_body();
        let mut bytes = Vec::new();
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                return Err(ApiError::InvalidJson("the request body could not be read".into()));
            };
            if let Ok(data) = frame.into_data() {
                if bytes.len() + data.len() > MAX_BODY_BYTES {
                    discard(body).await;
                    return Err(ApiError::BodyTooLarge);
                }
                bytes.extend_from_slice(&data);
            }
        }
        parse(&bytes).map(JsonBody)
    }
}

/// The one parameter of a path (`/v1/apps/{name}`), percent-decoded; one that does not decode
/// to UTF-8 is a 400 like any other bad input.
#[derive(Debug)]
pub(crate) struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(PathParam(value)),
            Err(e) => Err(ApiError::InvalidRequest(format!("path: {}", e.body_text()))),
        }
    }
}

/// `application/json` or `application/<something>+json`, any parameters.
fn is_json(value: &HeaderValue) -> bool {
    let Ok(text) = value.to_str() else { return false };
    let essence = text.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Most of a refused request's body read (and dropped) before the error is sent, and how long
/// that may take. An HTTP/2 client that is still sending when the answer comes gets its stream
/// reset, and curl then shows a framing error instead of our answer; reading the rest first lets
/// it see the 401, 413 or 415. Past these bounds the client gets the reset.
pub(crate) const DISCARD_BYTES: usize = 1 << 20;
pub(crate) const DISCARD_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads and drops what is left of `body`, within [`DISCARD_BYTES`] and [`DISCARD_TIME`].
pub(crate) async fn discard(mut body: axum::body::Body) {
    let drain = async {
        let mut read = 0;
        while let Some(Ok(frame)) = body.frame().await {
            read += frame.data_ref().map_or(0, |d| d.len());
            if read > DISCARD_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DISCARD_TIME, drain).await;
}

/// What `curl -d` labels a body with by default.
fn is_curl_default(value: &HeaderValue) -> bool {
    value.to_str().is_ok_and(|text| {
        text.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    })
}

/// Parses `bytes` as a `T`: a syntax error is `invalid_json` with its position only; a value of
/// the wrong shape is `invalid_request` naming the field (`backend.ip: invalid type...`).
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        refused(if path == "." { "body".to_owned() } else { path }, e.into_inner())
    })?;
    deserializer.end().map_err(|e| refused("body".to_owned(), e))?;
    Ok(value)
}

fn refused(field: String, e: serde_json::Error) -> ApiError {
    if e.is_data() {
        let at = format!(" at line {} column {}", e.line(), e.column());
        let text = e.to_string();
        let reason = text.strip_suffix(&at).unwrap_or(&text);
        ApiError::InvalidRequest(format!("{field}: {reason}"))
    } else {
        ApiError::InvalidJson(format!(
            "the body is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proximity_config::api::RawApp;

    use super::*;

    fn message(e: ApiError) -> String {
        match e {
            ApiError::InvalidJson(m) => format!("json: {m}"),
            ApiError::InvalidRequest(m) => format!("request: {m}"),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn syntax_errors_say_where_only() {
        let m = message(parse::<RawApp>(b"{\"name\": \"a\",\n oops}").unwrap_err());
        assert_eq!(m, "json: the body is not valid JSON (line 2, column 2)");
        let m = message(parse::<RawApp>(b"{\"name\": \"a\"} trailing").unwrap_err());
        assert!(m.starts_with("json: "), "{m}");
    }

    #[test]
    fn shape_errors_name_the_field() {
        let m = message(parse::<RawApp>(br#"{"name": "a", "backend": {"ip": 5}}"#).unwrap_err());
        assert!(m.starts_with("request: backend.ip: invalid type: integer `5`"), "{m}");
        let m = message(parse::<RawApp>(br#"{"name": "a", "colour": 1}"#).unwrap_err());
        assert!(m.contains("unknown field `colour`"), "{m}");
        let m = message(parse::<RawApp>(b"\"text\"").unwrap_err());
        assert!(m.starts_with("request: body: invalid type"), "{m}");
    }

    #[test]
    fn json_media_types() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/merge-patch+json",
        ] {
            assert!(is_json(&HeaderValue::from_static(ok)), "{ok}");
        }
        for bad in ["text/plain", "application/x-www-form-urlencoded", "application/jsonx", ""] {
            assert!(!is_json(&HeaderValue::from_static(bad)), "{bad}");
        }
        assert!(is_curl_default(&HeaderValue::from_static("application/x-www-form-urlencoded")));
        assert!(!is_curl_default(&HeaderValue::from_static("text/plain")));
    }
}
