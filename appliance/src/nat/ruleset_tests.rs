//! The builder as a user of the firewall would check it: each service open on its side only,
//! a forward's DNAT and its way in, hairpin once the WAN address is known, nothing outside our
//! table, and a read-back that only differs where the kernel does.
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;

use proximity_config::{Config, PortForward};
use serde_json::{Value, json};

use super::plan::Plan;
use super::readback::Listing;
use super::ruleset::{Ruleset, build};

const WAN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

fn config(extra: &str) -> Config {
    let text = format!("[lan]\ninterface = \"eth1\"\naddress = \"10.20.0.1/24\"\n{extra}");
    proximity_config::from_toml_str(&text).unwrap()
}

fn forward(protocol: &str, port: u32, to: &str) -> PortForward {
    PortForward::check(protocol, port, to, "10.20.0.1/24".parse().unwrap()).unwrap()
}

/// The rules of `chain`, as `nft list` prints them.
fn chain(ruleset: &Ruleset, chain: &str) -> Vec<String> {
    let listing = Listing::of(&ruleset.objects).unwrap();
    listing
        .0
        .iter()
        .filter_map(|o| o.get("rule"))
        .filter(|r| r["chain"] == chain)
        .map(super::render::rule)
        .collect()
}

#[test]
fn input_opens_each_service_on_the_side_it_serves() {
    let ruleset = build(&Plan::new(&config(""), &[], None));
    assert_eq!(
        chain(&ruleset, "input"),
        [
            "iifname \"lo\" accept",
            "ct state established,related accept",
            "ct state invalid drop",
            "meta l4proto icmp accept",
            "meta l4proto ipv6-icmp accept",
            // DHCP on the LAN only; DNS, proxy and admin API on both sides.
            "iifname \"eth1\" udp dport { 53, 67 } accept",
            "iifname \"eth1\" tcp dport { 53, 80, 443, 9090 } accept",
            "iifname \"eth0\" udp dport 53 accept",
            "iifname \"eth0\" tcp dport { 53, 80, 443, 9090 } accept",
            // The default WAN mode is DHCP: its server's answers come in.
            "iifname \"eth0\" udp sport 67 udp dport 68 accept",
        ]
    );
}

#[test]
fn listen_addresses_decide_the_side() {
    let config = config(
        "[wan]\nmode = \"host\"\n[admin]\nlisten = [\"10.20.0.1:9443\"]\n[dns]\nlisten = [\"127.0.0.1:53\"]\n\
         [proxy]\nhttps_listen = []\nhttp_listen = [\"192.0.2.10:8080\"]\n[dhcp]\nenabled = false\n",
    );
    let ruleset = build(&Plan::new(&config, &[], None));
    let input = chain(&ruleset, "input");
    assert_eq!(
        input[5..],
        ["iifname \"eth1\" tcp dport 9443 accept", "iifname \"eth0\" tcp dport 8080 accept"],
        "the admin API on its LAN address, the proxy on a WAN address, DNS on loopback (always open), \
         no DHCP server, no WAN DHCP client"
    );
}

#[test]
fn input_and_forward_drop_what_no_rule_accepts() {
    let listing = Listing::of(&build(&Plan::new(&config(""), &[], None)).objects).unwrap();
    let policies: Vec<(String, String)> = listing
        .0
        .iter()
        .filter_map(|o| o.get("chain"))
        .map(|c| (c["name"].as_str().unwrap().into(), c["policy"].as_str().unwrap().into()))
        .collect();
    let expected =
        [("input", "drop"), ("forward", "drop"), ("prerouting", "accept"), ("postrouting", "accept")];
    assert_eq!(policies, expected.map(|(c, p)| (c.to_owned(), p.to_owned())));
}

#[test]
fn the_lan_goes_out_masqueraded_and_nothing_comes_in_unasked() {
    let ruleset = build(&Plan::new(&config(""), &[], Some(WAN)));
    assert_eq!(
        chain(&ruleset, "forward"),
        [
            "ct state established,related accept",
            "ct state invalid drop",
            "iifname \"eth1\" oifname \"eth0\" ip saddr 10.20.0.0/24 accept",
        ]
    );
    assert!(chain(&ruleset, "prerouting").is_empty());
    assert_eq!(chain(&ruleset, "postrouting"), ["oifname \"eth0\" ip saddr 10.20.0.0/24 masquerade"]);
}

