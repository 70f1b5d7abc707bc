//! Packet headers: checked views over bytes (`Packet<T>`) and owned `Repr`s (smoltcp style).
//!
//! Each protocol has its own file with a `Packet<T: AsRef<[u8]>>` view (`new_checked` validates
//! lengths once; no accessor panics afterwards) and an owned `Repr` that parses from and emits
//! into a view. [`IpPacket`] ties them together: it owns the bytes of one IP packet (optionally
//! behind an Ethernet header), knows where each header starts, and answers the questions a
//! netfilter flow key needs (family, addresses, protocol, ports, flags, ICMP type/code).
//! [`Layout`] is the same dissection without owning the bytes (for batch paths), [`nat`]
//! rewrites addresses, ports and the TTL in place with incremental checksum updates (RFC 1624),
//! [`quoted`] reads and rewrites the packet an ICMP error quotes, and [`build`] makes packets
//! from field values.
//!
//! ```
//! use kubenat_core::packet::{build, IpPacket, Link};
//! let bytes = build::tcp("10.0.0.1".parse().unwrap(), "10.96.0.10".parse().unwrap(), 1234, 80)
//!     .flags(build::tcp_flags::SYN)
//!     .to_bytes()
//!     .unwrap();
//! let pkt = IpPacket::parse(bytes, Link::Ip).unwrap();
//! assert_eq!(pkt.dport(), Some(80));
//! assert_eq!(pkt.tcp_flags_full(), Some(build::tcp_flags::SYN));
//! ```
//!
//! Errors are [`crate::Error::Packet`] naming the layer, the field and its absolute byte offset.

pub mod build;
pub mod checksum;
pub mod dissect;
pub mod ethernet;
pub mod icmp;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod layout;
pub mod nat;
pub mod quoted;
pub mod sctp;
pub mod tcp;
pub mod udp;

pub use dissect::{IpPacket, Layout, Link};

use crate::error::Error;

/// A byte range of a header field.
pub type Field = core::ops::Range<usize>;

/// A field starting at `start` and running to the end of the header.
pub type Rest = core::ops::RangeFrom<usize>;

/// IP protocol numbers (the `protocol` / `next header` values kubenat knows by name).
pub mod proto {
    /// IPv6 hop-by-hop options.
    pub const HOPOPTS: u8 = 0;
    /// ICMP for IPv4.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 routing header.
    pub const ROUTING: u8 = 43;
    /// IPv6 fragment header.
    pub const FRAGMENT: u8 = 44;
    /// IPsec authentication header.
    pub const AH: u8 = 51;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// IPv6 "no next header".
    pub const NONE: u8 = 59;
    /// IPv6 destination options.
    pub const DSTOPTS: u8 = 60;
    /// SCTP.
    pub const SCTP: u8 = 132;

    /// The lower-case name iptables uses for a protocol number, if it has one.
    pub fn name(p: u8) -> Option<&'static str> {
        Some(match p {
            ICMP => "icmp",
            TCP => "tcp",
            UDP => "udp",
            ICMPV6 => "ipv6-icmp",
            SCTP => "sctp",
            AH => "ah",
            50 => "esp",
            2 => "igmp",
            4 => "ipip",
            41 => "ipv6",
            47 => "gre",
            136 => "udplite",
            _ => return None,
        })
    }
}

/// Big-endian u16 at `at`. Callers have checked the length.
#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Big-endian u32 at `at`. Callers have checked the length.
#[inline]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Writes a big-endian u16 at `at`.
#[inline]
pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Writes a big-endian u32 at `at`.
#[inline]
pub(crate) fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// The error for a buffer too short for `field` (which needs `need` bytes from `at`).
pub(crate) fn truncated(layer: &'static str, field: &'static str, at: usize, need: usize, have: usize) -> Error {
    Error::packet(layer, field, at, format!("truncated: need {need} bytes, only {have} available"))
}

/// The error for a header cut short: names the first of `fields` (name, range) that does not fit
/// into `have` bytes.
pub(crate) fn cut_short(layer: &'static str, fields: &[(&'static str, Field)], need: usize, have: usize) -> Error {
    let (name, start) = fields.iter().find(|(_, r)| r.end > have).map_or(("header", 0), |(n, r)| (*n, r.start));
    truncated(layer, name, start, need, have)
}

/// Moves the offset of a packet error by `base` (views report offsets relative to themselves;
/// the dissector knows where they start).
pub(crate) fn shift(base: usize) -> impl Fn(Error) -> Error {
    move |e| match e {
        Error::Packet { layer, field, offset, reason } => Error::Packet { layer, field, offset: offset + base, reason },
        other => other,
    }
}
