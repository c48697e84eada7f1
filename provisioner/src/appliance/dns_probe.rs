//! The DNS probe of `up`: one UDP query for `ns.prox.local` A to the appliance's WAN address,
//! answered authoritatively from the WAN side when its DNS server runs.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::net::UdpSocket;

/// The name asked for: the appliance's own, always present.
pub const PROBE_NAME: &str = "ns.prox.local.";
/// How long one query waits for its answer.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("DNS probe socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("DNS probe message: {0}")]
    Proto(String),
    #[error("no DNS answer from {0} within {QUERY_TIMEOUT:?}")]
    Timeout(SocketAddr),
    #[error("{0} answered {PROBE_NAME} with {1} and {2} records")]
    BadAnswer(SocketAddr, ResponseCode, usize),
}

/// Asks `server:53` for [`PROBE_NAME`] and returns the addresses answered.
pub async fn probe(server: Ipv4Addr) -> Result<Vec<Ipv4Addr>, ProbeError> {
    probe_at(SocketAddr::from((server, 53))).await
}

/// Asks `server` for [`PROBE_NAME`].
pub async fn probe_at(server: SocketAddr) -> Result<Vec<Ipv4Addr>, ProbeError> {
    let name = Name::from_ascii(PROBE_NAME).map_err(|e| ProbeError::Proto(e.to_string()))?;
    let mut query = Message::query();
    query.add_query(Query::query(name, RecordType::A));
    let id = query.metadata.id;
    let bytes = query.to_vec().map_err(|e| ProbeError::Proto(e.to_string()))?;
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await?;
    socket.connect(server).await?;
    socket.send(&bytes).await?;
    let mut buf = vec![0; 4096];
    let deadline = tokio::time::Instant::now() + QUERY_TIMEOUT;
    loop {
        let n = tokio::time::timeout_at(deadline, socket.recv(&mut buf))
            .await
            .map_err(|_| ProbeError::Timeout(server))??;
        let Ok(answer) = Message::from_vec(&buf[..n]) else { continue };
        if answer.metadata.id != id {
            continue;
        }
        let addresses: Vec<Ipv4Addr> = answer
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect();
        if answer.metadata.response_code != ResponseCode::NoError || addresses.is_empty() {
            return Err(ProbeError::BadAnswer(server, answer.metadata.response_code, answer.answers.len()));
        }
        return Ok(addresses);
    }
}
