//! HTTP in the lab, with the client a user has: `curl` run inside a lab host's namespace, its
//! answer read back (status, version, headers, body), or its failure (curl's exit code, as for a
//! refused connection or a certificate it does not trust). Names are resolved by the test (with
//! `dig` against the appliance) and handed to curl with `--resolve`, so the machine's own
//! resolver is never involved and the address curl connects to is the one the appliance gave.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use proximity_tests::http::curl;
//! use proximity_tests::{GATEWAY, Lab};
//! let lab = Lab::builder().clients(1).build()?;
//! lab.start_appliance(&lab.config())?;
//! let reply = curl(lab.client(0), "http://web.prox.local/").resolve("web.prox.local", 80, GATEWAY).run()?;
//! assert_eq!(reply.status, 404);
//! # Ok(()) }
//! ```

use std::fmt;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use crate::process::describe;
use crate::stream::{self, Digest};
use crate::topology::Host;

pub mod admin;
pub mod backend;

pub use admin::Admin;
pub use backend::Backend;

/// How long one request may take unless a test sets [`Curl::timeout`]: a lab round trip is a
/// millisecond; this only keeps a hang from stalling the test.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// One request, run by curl from a lab host.
#[derive(Debug, Clone)]
pub struct Curl<'h> {
    host: &'h Host,
    url: String,
    method: Option<String>,
    headers: Vec<String>,
    resolve: Vec<String>,
    cacert: Option<PathBuf>,
    insecure: bool,
    version: Option<&'static str>,
    body: Option<Vec<u8>>,
    timeout: Duration,
}

/// `GET url` from `host`.
pub fn curl<'h>(host: &'h Host, url: &str) -> Curl<'h> {
    Curl {
        host,
        url: url.to_owned(),
        method: None,
        headers: Vec::new(),
        resolve: Vec::new(),
        cacert: None,
        insecure: false,
        version: None,
        body: None,
        timeout: DEFAULT_TIMEOUT,
    }
}

/// What curl got: the final response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// As the status line spells it: `1.1`, `2`.
    pub version: String,
    /// In order, names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A request that got no response: curl's exit code (7: cannot connect, 28: timeout, 35 and 60:
/// TLS handshake or certificate) and what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: i32,
    pub stderr: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "curl exit {}: {}", self.code, self.stderr.trim())
    }
}

impl Reply {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body).with_context(|| format!("the body is not JSON: {self}"))
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "HTTP/{} {}", self.version, self.status)?;
        for (name, value) in &self.headers {
            writeln!(f, "{name}: {value}")?;
        }
        let text = self.text();
        let cut: String = text.chars().take(2000).collect();
        write!(f, "\n{cut}{}", if cut.len() < text.len() { "[...]" } else { "" })
    }
}

