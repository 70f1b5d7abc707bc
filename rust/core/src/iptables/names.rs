//! The name tables iptables consults: services, protocols, ICMP types, address types, log
//! levels, conntrack states, TCP flags, and the host/network names `iptables -L` prints.
//!
//! iptables reads `/etc/services`, `/etc/protocols`, `/etc/hosts` and `/etc/networks`; kubenat
//! embeds Debian's defaults so that results do not depend on the machine.

use std::net::IpAddr;

use super::ast::{AddrTypes, CtStates, RejectWith};
use super::netdb_data::{PROTOCOLS, SERVICES};

/// Port of a service name for a protocol (`getservbyname(name, proto)`); `proto` `None` takes any.
pub(crate) fn service_port(name: &str, proto: Option<&str>) -> Option<u16> {
    SERVICES.iter().find(|(n, _, p)| *n == name && proto.map_or(true, |want| want == *p)).map(|(_, port, _)| *port)
}

/// Canonical service name of a port (`getservbyport(port, proto)`).
pub(crate) fn service_name(port: u16, proto: &str) -> Option<&'static str> {
    SERVICES.iter().find(|(_, p, pr)| *p == port && *pr == proto).map(|(n, _, _)| *n)
}

/// iptables' own protocol names, consulted before `/etc/protocols` (`xtables_chain_protos`).
const CHAIN_PROTOS: &[(&str, u8)] = &[
    ("tcp", 6),
    ("sctp", 132),
    ("udp", 17),
    ("udplite", 136),
    ("icmp", 1),
    ("ipv6-icmp", 58),
    ("icmpv6", 58),
    ("esp", 50),
    ("ah", 51),
    ("mh", 135),
    ("all", 0),
];

/// Protocol number of a `-p` argument: a number, one of iptables' names, or an `/etc/protocols` name.
pub(crate) fn protocol_number(text: &str) -> Option<u8> {
    if let Ok(n) = text.parse::<u8>() {
        return Some(n);
    }
    // Compared as `to_ascii_lowercase(text) == name` would, without allocating: a name with an
    // upper-case letter can only equal the text exactly.
    let lower_eq = |name: &str| !name.bytes().any(|b| b.is_ascii_uppercase()) && name.eq_ignore_ascii_case(text);
    CHAIN_PROTOS
        .iter()
        .find(|(n, _)| lower_eq(n))
        .or_else(|| PROTOCOLS.iter().find(|(n, _)| *n == text || lower_eq(n)))
        .map(|(_, num)| *num)
}

/// The name iptables-save and `iptables -L` print for a protocol number (`proto_to_name`).
pub(crate) fn protocol_name(number: u8) -> Option<&'static str> {
    CHAIN_PROTOS
        .iter()
        .find(|(_, n)| *n == number)
        .or_else(|| if number == 0 { None } else { PROTOCOLS.iter().find(|(_, n)| *n == number) })
        .map(|(name, _)| *name)
}

/// The services-database protocol name used to resolve ports of a rule's protocol.
pub(crate) fn port_proto_name(number: u8) -> Option<&'static str> {
    match number {
        6 => Some("tcp"),
        17 => Some("udp"),
        132 => Some("sctp"),
        136 => Some("udplite"),
        33 => Some("dccp"),
        _ => None,
    }
}

/// `(name, type, code_min, code_max)` of ICMP (`libxt_icmp`), aliases included.
pub(crate) const ICMP_TYPES: &[(&str, u8, u8, u8)] = &[
    ("any", 0xFF, 0, 0xFF),
    ("echo-reply", 0, 0, 0xFF),
    ("pong", 0, 0, 0xFF),
    ("destination-unreachable", 3, 0, 0xFF),
    ("network-unreachable", 3, 0, 0),
    ("host-unreachable", 3, 1, 1),
    ("protocol-unreachable", 3, 2, 2),
    ("port-unreachable", 3, 3, 3),
    ("fragmentation-needed", 3, 4, 4),
    ("source-route-failed", 3, 5, 5),
    ("network-unknown", 3, 6, 6),
    ("host-unknown", 3, 7, 7),
    ("network-prohibited", 3, 9, 9),
    ("host-prohibited", 3, 10, 10),
    ("TOS-network-unreachable", 3, 11, 11),
    ("TOS-host-unreachable", 3, 12, 12),
    ("communication-prohibited", 3, 13, 13),
    ("host-precedence-violation", 3, 14, 14),
    ("precedence-cutoff", 3, 15, 15),
    ("source-quench", 4, 0, 0xFF),
    ("redirect", 5, 0, 0xFF),
    ("network-redirect", 5, 0, 0),
    ("host-redirect", 5, 1, 1),
    ("TOS-network-redirect", 5, 2, 2),
    ("TOS-host-redirect", 5, 3, 3),
    ("echo-request", 8, 0, 0xFF),
    ("ping", 8, 0, 0xFF),
    ("router-advertisement", 9, 0, 0xFF),
    ("router-solicitation", 10, 0, 0xFF),
    ("time-exceeded", 11, 0, 0xFF),
    ("ttl-exceeded", 11, 0, 0xFF),
    ("ttl-zero-during-transit", 11, 0, 0),
    ("ttl-zero-during-reassembly", 11, 1, 1),
    ("parameter-problem", 12, 0, 0xFF),
    ("ip-header-bad", 12, 0, 0),
    ("required-option-missing", 12, 1, 1),
    ("timestamp-request", 13, 0, 0xFF),
    ("timestamp-reply", 14, 0, 0xFF),
    ("address-mask-request", 17, 0, 0xFF),
    ("address-mask-reply", 18, 0, 0xFF),
];

