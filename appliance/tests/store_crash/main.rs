//! Integration tests of the state store across processes: acknowledged commits survive SIGKILL
//! of the writing process, and a throughput measurement (ignored; run by hand).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod crash;
mod throughput;

use std::net::Ipv4Addr;

use proximity_appliance::state::{Lease, LeaseState};
use proximity_config::MacAddr;

/// The record a writer stores for sequence number `n` in `round`: a pure function of both,
/// so the checker knows exactly what an acknowledged (or later overwritten) record must be.
pub(crate) fn lease(n: u32, round: u32) -> Lease {
    let [_, b, c, d] = n.to_be_bytes();
    Lease {
        ip: Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)) + n),
        client_id: n.to_be_bytes().to_vec(),
        mac: MacAddr([0x02, 0, round as u8, b, c, d]),
        hostname: Some(format!("r{round}-n{n}")),
        state: LeaseState::Active,
        starts: 1_700_000_000 + u64::from(round),
        expires: 1_700_003_600 + u64::from(round),
    }
}
