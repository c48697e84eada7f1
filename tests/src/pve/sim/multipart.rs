//! A `multipart/form-data` body (RFC 7578), as the upload endpoint receives it: each part's
//! field name, optional file name and bytes. The whole body is in memory (uploads are bounded by
//! [`super::request::MAX_UPLOAD`]).

/// One part of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub data: Vec<u8>,
}

/// A body that is not multipart/form-data.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MultipartError {
    #[error("no boundary in the content type")]
    NoBoundary,
    #[error("malformed multipart body: {0}")]
    Malformed(&'static str),
}

/// The `boundary` parameter of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Result<String, MultipartError> {
    content_type
        .split(';')
        .skip(1)
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_owned())
        .filter(|b| !b.is_empty())
        .ok_or(MultipartError::NoBoundary)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Splits `body` into its parts.
pub fn parse(body: &[u8], boundary: &str) -> Result<Vec<Part>, MultipartError> {
    let delimiter = format!("--{boundary}");
    let mut rest = body;
    let start = find(rest, delimiter.as_bytes()).ok_or(MultipartError::Malformed("no first boundary"))?;
    rest = &rest[start + delimiter.len()..];
    let next_delimiter = format!("\r\n--{boundary}");
    let mut parts = Vec::new();
    loop {
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        rest = rest.strip_prefix(b"\r\n").ok_or(MultipartError::Malformed("no line end after a boundary"))?;
        let head_end =
            find(rest, b"\r\n\r\n").ok_or(MultipartError::Malformed("part without headers end"))?;
        let head = String::from_utf8_lossy(&rest[..head_end]).into_owned();
        rest = &rest[head_end + 4..];
        let end =
            find(rest, next_delimiter.as_bytes()).ok_or(MultipartError::Malformed("unterminated part"))?;
        let (name, filename) = disposition(&head)?;
        parts.push(Part { name, filename, data: rest[..end].to_vec() });
        rest = &rest[end + next_delimiter.len()..];
    }
}

/// The `name` and `filename` of a part's `Content-Disposition: form-data` header.
fn disposition(head: &str) -> Result<(String, Option<String>), MultipartError> {
    let line = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))
        .ok_or(MultipartError::Malformed("part without Content-Disposition"))?;
    let mut name = None;
    let mut filename = None;
    for param in line.split(';').skip(1) {
        if let Some((k, v)) = param.trim().split_once('=') {
            let v = v.trim().trim_matches('"').to_owned();
            match k.trim() {
                "name" => name = Some(v),
                "filename" => filename = Some(v),
                _ => {}
            }
        }
    }
    Ok((name.ok_or(MultipartError::Malformed("part without a name"))?, filename))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_come_out_with_names_and_bytes() -> Result<(), MultipartError> {
        let ct = "multipart/form-data; boundary=\"XyZ\"";
        let b = boundary(ct)?;
        assert_eq!(b, "XyZ");
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"content\"\r\n\r\nvztmpl\r\n\
            --XyZ\r\nContent-Disposition: form-data; name=\"filename\"; filename=\"a.tar.zst\"\r\n\
            Content-Type: application/octet-stream\r\n\r\n\x00\r\n--X\x01\r\n--XyZ--\r\n";
        let parts = parse(body, &b)?;
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].name.as_str(), parts[0].data.as_slice()), ("content", &b"vztmpl"[..]));
        assert_eq!(parts[1].filename.as_deref(), Some("a.tar.zst"));
        assert_eq!(parts[1].data, b"\x00\r\n--X\x01");
        assert_eq!(boundary("multipart/form-data"), Err(MultipartError::NoBoundary));
        assert!(parse(b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nno end", "XyZ").is_err());
        Ok(())
    }
}
