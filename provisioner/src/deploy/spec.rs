//! The container Proximity deploys (decision 3 of issue 6): its creation parameters, the digest
//! of those parameters (`proximity-spec`), and how a container's tags and description say it is
//! ours and what it was made from.

use std::collections::BTreeMap;

use crate::net::fingerprint::hex;

/// The tag every Proximity container carries.
pub const TAG: &str = "proximity";
/// The extra tag of the temporary container an upgrade parks the state volume in.
pub const STAGING_TAG: &str = "proximity-staging";
/// The state volume's mount point inside the container (the appliance's `[state] dir`).
pub const STATE_MOUNT: &str = "/var/lib/proximity";
/// The appliance's LAN address on `eth1`.
pub const LAN_ADDRESS: &str = "10.20.0.1/24";
/// Description line with the spec digest.
pub const SPEC_KEY: &str = "proximity-spec";
/// Description line with the template volid.
pub const TEMPLATE_KEY: &str = "proximity-template";
/// Description line of a staging container naming the VMID it serves.
pub const STAGING_KEY: &str = "proximity-staging-for";

/// What the container is made of; every field is a user choice or the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub vmid: u32,
    /// `<template storage>:vztmpl/<file name>`.
    pub template: String,
    /// Storage of the root and state volumes.
    pub storage: String,
    pub wan_bridge: String,
    pub lan_bridge: String,
}

