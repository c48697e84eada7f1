//! The pure ruleset builder: a [`Plan`] in, the one table the appliance owns out, as nftables
//! JSON objects (crate `nftables`). No I/O: equal plans give equal rulesets.
//!
//! `table inet proximity`:
//! - `input` (policy drop): loopback, answers (established/related), ICMP, and the appliance's
//!   own services on the interface where each is served; the WAN DHCP client's answers.
//! - `forward` (policy drop): LAN -> WAN from the LAN subnet; back only answers and forwarded
//!   (DNATed) connections.
//! - `prerouting` (nat): each forward's DNAT for packets to the appliance arriving on the WAN,
//!   and for LAN clients that use the WAN address (hairpin) once that address is known.
//! - `postrouting` (nat): masquerade of the LAN subnet out of the WAN; hairpin masquerade, so
//!   the LAN host answers through the appliance rather than straight to its neighbour.

use std::borrow::Cow;

use nftables::schema::{Chain, NfCmd, NfListObject, NfObject, Nftables, Rule, Table};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use proximity_config::Protocol;

use super::expr::{self, Stmt};
use super::plan::{DHCP_CLIENT_PORT, DHCP_SERVER_PORT, Plan};

/// The family of the one table the appliance owns.
pub const FAMILY: NfFamily = NfFamily::INet;
/// The name of the one table the appliance owns; it never lists, changes or deletes another.
pub const TABLE: &str = "proximity";

/// The chains, in the order they are created and listed: (name, type, hook, priority, policy).
/// Priorities are nft's named ones: filter 0, dstnat -100, srcnat 100.
const CHAINS: [(&str, NfChainType, NfHook, i32, NfChainPolicy); 4] = [
    ("input", NfChainType::Filter, NfHook::Input, 0, NfChainPolicy::Drop),
    ("forward", NfChainType::Filter, NfHook::Forward, 0, NfChainPolicy::Drop),
    ("prerouting", NfChainType::NAT, NfHook::Prerouting, -100, NfChainPolicy::Accept),
    ("postrouting", NfChainType::NAT, NfHook::Postrouting, 100, NfChainPolicy::Accept),
];

/// The table, its chains and their rules, in the order `nft list table` gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    pub objects: Vec<NfListObject<'static>>,
}

impl Ruleset {
    /// Our table, as a command names it.
    pub fn table() -> Table<'static> {
        Table { family: FAMILY, name: Cow::Borrowed(TABLE), handle: None }
    }

    /// One transaction that replaces our table whole: add it (so the delete cannot fail when it
    /// is absent), delete it, then create it with everything in it. nft applies a file as one
    /// transaction, so a failure leaves the old table as it was and a restart never duplicates.
    pub fn replace_batch(&self) -> Nftables<'static> {
        let mut objects = Ruleset::remove_commands();
        objects.extend(self.objects.iter().cloned().map(|o| NfObject::CmdObject(NfCmd::Add(o))));
        Nftables { objects: objects.into() }
    }

    /// One transaction that removes our table if it is there.
    pub fn remove_batch() -> Nftables<'static> {
        Nftables { objects: Ruleset::remove_commands().into() }
    }

    fn remove_commands() -> Vec<NfObject<'static>> {
        let table = || NfListObject::Table(Ruleset::table());
        vec![NfObject::CmdObject(NfCmd::Add(table())), NfObject::CmdObject(NfCmd::Delete(table()))]
    }

    /// The rules, in order.
    pub fn rules(&self) -> impl Iterator<Item = &Rule<'static>> {
        self.objects.iter().filter_map(|o| match o {
            NfListObject::Rule(rule) => Some(rule),
            _ => None,
        })
    }
}

/// The ruleset for `plan`.
pub fn build(plan: &Plan) -> Ruleset {
    let mut objects = vec![NfListObject::Table(Ruleset::table())];
    for (name, kind, hook, prio, policy) in CHAINS {
        objects.push(NfListObject::Chain(Chain {
            family: FAMILY,
            table: Cow::Borrowed(TABLE),
            name: Cow::Borrowed(name),
            _type: Some(kind),
            hook: Some(hook),
            prio: Some(prio),
            policy: Some(policy),
            ..Chain::default()
        }));
    }
    let chains: [(&str, Vec<Vec<Stmt>>); 4] = [
        ("input", input(plan)),
        ("forward", forward(plan)),
        ("prerouting", prerouting(plan)),
        ("postrouting", postrouting(plan)),
    ];
    for (chain, rules) in chains {
        objects.extend(rules.into_iter().map(|expr| {
            NfListObject::Rule(Rule {
                family: FAMILY,
                table: Cow::Borrowed(TABLE),
                chain: Cow::Borrowed(chain),
                expr: expr.into(),
                ..Rule::default()
            })
        }));
    }
    Ruleset { objects }
}

