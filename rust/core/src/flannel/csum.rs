//! Internet checksum helpers (RFC 1071), used until the shared packet module provides them.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Adds `data` to `acc` as big-endian 16-bit words (odd last byte padded with zero).
pub fn sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
        if acc > 0xffff_0000 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(u16::from_be_bytes([*last, 0]));
    }
    acc
}

/// Folds to 16 bits with end-around carry.
pub fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    #[allow(clippy::cast_possible_truncation)]
    let f = acc as u16;
    f
}

/// The checksum of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(0, data))
}

/// Whether a sum including its checksum field is all ones.
pub fn verify(acc: u32) -> bool {
    fold(acc) == 0xffff
}

/// IPv4 pseudo-header sum.
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u32) -> u32 {
    let acc = sum(sum(0, &src.octets()), &dst.octets());
    acc + u32::from(protocol) + (length >> 16) + (length & 0xffff)
}

/// IPv6 pseudo-header sum.
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, length: u32) -> u32 {
    let acc = sum(sum(0, &src.octets()), &dst.octets());
    acc + u32::from(next_header) + (length >> 16) + (length & 0xffff)
}