#[test]
fn a_forward_gets_its_dnat_and_its_way_in() {
    let forwards = [forward("tcp", 2222, "10.20.0.50:22"), forward("udp", 51820, "10.20.0.7:51820")];
    let ruleset = build(&Plan::new(&config(""), &forwards, None));
    assert_eq!(
        chain(&ruleset, "prerouting"),
        [
            "iifname \"eth0\" fib daddr type local tcp dport 2222 dnat ip to 10.20.0.50:22",
            "iifname \"eth0\" fib daddr type local udp dport 51820 dnat ip to 10.20.0.7:51820",
        ],
        "no hairpin while the WAN address is unknown"
    );
    assert_eq!(chain(&ruleset, "forward")[3], "oifname \"eth1\" ct status dnat accept");
    assert_eq!(chain(&ruleset, "postrouting").len(), 1);

    // Once the WAN address is known, LAN clients can use it too (hairpin).
    let ruleset = build(&Plan::new(&config(""), &forwards[..1], Some(WAN)));
    assert_eq!(
        chain(&ruleset, "prerouting"),
        [
            "iifname \"eth0\" fib daddr type local tcp dport 2222 dnat ip to 10.20.0.50:22",
            "iifname \"eth1\" ip daddr 192.0.2.10 tcp dport 2222 dnat ip to 10.20.0.50:22",
        ]
    );
    assert_eq!(
        chain(&ruleset, "postrouting")[1],
        "oifname \"eth1\" ip saddr 10.20.0.0/24 ct status dnat masquerade"
    );
}

#[test]
fn nothing_names_another_table() {
    let forwards = [forward("tcp", 2222, "10.20.0.50:22")];
    let ruleset = build(&Plan::new(&config(""), &forwards, Some(WAN)));
    let batch = serde_json::to_value(ruleset.replace_batch()).unwrap();
    let commands = batch["nftables"].as_array().unwrap();
    // Add (so the delete cannot fail), delete, then the table anew: one transaction.
    assert_eq!(commands[0], json!({"add": {"table": {"family": "inet", "name": "proximity"}}}));
    assert_eq!(commands[1], json!({"delete": {"table": {"family": "inet", "name": "proximity"}}}));
    assert_eq!(commands[2], commands[0]);
    for command in commands {
        let (verb, object) = command.as_object().unwrap().iter().next().unwrap();
        assert!(verb == "add" || verb == "delete", "{command}");
        let (_, body) = object.as_object().unwrap().iter().next().unwrap();
        assert_eq!(body["family"], "inet", "{command}");
        assert_eq!(body.get("table").unwrap_or(&body["name"]), "proximity", "{command}");
    }
    assert_eq!(commands.iter().filter(|c| c.get("delete").is_some()).count(), 1);
    assert_eq!(serde_json::to_value(Ruleset::remove_batch()).unwrap()["nftables"], json!(commands[..2]));
}

#[test]
fn equal_inputs_give_the_same_ruleset() {
    let a = [forward("udp", 9, "10.20.0.9:9"), forward("tcp", 2222, "10.20.0.50:22")];
    let b = [a[1], a[0], a[1]];
    let config = config("");
    assert_eq!(build(&Plan::new(&config, &a, Some(WAN))), build(&Plan::new(&config, &b, Some(WAN))));
}

/// What `nft -j list` would answer for `ruleset`: a metainfo header and a handle on everything.
fn listed_by_nft(ruleset: &Ruleset) -> Vec<Value> {
    let mut objects = vec![json!({"metainfo": {"version": "1.0.6", "json_schema_version": 1}})];
    for (handle, mut o) in Listing::of(&ruleset.objects).unwrap().0.into_iter().enumerate() {
        let body = o.as_object_mut().unwrap().values_mut().next().unwrap();
        body["handle"] = json!(handle + 1);
        objects.push(o);
    }
    objects
}

#[test]
fn a_read_back_differs_only_where_the_kernel_does() {
    let forwards = [forward("tcp", 2222, "10.20.0.50:22")];
    let ruleset = build(&Plan::new(&config(""), &forwards, Some(WAN)));
    let intended = Listing::of(&ruleset.objects).unwrap();
    let answer = |objects: &[Value]| Listing::parse(&json!({ "nftables": objects }).to_string()).unwrap();

    let mut objects = listed_by_nft(&ruleset);
    assert_eq!(
        intended.compare(&answer(&objects)),
        Ok(()),
        "handles and metainfo are nft's, not differences"
    );

    // A rule gone from prerouting, another changed in input.
    let hairpin = objects.iter().position(|o| o["rule"]["chain"] == "prerouting").unwrap() + 1;
    objects.remove(hairpin);
    let lo = objects.iter().position(|o| o["rule"]["chain"] == "input").unwrap();
    objects[lo]["rule"]["expr"][1] = json!({"drop": null});
    let error = intended.compare(&answer(&objects)).unwrap_err().to_string();
    assert!(
        error.contains("chain input rule 1: intended `iifname \"lo\" accept`, found `iifname \"lo\" drop`"),
        "{error}"
    );
    assert!(
        error.contains(
            "chain prerouting: rule `iifname \"eth1\" ip daddr 192.0.2.10 tcp dport 2222 dnat ip to \
             10.20.0.50:22` is missing"
        ),
        "{error}"
    );
}
