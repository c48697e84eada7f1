//! A port forward over the API: what `POST /v1/forwards` takes, and how `GET /v1/forwards`
//! shows one. The checks are [`PortForward::check`]'s, the same as the config file's.

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::forward::{PortForward, Protocol};
use crate::validate::{ConfigErrors, Problems};

/// What `POST /v1/forwards` accepts; check it with [`ForwardRequest::validate`]. Fields are
/// taken loosely (a missing one is empty or 0) so that every problem is reported by name.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardRequest {
    #[serde(default)]
    pub protocol: String,
    #[serde(default)]
    pub port: u32,
    #[serde(default)]
    pub to: String,
}

impl ForwardRequest {
    /// Checks the request against the LAN (`lan.address`), every problem with its field. Whether
    /// the port is free is for the appliance to say.
    pub fn validate(&self, lan: Ipv4Net) -> Result<PortForward, ConfigErrors> {
        let mut p = Problems::default();
        let forward = PortForward::check(&self.protocol, self.port, &self.to, lan)
            .map_err(|problems| problems.into_iter().for_each(|(field, why)| p.add(field, why)))
            .ok();
        p.finish(forward)
    }
}

impl From<&PortForward> for ForwardRequest {
    /// The request that recreates `f`.
    fn from(f: &PortForward) -> Self {
        ForwardRequest { protocol: f.protocol.to_string(), port: f.port.into(), to: f.to.to_string() }
    }
}

/// A forward as `GET /v1/forwards` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardView {
    pub protocol: Protocol,
    pub port: u16,
    /// The LAN host and port the WAN port goes to.
    pub to: std::net::SocketAddrV4,
    /// `config` (the file's `[[nat.forwards]]`, read-only over the API) or `api`.
    pub source: String,
}

impl ForwardView {
    pub fn new(f: &PortForward, source: &str) -> Self {
        ForwardView { protocol: f.protocol, port: f.port, to: f.to, source: source.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lan() -> Ipv4Net {
        "10.20.0.1/24".parse().expect("net")
    }

    fn problems(json: &str) -> Vec<String> {
        let request: ForwardRequest = serde_json::from_str(json).expect("json");
        request.validate(lan()).expect_err("invalid").iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_request_becomes_a_forward_and_back() {
        let request: ForwardRequest =
            serde_json::from_str(r#"{"protocol": "tcp", "port": 2222, "to": "10.20.0.50:22"}"#)
                .expect("json");
        let forward = request.validate(lan()).expect("valid");
        assert_eq!(forward.to_string(), "tcp/2222 -> 10.20.0.50:22");
        assert_eq!(ForwardRequest::from(&forward), request);
        let view = serde_json::to_value(ForwardView::new(&forward, "api")).expect("json");
        assert_eq!(
            view,
            serde_json::json!({"protocol": "tcp", "port": 2222, "to": "10.20.0.50:22", "source": "api"})
        );
    }

    #[test]
    fn every_problem_names_its_field() {
        assert_eq!(
            problems(r#"{"protocol": "gre", "port": 0, "to": "10.30.0.5:22"}"#),
            [
                "protocol: \"gre\" is not a protocol; use \"tcp\" or \"udp\"",
                "port: 0 is not a port (1 to 65535)",
                "to: 10.30.0.5 is outside the LAN 10.20.0.0/24",
            ]
        );
        // A field left out is reported like an empty one.
        assert_eq!(problems(r#"{"protocol": "udp", "port": 53}"#).len(), 1);
        assert!(serde_json::from_str::<ForwardRequest>(r#"{"port": 1, "extra": 2}"#).is_err());
    }
}