impl Spec {
    /// What the appliance's container and the staging container share: the template, an
    /// unprivileged `unmanaged` container on `storage`, no swap.
    fn common(&self, hostname: &str, memory_mib: u32) -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            ("ostemplate", self.template.clone()),
            ("ostype", "unmanaged".to_owned()),
            ("arch", "amd64".to_owned()),
            ("unprivileged", "1".to_owned()),
            ("hostname", hostname.to_owned()),
            ("memory", memory_mib.to_string()),
            ("swap", "0".to_owned()),
            ("rootfs", format!("{}:1", self.storage)),
        ])
    }

    /// Parameters of `POST /nodes/{node}/lxc` other than `vmid` and `description`; `with_state`
    /// adds the state volume `mp0` (an upgrade creates without it and moves the old one in).
    fn params(&self, with_state: bool) -> BTreeMap<&'static str, String> {
        let mut p = self.common("proximity", 256);
        p.extend([
            ("cores", "1".to_owned()),
            ("net0", format!("name=eth0,bridge={},ip=dhcp,firewall=0", self.wan_bridge)),
            ("net1", format!("name=eth1,bridge={},ip={LAN_ADDRESS},firewall=0", self.lan_bridge)),
            ("onboot", "1".to_owned()),
            ("tags", TAG.to_owned()),
        ]);
        if with_state {
            p.insert("mp0", format!("{}:1,mp={STATE_MOUNT},backup=1", self.storage));
        }
        p
    }

    /// The digest written into the description: SHA-256 of the full parameters (with `mp0`) and
    /// the VMID, one `key=value` line each in key order, so any change of template or option
    /// changes it.
    pub fn digest(&self) -> String {
        let mut text = format!("vmid={}\n", self.vmid);
        for (k, v) in self.params(true) {
            text.push_str(&format!("{k}={v}\n"));
        }
        hex(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref())
    }

    /// The description marking the container as ours.
    pub fn description(&self) -> String {
        format!(
            "Proximity network appliance, managed by the `proximity` CLI (do not edit).\n{SPEC_KEY}: {}\n{TEMPLATE_KEY}: {}\n",
            self.digest(),
            self.template
        )
    }

    /// The full creation parameters.
    pub fn create_params(&self, with_state: bool) -> Vec<(&'static str, String)> {
        let mut p: Vec<(&'static str, String)> = vec![("vmid", self.vmid.to_string())];
        p.extend(self.params(with_state));
        p.push(("description", self.description()));
        p
    }

    /// Parameters of the temporary container `vmid` that holds the state volume during an upgrade:
    /// the new template, no network, not started on boot.
    pub fn staging_params(&self, vmid: u32) -> Vec<(&'static str, String)> {
        let mut p: Vec<(&'static str, String)> = vec![("vmid", vmid.to_string())];
        p.extend(self.common("proximity-staging", 64));
        p.push(("tags", format!("{TAG};{STAGING_TAG}")));
        p.push((
            "description",
            format!(
                "Proximity upgrade staging (holds the state volume while {0} is replaced).\n{STAGING_KEY}: {0}\n",
                self.vmid
            ),
        ));
        p
    }
}

/// Tags as Proxmox stores them (`a;b`, also `,` or space separated on input).
pub fn tags(text: &str) -> Vec<&str> {
    text.split([';', ',', ' ']).map(str::trim).filter(|t| !t.is_empty()).collect()
}

/// Whether a tag list contains `tag`.
pub fn has_tag(text: Option<&str>, tag: &str) -> bool {
    text.is_some_and(|t| tags(t).iter().any(|x| x.eq_ignore_ascii_case(tag)))
}

/// The value of a `key: value` line of a description.
pub fn description_value<'a>(description: &'a str, key: &str) -> Option<&'a str> {
    description.lines().find_map(|line| {
        let (k, v) = line.trim().split_once(':')?;
        (k.trim() == key).then(|| v.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PINNED_DIGEST: &str = "f7908a391c52e980b0f20f98d052ba37c044e4671662d159fe3885576f1ef923";

    fn spec() -> Spec {
        Spec {
            vmid: 100,
            template: "local:vztmpl/proximity-appliance_0.1.0-0123456789ab_amd64.tar.zst".into(),
            storage: "local-lvm".into(),
            wan_bridge: "vmbr0".into(),
            lan_bridge: "proximity-lan".into(),
        }
    }

    #[test]
    fn creates_the_agreed_container() {
        let p: BTreeMap<_, _> = spec().create_params(true).into_iter().collect();
        assert_eq!(p["net0"], "name=eth0,bridge=vmbr0,ip=dhcp,firewall=0");
        assert_eq!(p["net1"], "name=eth1,bridge=proximity-lan,ip=10.20.0.1/24,firewall=0");
        assert_eq!(p["mp0"], "local-lvm:1,mp=/var/lib/proximity,backup=1");
        assert_eq!(p["rootfs"], "local-lvm:1");
        assert_eq!(p["tags"], "proximity");
        assert!(!p.contains_key("entrypoint"));
        let without: BTreeMap<_, _> = spec().create_params(false).into_iter().collect();
        assert!(!without.contains_key("mp0"));
        // The container made without mp0 carries the same spec: it gets mp0 moved in.
        assert_eq!(p["description"], without["description"]);
    }

    /// The digest of a given spec is fixed: a change to how parameters are written would change
    /// it, and every deployed appliance would be replaced (upgraded) at its next `up`. Change
    /// this value only together with a deliberate change of the container.
    #[test]
    fn the_digest_of_a_spec_is_stable() {
        assert_eq!(spec().digest(), PINNED_DIGEST);
    }

    #[test]
    fn the_digest_follows_every_input() {
        let base = spec().digest();
        assert_eq!(base.len(), 64);
        assert_eq!(base, spec().digest());
        let changes = [
            Spec {
                template: "local:vztmpl/proximity-appliance_0.1.0-ba9876543210_amd64.tar.zst".into(),
                ..spec()
            },
            Spec { storage: "local".into(), ..spec() },
            Spec { wan_bridge: "vmbr1".into(), ..spec() },
            Spec { lan_bridge: "vmbr9".into(), ..spec() },
            Spec { vmid: 101, ..spec() },
        ];
        for changed in changes {
            assert_ne!(changed.digest(), base, "{changed:?}");
        }
    }

    #[test]
    fn reads_back_description_and_tags() {
        let s = spec();
        // Proxmox may return the description with its own line ends and spacing.
        let stored = s.description().replace('\n', " \n");
        assert_eq!(description_value(&stored, SPEC_KEY), Some(s.digest().as_str()));
        assert_eq!(description_value(&stored, TEMPLATE_KEY), Some(s.template.as_str()));
        assert_eq!(description_value("nothing here", SPEC_KEY), None);
        assert!(has_tag(Some("proximity"), TAG));
        assert!(has_tag(Some("web;proximity;x"), TAG));
        assert!(has_tag(Some("proximity,proximity-staging"), STAGING_TAG));
        assert!(!has_tag(Some("proximity-staging"), TAG));
        assert!(!has_tag(None, TAG));
        assert!(!has_tag(Some("myproximity"), TAG));
    }
}