/// `(name, type, code_min, code_max)` of ICMPv6 (`libip6t_icmp6`), aliases included.
pub(crate) const ICMP6_TYPES: &[(&str, u8, u8, u8)] = &[
    ("destination-unreachable", 1, 0, 0xFF),
    ("no-route", 1, 0, 0),
    ("communication-prohibited", 1, 1, 1),
    ("beyond-scope", 1, 2, 2),
    ("address-unreachable", 1, 3, 3),
    ("port-unreachable", 1, 4, 4),
    ("failed-policy", 1, 5, 5),
    ("reject-route", 1, 6, 6),
    ("packet-too-big", 2, 0, 0xFF),
    ("time-exceeded", 3, 0, 0xFF),
    ("ttl-exceeded", 3, 0, 0xFF),
    ("ttl-zero-during-transit", 3, 0, 0),
    ("ttl-zero-during-reassembly", 3, 1, 1),
    ("parameter-problem", 4, 0, 0xFF),
    ("bad-header", 4, 0, 0),
    ("unknown-header-type", 4, 1, 1),
    ("unknown-option", 4, 2, 2),
    ("echo-request", 128, 0, 0xFF),
    ("ping", 128, 0, 0xFF),
    ("echo-reply", 129, 0, 0xFF),
    ("pong", 129, 0, 0xFF),
    ("router-solicitation", 133, 0, 0xFF),
    ("router-advertisement", 134, 0, 0xFF),
    ("neighbour-solicitation", 135, 0, 0xFF),
    ("neighbor-solicitation", 135, 0, 0xFF),
    ("neighbour-advertisement", 136, 0, 0xFF),
    ("neighbor-advertisement", 136, 0, 0xFF),
    ("redirect", 137, 0, 0xFF),
];

/// Address type names in bit order (`libxt_addrtype`).
pub(crate) const ADDR_TYPES: &[(&str, u16)] = &[
    ("UNSPEC", AddrTypes::UNSPEC),
    ("UNICAST", AddrTypes::UNICAST),
    ("LOCAL", AddrTypes::LOCAL),
    ("BROADCAST", AddrTypes::BROADCAST),
    ("ANYCAST", AddrTypes::ANYCAST),
    ("MULTICAST", AddrTypes::MULTICAST),
    ("BLACKHOLE", AddrTypes::BLACKHOLE),
    ("UNREACHABLE", AddrTypes::UNREACHABLE),
    ("PROHIBIT", AddrTypes::PROHIBIT),
    ("THROW", AddrTypes::THROW),
    ("NAT", AddrTypes::NAT),
    ("XRESOLVE", AddrTypes::XRESOLVE),
];

/// Conntrack state names in the order iptables prints them.
pub(crate) const CT_STATES: &[(&str, u8)] = &[
    ("INVALID", CtStates::INVALID),
    ("NEW", CtStates::NEW),
    ("RELATED", CtStates::RELATED),
    ("ESTABLISHED", CtStates::ESTABLISHED),
    ("UNTRACKED", CtStates::UNTRACKED),
    ("SNAT", CtStates::SNAT),
    ("DNAT", CtStates::DNAT),
];

/// `--ctstatus` names in print order.
pub(crate) const CT_STATUS: &[(&str, u8)] = &[("EXPECTED", 1), ("SEEN_REPLY", 2), ("ASSURED", 4), ("CONFIRMED", 8)];

/// TCP flag names (`libxt_tcp`), the composite names last.
pub(crate) const TCP_FLAGS: &[(&str, u8)] = &[
    ("FIN", 0x01),
    ("SYN", 0x02),
    ("RST", 0x04),
    ("PSH", 0x08),
    ("ACK", 0x10),
    ("URG", 0x20),
    ("ALL", 0x3F),
    ("NONE", 0),
];

/// Log levels as `iptables -L` names them, by level.
pub(crate) const LOG_LEVEL_NAMES: [&str; 8] = ["emerg", "alert", "crit", "err", "warn", "notice", "info", "debug"];

