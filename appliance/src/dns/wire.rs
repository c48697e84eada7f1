//! Replies on the wire: EDNS0, the size a reply may have, and truncation (TC=1, complete over TCP).

use hickory_proto::op::{Edns, Metadata, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::BinEncoder;
use hickory_server::zone_handler::{MessageResponseBuilder, Queries};

/// The EDNS0 UDP payload we advertise and the most we send over UDP, whatever the client offers:
/// 1232 bytes fits every path's MTU without IP fragmentation (DNS Flag Day 2020).
pub const MAX_UDP_PAYLOAD: u16 = 1232;
/// The classic limit of a UDP reply to a client without EDNS (RFC 1035 4.2.1).
pub const CLASSIC_UDP_PAYLOAD: u16 = 512;

/// How a query arrived; decides the size limit of its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// The sections and flags of a reply, before encoding.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    pub rcode: ResponseCode,
    /// AA: the data is from one of our zones.
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
}

impl Answer {
    /// No records, just a response code.
    pub fn error(rcode: ResponseCode) -> Self {
        Answer { rcode, ..Answer::default() }
    }
}

/// What a reply echoes from its query, and how large it may be.
#[derive(Debug, Clone, Copy)]
pub struct ReplyTo<'q> {
    pub queries: &'q Queries,
    pub request: &'q Metadata,
    /// The client sent an OPT record: the reply carries ours.
    pub edns: bool,
    /// RA: recursion is offered to this client.
    pub recursion: bool,
    /// The most bytes the reply may have.
    pub limit: u16,
}

/// The size limit of a reply: TCP carries anything; UDP what the client advertised in EDNS0,
/// capped at ours, or 512 bytes without EDNS.
pub fn reply_limit(transport: Transport, client_edns: Option<&Edns>) -> u16 {
    match (transport, client_edns) {
        (Transport::Tcp, _) => u16::MAX,
        (Transport::Udp, Some(edns)) => edns.max_payload().clamp(CLASSIC_UDP_PAYLOAD, MAX_UDP_PAYLOAD),
        (Transport::Udp, None) => CLASSIC_UDP_PAYLOAD,
    }
}

/// The encoded reply and what it said, for metrics.
#[derive(Debug)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    pub rcode: ResponseCode,
    pub truncated: bool,
}

/// Encodes `answer` as the reply to `to`. A reply that does not fit `to.limit` is sent as the
/// question alone with TC=1 (no partial RRsets to be cached by mistake); the client asks again
/// over TCP. Encoding never fails the caller: at worst the reply is a bare SERVFAIL.
pub fn encode(to: &ReplyTo<'_>, answer: &Answer) -> Encoded {
    let mut metadata = Metadata::response_from_request(to.request);
    metadata.authoritative = answer.authoritative;
    metadata.recursion_available = to.recursion;
    metadata.response_code = answer.rcode;
    let edns = to.edns.then(our_edns);

    let mut bytes = Vec::with_capacity(512);
    let full = {
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(to.limit);
        MessageResponseBuilder::new(to.queries, edns.as_ref())
            .build(
                metadata,
                answer.answers.iter(),
                answer.authorities.iter(),
                std::iter::empty(),
                answer.additionals.iter(),
            )
            .destructive_emit(&mut encoder)
    };
    match full {
        Ok(info) if !info.truncation => return Encoded { bytes, rcode: answer.rcode, truncated: false },
        Ok(_) => metadata.truncation = true,
        Err(_) => {
            metadata.response_code = ResponseCode::ServFail;
            metadata.authoritative = false;
        }
    }
    bytes.clear();
    let bare = {
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(to.limit);
        MessageResponseBuilder::new(to.queries, edns.as_ref())
            .build_no_records(metadata)
            .destructive_emit(&mut encoder)
    };
    if bare.is_err() {
        // Even the question does not fit (it came in, so this cannot happen): the header alone.
        metadata.response_code = ResponseCode::ServFail;
        bytes = header_only(&metadata);
    }
    Encoded { bytes, rcode: metadata.response_code, truncated: metadata.truncation }
}

/// Our OPT record: EDNS version 0, our payload size, no DNSSEC (DO clear).
fn our_edns() -> Edns {
    let mut edns = Edns::new();
    edns.set_max_payload(MAX_UDP_PAYLOAD).set_version(0);
    edns
}

/// A reply of the header alone (every count zero), for a query whose question could not be read:
/// id, opcode and RD echoed, the response code of `metadata` (its low four bits).
pub fn header_only(metadata: &Metadata) -> Vec<u8> {
    let [id_hi, id_lo] = metadata.id.to_be_bytes();
    let qr_opcode = 0x80 | ((u8::from(metadata.op_code) & 0x0f) << 3) | u8::from(metadata.recursion_desired);
    let ra_rcode = (u8::from(metadata.recursion_available) << 7) | metadata.response_code.low();
    vec![id_hi, id_lo, qr_opcode, ra_rcode, 0, 0, 0, 0, 0, 0, 0, 0]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn udp_limit_honours_the_client_within_ours() {
        let mut edns = Edns::new();
        edns.set_max_payload(4096);
        assert_eq!(reply_limit(Transport::Udp, Some(&edns)), MAX_UDP_PAYLOAD);
        edns.set_max_payload(800);
        assert_eq!(reply_limit(Transport::Udp, Some(&edns)), 800);
        edns.set_max_payload(100);
        assert_eq!(reply_limit(Transport::Udp, Some(&edns)), CLASSIC_UDP_PAYLOAD);
        assert_eq!(reply_limit(Transport::Udp, None), CLASSIC_UDP_PAYLOAD);
        assert_eq!(reply_limit(Transport::Tcp, None), u16::MAX);
    }

    #[test]
    fn a_bare_header_is_a_response_with_the_code() {
        let mut metadata =
            Metadata::new(0xbeef, hickory_proto::op::MessageType::Query, hickory_proto::op::OpCode::Query);
        metadata.response_code = ResponseCode::ServFail;
        let bytes = header_only(&metadata);
        let msg = hickory_proto::op::Message::from_vec(&bytes).unwrap();
        assert_eq!(msg.metadata.id, 0xbeef);
        assert_eq!(msg.metadata.response_code, ResponseCode::ServFail);
        assert_eq!(msg.metadata.message_type, hickory_proto::op::MessageType::Response);
    }
}