fn input(plan: &Plan) -> Vec<Vec<Stmt>> {
    let mut rules = vec![
        vec![expr::iifname("lo"), expr::accept()],
        vec![expr::ct_state(&["established", "related"]), expr::accept()],
        vec![expr::ct_state(&["invalid"]), expr::drop()],
        // Ping and path MTU (errors of our own connections are `related` already); ICMPv6 also
        // carries neighbour discovery, without which IPv6 on the link breaks.
        vec![expr::l4proto("icmp"), expr::accept()],
        vec![expr::l4proto("ipv6-icmp"), expr::accept()],
    ];
    for (interface, ports) in [(&plan.lan_interface, &plan.lan_ports), (&plan.wan_interface, &plan.wan_ports)]
    {
        for protocol in [Protocol::Udp, Protocol::Tcp] {
            let ports = ports.of(protocol);
            if !ports.is_empty() {
                rules.push(vec![
                    expr::iifname(interface),
                    expr::port(protocol, "dport", ports),
                    expr::accept(),
                ]);
            }
        }
    }
    if plan.wan_dhcp_client {
        // A DHCP server answers to the broadcast address or an address we do not have yet:
        // conntrack cannot tie that to our request, so the answers are let in by port.
        rules.push(vec![
            expr::iifname(&plan.wan_interface),
            expr::port(Protocol::Udp, "sport", &[DHCP_SERVER_PORT].into()),
            expr::port(Protocol::Udp, "dport", &[DHCP_CLIENT_PORT].into()),
            expr::accept(),
        ]);
    }
    rules
}

fn forward(plan: &Plan) -> Vec<Vec<Stmt>> {
    let mut rules = vec![
        vec![expr::ct_state(&["established", "related"]), expr::accept()],
        vec![expr::ct_state(&["invalid"]), expr::drop()],
        // Only the LAN subnet goes out: what else came in on the LAN is spoofed, and would leave
        // un-masqueraded.
        vec![
            expr::iifname(&plan.lan_interface),
            expr::oifname(&plan.wan_interface),
            expr::ip_saddr_in(plan.lan.trunc()),
            expr::accept(),
        ],
    ];
    if !plan.forwards.is_empty() {
        // New connections to the LAN are those our prerouting DNATed: the forwards (from the WAN,
        // and hairpinned from the LAN).
        rules.push(vec![expr::oifname(&plan.lan_interface), expr::ct_status_dnat(), expr::accept()]);
    }
    rules
}

fn prerouting(plan: &Plan) -> Vec<Vec<Stmt>> {
    let mut rules = Vec::new();
    for f in &plan.forwards {
        let port = || expr::port(f.protocol, "dport", &[f.port].into());
        // To the appliance itself, whichever address it has: this works before the WAN address is
        // known, and never diverts traffic routed through the appliance to other hosts.
        rules.push(vec![
            expr::iifname(&plan.wan_interface),
            expr::to_local_address(),
            port(),
            expr::dnat(f.to),
        ]);
        if let Some(wan) = plan.wan_address {
            rules.push(vec![
                expr::iifname(&plan.lan_interface),
                expr::ip_daddr(wan),
                port(),
                expr::dnat(f.to),
            ]);
        }
    }
    rules
}

fn postrouting(plan: &Plan) -> Vec<Vec<Stmt>> {
    let lan = plan.lan.trunc();
    let mut rules =
        vec![vec![expr::oifname(&plan.wan_interface), expr::ip_saddr_in(lan), expr::masquerade()]];
    if !plan.forwards.is_empty() && plan.wan_address.is_some() {
        // Hairpin: a LAN client reached a LAN host through the WAN address. Without this the
        // host would answer the client directly, from an address the client did not talk to.
        rules.push(vec![
            expr::oifname(&plan.lan_interface),
            expr::ip_saddr_in(lan),
            expr::ct_status_dnat(),
            expr::masquerade(),
        ]);
    }
    rules
}
