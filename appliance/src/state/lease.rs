//! The lease record: what the store keeps about one address of the DHCP pool.

use std::net::Ipv4Addr;

use proximity_config::MacAddr;
use serde::{Deserialize, Serialize};

/// Seconds since the Unix epoch. Lease times are wall-clock so they mean the same after a restart.
pub type UnixTime = u64;

/// What an address is doing. Expiry is not a state: a lease whose `expires` has passed is free
/// again, but its record is kept so its last client can get the same address back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseState {
    /// Acknowledged to the client until `expires`.
    Active,
    /// Given back by the client (DHCPRELEASE); free, still remembered for that client.
    Released,
    /// Declined by a client (the address answered ARP elsewhere): kept out of the pool until `expires`.
    Declined,
}

/// One address and the client that holds (or last held) it. Keyed by `ip` in the store: at most
/// one record per address, so an address can never be recorded as leased to two clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub ip: Ipv4Addr,
    /// Client identity: option 61 when the client sent one, else hardware type + chaddr.
    #[serde(with = "hex_bytes")]
    pub client_id: Vec<u8>,
    pub mac: MacAddr,
    /// The client's host name (option 12 or 81) sanitised to a DNS label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    pub state: LeaseState,
    /// When the lease was granted or last renewed.
    pub starts: UnixTime,
    /// When it ends (or, for `Declined`, when probation ends).
    pub expires: UnixTime,
}

impl Lease {
    /// Whether the address is taken at `now`: active and unexpired, or on probation.
    pub fn is_bound(&self, now: UnixTime) -> bool {
        match self.state {
            LeaseState::Active | LeaseState::Declined => self.expires > now,
            LeaseState::Released => false,
        }
    }
}

/// Client ids as hex in the stored JSON, readable when someone inspects the store.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        s.serialize_str(&text)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        if text.len() % 2 != 0 {
            return Err(serde::de::Error::custom("odd-length hex string"));
        }
        (0..text.len())
            .step_by(2)
            .map(|i| {
                text.get(i..i + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                    .ok_or_else(|| serde::de::Error::custom("invalid hex digit"))
            })
            .collect()
    }
}
