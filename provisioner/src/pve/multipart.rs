//! The `multipart/form-data` body of a template upload, built by hand so the file streams from
//! disk: the text fields, then the file part, then the closing boundary. Its length is known up
//! front (Proxmox wants a `Content-Length`).

use std::io;
use std::path::Path;

use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::io::AsyncReadExt;

use crate::net::http::Body;

/// Bytes read from the file per frame.
const CHUNK: usize = 256 * 1024;

/// A multipart body around one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Multipart {
    boundary: String,
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl Multipart {
    /// `fields` as text parts, then a part named `file_field` with file name `file_name`.
    pub fn new(boundary: &str, fields: &[(&str, &str)], file_field: &str, file_name: &str) -> Self {
        let mut head = Vec::new();
        for (name, value) in fields {
            head.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                    .as_bytes(),
            );
        }
        head.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{file_field}\"; filename=\"{file_name}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        let tail = format!("\r\n--{boundary}--\r\n").into_bytes();
        Multipart { boundary: boundary.to_owned(), head, tail }
    }

    pub fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    /// The body's length around a file of `file_len` bytes.
    pub fn len(&self, file_len: u64) -> u64 {
        (self.head.len() + self.tail.len()) as u64 + file_len
    }

    /// The whole body in memory (tests).
    pub fn to_bytes(&self, file: &[u8]) -> Vec<u8> {
        [self.head.as_slice(), file, self.tail.as_slice()].concat()
    }

    /// The body, the file at `path` read as it is sent.
    pub async fn stream(&self, path: &Path) -> io::Result<Body> {
        let file = tokio::fs::File::open(path).await?;
        let head = futures_util::stream::once(std::future::ready(Ok(Bytes::from(self.head.clone()))));
        let tail = futures_util::stream::once(std::future::ready(Ok(Bytes::from(self.tail.clone()))));
        let chunks = futures_util::stream::unfold(Some(file), |file| async move {
            let mut file = file?;
            let mut buf = vec![0; CHUNK];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), Some(file)))
                }
                Err(e) => Some((Err(e), None)),
            }
        });
        let stream = head.chain(chunks).chain(tail).map(|chunk: io::Result<Bytes>| chunk.map(Frame::data));
        Ok(BodyExt::boxed(StreamBody::new(stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_upload_body() {
        let m = Multipart::new(
            "b0undary",
            &[("content", "vztmpl"), ("checksum-algorithm", "sha256")],
            "filename",
            "t.tar.zst",
        );
        let body = m.to_bytes(b"DATA");
        let want = "--b0undary\r\nContent-Disposition: form-data; name=\"content\"\r\n\r\nvztmpl\r\n\
                    --b0undary\r\nContent-Disposition: form-data; name=\"checksum-algorithm\"\r\n\r\nsha256\r\n\
                    --b0undary\r\nContent-Disposition: form-data; name=\"filename\"; filename=\"t.tar.zst\"\r\n\
                    Content-Type: application/octet-stream\r\n\r\nDATA\r\n--b0undary--\r\n";
        assert_eq!(String::from_utf8_lossy(&body), want);
        assert_eq!(m.len(4), body.len() as u64);
        assert_eq!(m.content_type(), "multipart/form-data; boundary=b0undary");
    }

    #[tokio::test]
    async fn streams_the_same_bytes_from_a_file() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("t.tar.zst");
        let data: Vec<u8> = (0..(CHUNK * 2 + 17)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data)?;
        let m = Multipart::new("x", &[("content", "vztmpl")], "filename", "t.tar.zst");
        let body = m.stream(&path).await?.collect().await?.to_bytes();
        assert_eq!(body.as_ref(), m.to_bytes(&data).as_slice());
        assert_eq!(m.len(data.len() as u64), body.len() as u64);
        Ok(())
    }
}