impl<'h> Curl<'h> {
    /// `-X METHOD`.
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_owned());
        self
    }

    /// One more request header, `Name: value`.
    pub fn header(mut self, line: &str) -> Self {
        self.headers.push(line.to_owned());
        self
    }

    /// `--resolve name:port:ip`: connect to `ip` for `name` (the answer of a DNS query the test made).
    pub fn resolve(mut self, name: &str, port: u16, ip: Ipv4Addr) -> Self {
        self.resolve.push(format!("{name}:{port}:{ip}"));
        self
    }

    /// `--cacert FILE`: trust this CA (and no other).
    pub fn cacert(mut self, path: &Path) -> Self {
        self.cacert = Some(path.to_owned());
        self
    }

    /// `--insecure`: no certificate check (only to fetch the CA certificate itself).
    pub fn insecure(mut self) -> Self {
        self.insecure = true;
        self
    }

    /// `--http2`: HTTP/2 over TLS by ALPN (plain `http://` stays HTTP/1.1 unless the server upgrades).
    pub fn http2(mut self) -> Self {
        self.version = Some("--http2");
        self
    }

    /// `--http1.1`.
    pub fn http1_1(mut self) -> Self {
        self.version = Some("--http1.1");
        self
    }

    /// The request body (`--data-binary @-`, fed on stdin).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// A JSON body with its content type.
    pub fn json(self, body: &str) -> Self {
        self.header("Content-Type: application/json").body(body.as_bytes().to_vec())
    }

    /// `--max-time`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// curl with everything but the output options and the body.
    fn command(&self, headers_file: &Path) -> Command {
        let mut cmd = self.host.command("curl");
        // -q first: no ~/.curlrc; no proxy from the environment.
        cmd.args(["-q", "-sS", "--noproxy", "*", "--max-time"])
            .arg(format!("{}", self.timeout.as_secs_f64()));
        cmd.arg("-D").arg(headers_file);
        if let Some(method) = &self.method {
            cmd.args(["-X", method]);
        }
        for header in &self.headers {
            cmd.arg("-H").arg(header);
        }
        for entry in &self.resolve {
            cmd.arg("--resolve").arg(entry);
        }
        if let Some(ca) = &self.cacert {
            cmd.arg("--cacert").arg(ca);
        }
        if self.insecure {
            cmd.arg("--insecure");
        }
        if let Some(version) = self.version {
            cmd.arg(version);
        }
        cmd
    }

    /// Files for one run in the host's directory, removed when dropped.
    fn scratch(&self) -> Result<tempfile::TempDir> {
        tempfile::Builder::new()
            .prefix("curl-")
            .tempdir_in(self.host.dir())
            .context("cannot make curl's scratch dir")
    }

    /// Runs the request: the response, or an error saying why there was none.
    pub fn run(&self) -> Result<Reply> {
        self.attempt()?.map_err(|failure| anyhow!("{} from {}: {failure}", self.url, self.host.label()))
    }

    /// Repeats the request until it is answered with `status`, for up to `deadline`; the error
    /// names the last answer (or failure) seen.
    pub fn await_status(&self, status: u16, deadline: Duration) -> Result<Reply> {
        let mut last = String::from("(no answer yet)");
        let what = format!("{} to answer {status} on {}", self.url, self.host.label());
        let found = crate::wait::until(deadline, &what, || match self.attempt()? {
            Ok(reply) if reply.status == status => Ok(Some(reply)),
            Ok(reply) => {
                last = reply.to_string();
                Ok(None)
            }
            Err(failure) => {
                last = failure.to_string();
                Ok(None)
            }
        });
        found.with_context(|| format!("last answer: {last}"))
    }

    /// Runs the request: `Ok(Err(failure))` when curl got no response (exit code non-zero); an
    /// error only when curl could not be run at all.
    pub fn attempt(&self) -> Result<std::result::Result<Reply, Failure>> {
        let scratch = self.scratch()?;
        let (headers_file, body_file) = (scratch.path().join("headers"), scratch.path().join("body"));
        let mut cmd = self.command(&headers_file);
        cmd.arg("-o").arg(&body_file);
        if self.body.is_some() {
            cmd.args(["--data-binary", "@-"]);
        }
        cmd.arg(&self.url);
        let line = describe(&cmd);
        let mut child = cmd
            .stdin(if self.body.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run `{line}` (is curl installed?)"))?;
        if let (Some(body), Some(mut stdin)) = (&self.body, child.stdin.take()) {
            stdin.write_all(body).with_context(|| format!("cannot feed the body to `{line}`"))?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            let code = out.status.code().unwrap_or(-1);
            return Ok(Err(Failure { code, stderr: String::from_utf8_lossy(&out.stderr).into_owned() }));
        }
        let body = std::fs::read(&body_file).unwrap_or_default();
        read_reply(&headers_file, body).map(Ok)
    }

    /// Sends `len` bytes of the lab's pattern as the body (`-T -`, streamed from here while curl
    /// sends: chunked over HTTP/1.1) and returns the response.
    pub fn upload_pattern(&self, len: u64) -> Result<Reply> {
        let scratch = self.scratch()?;
        let (headers_file, body_file) = (scratch.path().join("headers"), scratch.path().join("body"));
        let mut cmd = self.command(&headers_file);
        if self.method.is_none() {
            cmd.args(["-X", "POST"]);
        }
        cmd.args(["-T", "-", "-o"]).arg(&body_file).arg(&self.url);
        let line = describe(&cmd);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run `{line}`"))?;
        let mut stdin = child.stdin.take().context("no stdin")?;
        let feeder = std::thread::spawn(move || -> std::io::Result<()> {
            let mut buf = vec![0u8; stream::CHUNK];
            let mut offset = 0;
            while offset < len {
                let n = usize::try_from((len - offset).min(stream::CHUNK as u64)).unwrap_or(stream::CHUNK);
                stream::fill(offset, &mut buf[..n]);
                stdin.write_all(&buf[..n])?;
                offset += n as u64;
            }
            Ok(())
        });
        let out = child.wait_with_output()?;
        let fed = feeder.join().map_err(|_| anyhow!("the upload feeder panicked"))?;
        if !out.status.success() {
            bail!("`{line}` failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
        }
        fed.with_context(|| format!("feeding `{line}`"))?;
        read_reply(&headers_file, std::fs::read(&body_file).unwrap_or_default())
    }

    /// Runs the request with the body streamed to us and digested as it arrives (never stored);
    /// returns the response (with an empty body) and the body's digest.
    pub fn download_digest(&self) -> Result<(Reply, Digest)> {
        let scratch = self.scratch()?;
        let headers_file = scratch.path().join("headers");
        let mut cmd = self.command(&headers_file);
        cmd.args(["-o", "-"]).arg(&self.url);
        let line = describe(&cmd);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run `{line}`"))?;
        let mut stdout = child.stdout.take().context("no stdout")?;
        let mut digest = Digest::default();
        let mut buf = vec![0u8; stream::CHUNK];
        loop {
            let n = stdout.read(&mut buf).with_context(|| format!("reading from `{line}`"))?;
            if n == 0 {
                break;
            }
            digest.update(&buf[..n]);
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "`{line}` failed ({}) after {} bytes: {}",
                out.status,
                digest.bytes(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok((read_reply(&headers_file, Vec::new())?, digest))
    }
}

/// The last header block curl wrote with `-D` (earlier ones are `100 Continue` and the like).
fn read_reply(headers_file: &Path, body: Vec<u8>) -> Result<Reply> {
    let text = std::fs::read_to_string(headers_file).context("curl wrote no headers")?;
    let block = text
        .split("\r\n\r\n")
        .filter(|b| b.trim_start().starts_with("HTTP/"))
        .last()
        .with_context(|| format!("no status line in curl's headers: {text:?}"))?;
    let mut lines = block.trim_start().lines();
    let status_line = lines.next().unwrap_or("");
    let mut words = status_line.split_whitespace();
    let version = words.next().and_then(|v| v.strip_prefix("HTTP/")).unwrap_or("").to_owned();
    let status = words
        .next()
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Ok(Reply { status, version, headers, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_header_block_is_the_reply() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("h");
        std::fs::write(
            &path,
            "HTTP/1.1 100 Continue\r\n\r\n\
             HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nX-A: b: c\r\n\r\n",
        )?;
        let reply = read_reply(&path, b"page".to_vec())?;
        assert_eq!((reply.status, reply.version.as_str()), (502, "1.1"));
        assert_eq!(reply.header("content-type"), Some("text/html"));
        assert_eq!(reply.header("X-A"), Some("b: c"));
        std::fs::write(&path, "HTTP/2 200\r\nserver: x\r\n\r\n")?;
        assert_eq!(read_reply(&path, Vec::new())?.version, "2");
        Ok(())
    }
}