/// `--log-level` words iptables accepts (syslog names), with their level.
pub(crate) const LOG_LEVEL_WORDS: &[(&str, u8)] = &[
    ("emerg", 0),
    ("panic", 0),
    ("alert", 1),
    ("crit", 2),
    ("err", 3),
    ("error", 3),
    ("warn", 4),
    ("warning", 4),
    ("notice", 5),
    ("info", 6),
    ("debug", 7),
];

/// `--log-*` flag options with their bit (`XT_LOG_*`), in save order.
pub(crate) const LOG_FLAGS: &[(&str, u8)] = &[
    ("--log-tcp-sequence", 0x01),
    ("--log-tcp-options", 0x02),
    ("--log-ip-options", 0x04),
    ("--log-uid", 0x08),
    ("--log-macdecode", 0x20),
];

/// `--reject-with` spellings, canonical name first for each value.
pub(crate) const REJECT_V4: &[(&str, RejectWith)] = &[
    ("icmp-net-unreachable", RejectWith::IcmpNetUnreachable),
    ("net-unreach", RejectWith::IcmpNetUnreachable),
    ("icmp-host-unreachable", RejectWith::IcmpHostUnreachable),
    ("host-unreach", RejectWith::IcmpHostUnreachable),
    ("icmp-proto-unreachable", RejectWith::IcmpProtoUnreachable),
    ("proto-unreach", RejectWith::IcmpProtoUnreachable),
    ("icmp-port-unreachable", RejectWith::IcmpPortUnreachable),
    ("port-unreach", RejectWith::IcmpPortUnreachable),
    ("icmp-net-prohibited", RejectWith::IcmpNetProhibited),
    ("net-prohib", RejectWith::IcmpNetProhibited),
    ("icmp-host-prohibited", RejectWith::IcmpHostProhibited),
    ("host-prohib", RejectWith::IcmpHostProhibited),
    ("tcp-reset", RejectWith::TcpReset),
    ("tcp-rst", RejectWith::TcpReset),
    ("icmp-admin-prohibited", RejectWith::IcmpAdminProhibited),
    ("admin-prohib", RejectWith::IcmpAdminProhibited),
];

/// `--reject-with` spellings for ip6tables.
pub(crate) const REJECT_V6: &[(&str, RejectWith)] = &[
    ("icmp6-no-route", RejectWith::Icmp6NoRoute),
    ("no-route", RejectWith::Icmp6NoRoute),
    ("icmp6-adm-prohibited", RejectWith::Icmp6AdmProhibited),
    ("adm-prohibited", RejectWith::Icmp6AdmProhibited),
    ("icmp6-addr-unreachable", RejectWith::Icmp6AddrUnreachable),
    ("addr-unreach", RejectWith::Icmp6AddrUnreachable),
    ("icmp6-port-unreachable", RejectWith::Icmp6PortUnreachable),
    ("port-unreach", RejectWith::Icmp6PortUnreachable),
    ("tcp-reset", RejectWith::TcpReset),
];

/// The name iptables-save prints for a reject type.
pub(crate) fn reject_name(with: RejectWith) -> &'static str {
    REJECT_V4.iter().chain(REJECT_V6).find(|(_, w)| *w == with).map_or("icmp-port-unreachable", |(n, _)| *n)
}

/// Host names `iptables -L` prints for addresses (`/etc/hosts` defaults on Debian).
pub(crate) fn host_name(addr: &IpAddr) -> Option<&'static str> {
    match addr.to_string().as_str() {
        "127.0.0.1" => Some("localhost"),
        _ => None,
    }
}

/// Network names `iptables -L` prints for network addresses (`/etc/networks` defaults on Debian).
pub(crate) fn network_name(addr: &IpAddr) -> Option<&'static str> {
    match addr.to_string().as_str() {
        "0.0.0.0" => Some("default"),
        "127.0.0.0" => Some("loopback"),
        "169.254.0.0" => Some("link-local"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_resolve_per_protocol() {
        assert_eq!(service_port("http", Some("tcp")), Some(80));
        assert_eq!(service_port("domain", Some("udp")), Some(53));
        assert_eq!(service_name(80, "tcp"), Some("http"));
        assert_eq!(service_name(8080, "tcp"), Some("http-alt"));
        assert_eq!(service_name(43321, "tcp"), None);
    }

    #[test]
    fn protocols_resolve_like_iptables() {
        assert_eq!(protocol_number("tcp"), Some(6));
        assert_eq!(protocol_number("TCP"), Some(6));
        assert_eq!(protocol_number("gre"), Some(47));
        assert_eq!(protocol_number("all"), Some(0));
        assert_eq!(protocol_number("17"), Some(17));
        assert_eq!(protocol_name(58), Some("ipv6-icmp"));
        assert_eq!(protocol_name(47), Some("gre"));
        assert_eq!(protocol_name(0), Some("all"));
        assert_eq!(protocol_number("bogus"), None);
    }
}
