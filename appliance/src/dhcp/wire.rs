//! Decoding datagrams safely, clients' to our server and servers' to our WAN client. dhcproto
//! trusts some option lengths (it asserts them in debug builds and subtracts from them), so a
//! hostile datagram could panic the decoder; those options are length-checked here first, and a
//! malformed datagram is an error, never a panic. Fixed-size numbers are checked too: dhcproto
//! reads their size whatever the length byte says, so a wrong one would shift every option after.
//! And the hardware address length: dhcproto's `chaddr()` slices its 16-byte field by it, so a
//! decoded message with hlen over 16 would panic whoever reads its chaddr.

use dhcproto::v4::{Decodable, Message};

/// Where the options start: the fixed BOOTP header (236 bytes) plus the magic cookie.
const OPTIONS_OFFSET: usize = 240;
/// Where hlen is, and the size of the chaddr field it measures.
const HLEN_OFFSET: usize = 2;
const CHADDR_SIZE: u8 = 16;

/// Why a datagram is not a DHCP message we accept.
#[derive(Debug, thiserror::Error)]
pub enum DecodeFailure {
    #[error("option {code} has invalid length {len}")]
    OptionLength { code: u8, len: usize },
    #[error("hardware address length {0} is longer than the chaddr field")]
    HardwareLength(u8),
    #[error(transparent)]
    Dhcproto(#[from] dhcproto::error::DecodeError),
}

/// Decodes one datagram into a message.
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeFailure> {
    if let Some(&hlen) = bytes.get(HLEN_OFFSET).filter(|&&hlen| hlen > CHADDR_SIZE) {
        return Err(DecodeFailure::HardwareLength(hlen));
    }
    check_option_lengths(bytes)?;
    Ok(Message::from_bytes(bytes)?)
}

/// Rejects options whose length dhcproto would not check. Truncation and other structural
/// errors are left to dhcproto, which reports them.
fn check_option_lengths(bytes: &[u8]) -> Result<(), DecodeFailure> {
    let mut at = OPTIONS_OFFSET;
    while let Some(&code) = bytes.get(at) {
        match code {
            0 => at += 1,
            255 => break,
            _ => {
                let Some(&len) = bytes.get(at + 1) else { break };
                let len = usize::from(len);
                let ok = match code {
                    80 => len == 0,           // rapid commit
                    94 => len == 3,           // client network interface
                    152..=155 => len == 4,    // bulk lease query times
                    81 => len >= 3,           // client FQDN: flags, rcode1, rcode2, name
                    151 => len >= 1,          // bulk lease query status code
                    53 => len == 1,           // message type
                    57 => len == 2,           // maximum message size
                    51 | 58 | 59 => len == 4, // lease time, T1, T2
                    _ => true,
                };
                if !ok {
                    return Err(DecodeFailure::OptionLength { code, len });
                }
                at += 2 + len;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dhcproto::v4::{DhcpOption, Encodable, MessageType};

    fn with_raw_option(code: u8, data: &[u8]) -> Vec<u8> {
        let mut m = Message::default();
        m.set_chaddr(&[2, 0, 0, 0, 0, 1]);
        m.opts_mut().insert(DhcpOption::MessageType(MessageType::Discover));
        let mut bytes = m.to_vec().expect("encodes");
        let end = bytes.iter().rposition(|&b| b == 255).expect("end option");
        let len = u8::try_from(data.len()).expect("short");
        bytes.splice(end..end, [&[code, len][..], data].concat());
        bytes
    }

    #[test]
    fn options_of_a_wrong_length_are_errors() {
        for (code, data) in [
            (81u8, &[][..]),
            (81, &[0, 0][..]),
            (151, &[][..]),
            (152, &[1][..]),
            (80, &[1][..]),
            (94, &[1][..]),
            (51, &[0, 0][..]),
            (58, &[0, 0, 0, 0, 0][..]),
            (57, &[5][..]),
        ] {
            let bytes = with_raw_option(code, data);
            assert!(matches!(decode(&bytes), Err(DecodeFailure::OptionLength { .. })), "option {code}");
        }
    }

    #[test]
    fn a_hardware_length_past_chaddr_is_an_error_not_a_panic_later() {
        let mut bytes = with_raw_option(12, b"host");
        bytes[2] = 17;
        assert!(matches!(decode(&bytes), Err(DecodeFailure::HardwareLength(17))));
        bytes[2] = 16;
        assert_eq!(decode(&bytes).expect("16 fits").chaddr().len(), 16);
    }

    #[test]
    fn well_formed_options_pass() {
        let bytes = with_raw_option(81, &[0, 0, 0, 4, b'h', b'o', b's', b't', 0]);
        assert!(decode(&bytes).is_ok());
        assert!(decode(&[1, 2, 3]).is_err());
    }
}
