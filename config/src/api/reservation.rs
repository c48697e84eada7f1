//! A reservation made over the API: a fixed address (and name) for one MAC on the LAN.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::{parse_host_mac, parse_lan_host};
use crate::types::{MacAddr, NameError, check_label, is_reserved_label};
use crate::validate::{ConfigErrors, Problems, Reservation};

/// What `POST /v1/reservations` accepts; check it with [`ApiReservation::validate`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReservationRequest {
    #[serde(default)]
    pub mac: String,
    #[serde(default)]
    pub ip: String,
    /// Host name the address is known by under the domain; owned by this reservation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A validated reservation from the API; stored, and merged with the config's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiReservation {
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
    /// Lower-case host label.
    pub name: Option<String>,
}

impl ApiReservation {
    /// Checks a request against the LAN (`lan.address`, the gateway with its prefix), reporting
    /// every problem with its field path. Whether the MAC, address or name is already taken is
    /// for the store to say.
    pub fn validate(raw: ReservationRequest, lan: &Ipv4Net) -> Result<ApiReservation, ConfigErrors> {
        let mut p = Problems::default();
        let mac = p.check("mac", parse_host_mac(&raw.mac));
        let ip = p.check("ip", parse_lan_host(&raw.ip, lan));
        let name = raw.name.as_deref().map(|n| {
            let label = n.to_ascii_lowercase();
            match check_label(&label) {
                Err(NameError::Empty) => p.add("name", "is empty; leave it out for no name"),
                Err(e) => p.add("name", format!("{n:?} is not a valid host name: {e}")),
                Ok(()) if is_reserved_label(&label) => p.add(
                    "name",
                    format!("{label:?} is the appliance's own name server; choose another name"),
                ),
                Ok(()) => {}
            }
            label
        });
        let reservation = match (mac, ip) {
            (Some(mac), Some(ip)) => Some(ApiReservation { mac, ip, name }),
            _ => None,
        };
        p.finish(reservation)
    }
}

impl From<ApiReservation> for Reservation {
    fn from(r: ApiReservation) -> Self {
        Reservation { mac: r.mac, ip: r.ip, name: r.name }
    }
}

impl From<&ApiReservation> for ReservationRequest {
    /// The request that recreates `r`.
    fn from(r: &ApiReservation) -> Self {
        ReservationRequest { mac: r.mac.to_string(), ip: r.ip.to_string(), name: r.name.clone() }
    }
}
