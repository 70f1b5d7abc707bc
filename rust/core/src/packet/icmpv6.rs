//! ICMPv6 (RFC 4443): the same 8-byte header as ICMPv4 (see [`super::icmp::Packet`]), with a
//! checksum over the IPv6 pseudo-header.

use std::net::Ipv6Addr;

use super::checksum;
use super::icmp::Packet;
use super::proto;

/// ICMPv6 message types kubenat names.
pub mod kind {
    /// Destination unreachable.
    pub const DEST_UNREACHABLE: u8 = 1;
    /// Packet too big.
    pub const PACKET_TOO_BIG: u8 = 2;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 3;
    /// Parameter problem.
    pub const PARAM_PROBLEM: u8 = 4;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 128;
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 129;
    /// Neighbor solicitation.
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    /// Neighbor advertisement.
    pub const NEIGHBOR_ADVERT: u8 = 136;
}

/// Whether an ICMPv6 type is an error that quotes the offending packet (types below 128).
pub fn is_error(t: u8) -> bool {
    t < 128
}

/// Whether an ICMPv6 type carries an identifier (echo request and reply).
pub fn has_ident(t: u8) -> bool {
    matches!(t, kind::ECHO_REQUEST | kind::ECHO_REPLY)
}

/// Pseudo-header sum for an ICMPv6 message of `len` bytes.
pub fn pseudo_header(src: Ipv6Addr, dst: Ipv6Addr, len: usize) -> u32 {
    checksum::pseudo_header_v6(src, dst, proto::ICMPV6, u32::try_from(len).unwrap_or(u32::MAX))
}

/// Recomputes the ICMPv6 checksum of `p` (header and body) between `src` and `dst`.
pub fn fill_checksum<T: AsRef<[u8]> + AsMut<[u8]>>(p: &mut Packet<T>, src: Ipv6Addr, dst: Ipv6Addr) {
    let len = p.payload().len() + super::icmp::HEADER_LEN;
    p.fill_checksum_from(pseudo_header(src, dst, len));
}

/// Whether the ICMPv6 checksum of `p` is valid between `src` and `dst`.
pub fn verify_checksum<T: AsRef<[u8]>>(p: &Packet<T>, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
    let len = p.payload().len() + super::icmp::HEADER_LEN;
    let acc = pseudo_header(src, dst, len);
    let mut whole = checksum::sum(acc, &[p.msg_type(), p.code()]);
    whole = checksum::sum(whole, &p.checksum().to_be_bytes());
    whole = checksum::sum(whole, &p.rest_of_header().to_be_bytes());
    checksum::verify(checksum::sum(whole, p.payload()))
}

#[cfg(test)]
mod tests {
    use super::super::icmp::Repr;
    use super::*;

    #[test]
    fn echo_checksum() {
        let mut buf = [0u8; 12];
        Repr::echo(kind::ECHO_REQUEST, 7, 9).emit(&mut buf);
        buf[8..].copy_from_slice(b"ping");
        let (s, d): (Ipv6Addr, Ipv6Addr) = ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap());
        let mut p = Packet::new_checked_as(&mut buf[..], "icmpv6").unwrap();
        fill_checksum(&mut p, s, d);
        assert!(verify_checksum(&p, s, d));
        assert!(!verify_checksum(&p, d, "fd00::3".parse().unwrap()));
        assert!(is_error(kind::PACKET_TOO_BIG));
        assert!(has_ident(kind::ECHO_REPLY));
        assert!(matches!(
            Packet::new_checked_as(&buf[..1], "icmpv6"),
            Err(crate::Error::Packet { layer: "icmpv6", field: "code", offset: 1, .. })
        ));
    }
}
