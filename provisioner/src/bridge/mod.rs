//! The app bridge: which mode a name needs (Proxmox's `pve-iface` rule), and the two ways to
//! make it: through the Proxmox network API ([`api`]) or on the host itself ([`host`]), which
//! only the node itself may do ([`local`]).

pub mod api;
pub mod host;
pub mod local;

/// What marks a bridge (API `comments`, host stanza) as created by Proximity.
pub const MARKER: &str = "managed by proximity";

/// Whether Proxmox's network API accepts `name` (format `pve-iface`:
/// `^[a-zA-Z][a-zA-Z0-9_]{1,20}([:\.]\d+)?$`); names it refuses, like `proximity-lan`, are made
/// on the host.
pub fn is_pve_iface(name: &str) -> bool {
    let (base, suffix) = match name.find([':', '.']) {
        Some(i) => (&name[..i], Some(&name[i + 1..])),
        None => (name, None),
    };
    let mut chars = base.chars();
    let base_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && (2..=21).contains(&base.len())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    let suffix_ok = suffix.is_none_or(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    base_ok && suffix_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_pve_iface_format() {
        for ok in ["vmbr0", "vmbr1", "ab", "vmbr0.100", "eth0:1", "a_b_c", &format!("a{}", "b".repeat(20))] {
            assert!(is_pve_iface(ok), "{ok}");
        }
        for bad in [
            "proximity-lan",
            "a",
            "0vmbr",
            "",
            "vmbr0.",
            "vmbr0.x",
            &format!("a{}", "b".repeat(21)),
            "vm br",
            "vmbr0.1.2",
        ] {
            assert!(!is_pve_iface(bad), "{bad}");
        }
    }
}
