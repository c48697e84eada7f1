//! The few nftables expressions and statements the ruleset is made of, written in the form
//! `nft -j list` gives them back (a one-port match is a plain number, not a one-element set;
//! flag matches use `in`), so what is read back compares equal to what was built.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4};

use ipnet::Ipv4Net;
use nftables::expr::{
    CT, Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix,
    SetItem,
};
use nftables::stmt::{Match, NAT, NATFamily, Operator, Statement};
use proximity_config::Protocol;

pub(crate) type Stmt = Statement<'static>;
type Expr = Expression<'static>;

fn text(s: impl Into<String>) -> Expr {
    Expression::String(Cow::Owned(s.into()))
}

fn meta(key: MetaKey) -> Expr {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn payload(protocol: &'static str, field: &'static str) -> Expr {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(PayloadField {
        protocol: protocol.into(),
        field: field.into(),
    })))
}

fn ct(key: &'static str) -> Expr {
    Expression::Named(NamedExpression::CT(CT { key: key.into(), family: None, dir: None }))
}

fn matches(left: Expr, op: Operator, right: Expr) -> Stmt {
    Statement::Match(Match { left, right, op })
}

pub(crate) fn iifname(name: &str) -> Stmt {
    matches(meta(MetaKey::Iifname), Operator::EQ, text(name))
}

pub(crate) fn oifname(name: &str) -> Stmt {
    matches(meta(MetaKey::Oifname), Operator::EQ, text(name))
}

/// `meta l4proto NAME` (`icmp`, `ipv6-icmp`).
pub(crate) fn l4proto(name: &'static str) -> Stmt {
    matches(meta(MetaKey::L4proto), Operator::EQ, text(name))
}

/// `ct state a,b`: any of the states.
pub(crate) fn ct_state(states: &[&'static str]) -> Stmt {
    let right = match states {
        [one] => text(*one),
        many => Expression::List(many.iter().map(|s| text(*s)).collect()),
    };
    matches(ct("state"), Operator::IN, right)
}

/// `ct status dnat`: the connection was destination-NATed (one of our forwards).
pub(crate) fn ct_status_dnat() -> Stmt {
    matches(ct("status"), Operator::IN, text("dnat"))
}

/// `fib daddr type local`: addressed to one of the appliance's own addresses, whichever.
pub(crate) fn to_local_address() -> Stmt {
    let fib = Fib { result: FibResult::Type, flags: [FibFlag::Daddr].into_iter().collect() };
    matches(Expression::Named(NamedExpression::Fib(fib)), Operator::EQ, text("local"))
}

pub(crate) fn ip_saddr_in(net: Ipv4Net) -> Stmt {
    let prefix = Prefix { addr: Box::new(text(net.network().to_string())), len: net.prefix_len().into() };
    matches(payload("ip", "saddr"), Operator::EQ, Expression::Named(NamedExpression::Prefix(prefix)))
}

pub(crate) fn ip_daddr(ip: Ipv4Addr) -> Stmt {
    matches(payload("ip", "daddr"), Operator::EQ, text(ip.to_string()))
}

/// `tcp dport 80` or `tcp dport { 53, 80 }` (also `sport`); `ports` must not be empty.
pub(crate) fn port(protocol: Protocol, field: &'static str, ports: &BTreeSet<u16>) -> Stmt {
    let number = |p: &u16| Expression::Number(u32::from(*p));
    let right = match ports.len() {
        1 => ports.iter().map(number).next().unwrap_or(Expression::Number(0)),
        _ => Expression::Named(NamedExpression::Set(
            ports.iter().map(|p| SetItem::Element(number(p))).collect(),
        )),
    };
    let protocol = match protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    };
    matches(payload(protocol, field), Operator::EQ, right)
}

pub(crate) fn accept() -> Stmt {
    Statement::Accept(None)
}

pub(crate) fn drop() -> Stmt {
    Statement::Drop(None)
}

/// `dnat ip to ADDR:PORT` (an inet table names the family).
pub(crate) fn dnat(to: SocketAddrV4) -> Stmt {
    Statement::DNAT(Some(NAT {
        addr: Some(text(to.ip().to_string())),
        family: Some(NATFamily::IP),
        port: Some(Expression::Number(u32::from(to.port()))),
        flags: None,
    }))
}

pub(crate) fn masquerade() -> Stmt {
    Statement::Masquerade(None)
}
