//! The parameters of one request, as Proxmox reads them: the query string for every method,
//! plus for POST and PUT the body, form-urlencoded or JSON; an upload's multipart body gives its
//! form fields as parameters (the file part as `filename`, its file name) and the file's bytes.

use serde_json::Value;

use super::error::ApiError;
use super::multipart;
use crate::pve::schema::json_body::params_from_json;

/// Largest non-upload body (Proxmox's limit for a request body is 64 KiB; a little room here).
pub const MAX_BODY: usize = 1 << 20;
/// Largest upload the sim takes (a template is some MB).
pub const MAX_UPLOAD: usize = 512 << 20;

/// What a request carries.
#[derive(Debug, Default)]
pub struct Params {
    pub pairs: Vec<(String, String)>,
    /// The file of a multipart upload.
    pub file: Option<Vec<u8>>,
}

/// Parameters of the query string.
pub fn query(query: Option<&str>) -> Vec<(String, String)> {
    query.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}

/// Parameters of a body of `content_type`.
pub fn body(content_type: Option<&str>, body: &[u8]) -> Result<Params, ApiError> {
    let ct = content_type.unwrap_or("application/x-www-form-urlencoded");
    let media = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    match media.as_str() {
        _ if body.is_empty() => Ok(Params::default()),
        "application/json" => json(body),
        "multipart/form-data" => {
            let bad = |e: multipart::MultipartError| ApiError::new(400, e.to_string());
            let parts = multipart::parse(body, &multipart::boundary(ct).map_err(bad)?).map_err(bad)?;
            let mut params = Params::default();
            for part in parts {
                match part.filename {
                    Some(name) => {
                        params.pairs.push((part.name, name));
                        params.file = Some(part.data);
                    }
                    None => params.pairs.push((part.name, String::from_utf8_lossy(&part.data).into_owned())),
                }
            }
            Ok(params)
        }
        _ => Ok(Params { pairs: form_urlencoded::parse(body).into_owned().collect(), file: None }),
    }
}

/// A JSON object's members as string parameters, as the schema's reader takes them.
fn json(body: &[u8]) -> Result<Params, ApiError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::new(400, format!("malformed JSON body: {e}")))?;
    let Value::Object(map) = value else {
        return Err(ApiError::new(400, "the JSON body is not an object"));
    };
    Ok(Params { pairs: params_from_json(&map), file: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_json_give_the_same_parameters() -> Result<(), ApiError> {
        let form = body(None, b"net0=name%3Deth0%2Cbridge%3Dvmbr0&onboot=1")?;
        let json = body(Some("application/json"), br#"{"net0":"name=eth0,bridge=vmbr0","onboot":true}"#)?;
        let want =
            [("net0".to_owned(), "name=eth0,bridge=vmbr0".to_owned()), ("onboot".to_owned(), "1".to_owned())];
        assert_eq!(form.pairs, want);
        assert_eq!(json.pairs, want);
        assert_eq!(query(Some("content=vztmpl")), [("content".to_owned(), "vztmpl".to_owned())]);
        assert!(body(Some("application/json"), b"[1]").is_err());
        Ok(())
    }
}
