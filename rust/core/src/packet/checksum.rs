//! Internet checksums: the RFC 1071 one's-complement sum, IPv4/IPv6 pseudo-headers, RFC 1624
//! incremental updates, and the CRC32c (Castagnoli) that SCTP uses.
//!
//! Sums are accumulated in a `u32` and folded at the end, so any number of 16-bit words can be
//! added before [`fold`]. A checksum field holds `!fold(sum)`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Adds `data` to `acc` as big-endian 16-bit words (an odd last byte is padded with zero).
///
/// The accumulator is folded as it goes, so it never overflows whatever the data length.
pub fn sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
        // Keep headroom: fold whenever the high half grows, cheaper than u64 and never overflows.
        if acc > 0xffff_0000 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(u16::from_be_bytes([*last, 0]));
    }
    acc
}

/// Folds a 32-bit accumulator into a 16-bit one's-complement sum (end-around carry).
pub fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    // The loop leaves at most 16 bits.
    #[allow(clippy::cast_possible_truncation)]
    let folded = acc as u16;
    folded
}

/// The RFC 1071 checksum of `data`: the complement of its folded sum.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(0, data))
}

/// Whether `data` (checksum field included) sums to all ones, i.e. its checksum is valid.
pub fn verify(acc: u32) -> bool {
    fold(acc) == 0xffff
}

/// Sum of the IPv4 pseudo-header (source, destination, zero, protocol, upper-layer length).
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u32) -> u32 {
    let mut acc = sum(0, &src.octets());
    acc = sum(acc, &dst.octets());
    acc += u32::from(protocol);
    acc + (length >> 16) + (length & 0xffff)
}

/// Sum of the IPv6 pseudo-header (RFC 8200 §8.1: source, destination, length, next header).
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, length: u32) -> u32 {
    let mut acc = sum(0, &src.octets());
    acc = sum(acc, &dst.octets());
    acc += u32::from(next_header);
    acc + (length >> 16) + (length & 0xffff)
}

/// Pseudo-header sum for either family; mixed families yield `None`.
pub fn pseudo_header(src: IpAddr, dst: IpAddr, protocol: u8, length: u32) -> Option<u32> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Some(pseudo_header_v4(s, d, protocol, length)),
        (IpAddr::V6(s), IpAddr::V6(d)) => Some(pseudo_header_v6(s, d, protocol, length)),
        _ => None,
    }
}

/// RFC 1624 eqn. 3: the checksum `hc` after one 16-bit word of the covered data changes from
/// `old` to `new`: `HC' = ~(~HC + ~m + m')`.
///
/// The result equals a full recomputation over the new data, including the choice between the
/// two zeros of one's-complement arithmetic (the sum of non-zero data is never `+0`).
pub fn update_u16(hc: u16, old: u16, new: u16) -> u16 {
    let acc = u32::from(!hc) + u32::from(!old) + u32::from(new);
    !fold(acc)
}

/// [`update_u16`] for a 32-bit word (two 16-bit words) of the covered data.
pub fn update_u32(hc: u16, old: u32, new: u32) -> u16 {
    update_bytes(hc, &old.to_be_bytes(), &new.to_be_bytes())
}

/// [`update_u16`] for an address of either family (4 or 16 bytes), or any equal-length
/// 16-bit-aligned byte strings.
///
/// # Panics
/// Never; a length mismatch is ignored beyond the shorter string (callers pass equal lengths).
pub fn update_bytes(hc: u16, old: &[u8], new: &[u8]) -> u16 {
    let n = old.len().min(new.len());
    let mut acc = u32::from(!hc);
    let mut i = 0;
    while i + 1 < n {
        acc +=
            u32::from(!u16::from_be_bytes([old[i], old[i + 1]])) + u32::from(u16::from_be_bytes([new[i], new[i + 1]]));
        // Two words of at most 0xffff each per step: fold early enough never to overflow.
        if acc > 0xfff0_0000 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        i += 2;
    }
    if i < n {
        acc += u32::from(!u16::from_be_bytes([old[i], 0])) + u32::from(u16::from_be_bytes([new[i], 0]));
    }
    !fold(acc)
}

/// [`update_u16`] for an IP address change; mixed families leave the checksum unchanged.
pub fn update_addr(hc: u16, old: IpAddr, new: IpAddr) -> u16 {
    match (old, new) {
        (IpAddr::V4(o), IpAddr::V4(n)) => update_bytes(hc, &o.octets(), &n.octets()),
        (IpAddr::V6(o), IpAddr::V6(n)) => update_bytes(hc, &o.octets(), &n.octets()),
        _ => hc,
    }
}

/// The CRC32c (Castagnoli, reflected polynomial 0x82F63B78) lookup table, built at compile time.
const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        // i < 256, so the cast is lossless.
        #[allow(clippy::cast_possible_truncation)]
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// CRC32c of `data` (RFC 3309 / RFC 9260 appendix B): initial value all ones, final complement.
///
/// SCTP stores the value in little-endian byte order in its checksum field.
pub fn crc32c(data: &[u8]) -> u32 {
    !crc32c_update(0xFFFF_FFFF, data)
}

/// Continues a CRC32c over `data` from the un-complemented running value `crc`.
pub fn crc32c_update(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc = CRC32C_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 1071 §3 example words.
    static RFC1071: [u8; 8] = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];

    #[test]
    fn rfc1071_example() {
        assert_eq!(fold(sum(0, &RFC1071)), 0xddf2);
        assert_eq!(checksum(&RFC1071), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(fold(sum(0, &[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
    }

    #[test]
    fn crc32c_check_value() {
        // The standard check value of CRC-32C over "123456789".
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn update_bytes_equals_word_by_word_updates() {
        let mut x = 0x1234_5678_9abc_def0u64;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_be_bytes();
            let hc = u16::from_be_bytes([b[0], b[1]]);
            let (old, new) = (&b[2..6], &b[4..8]);
            let mut want = hc;
            for k in (0..4).step_by(2) {
                want = update_u16(
                    want,
                    u16::from_be_bytes([old[k], old[k + 1]]),
                    u16::from_be_bytes([new[k], new[k + 1]]),
                );
            }
            assert_eq!(update_bytes(hc, old, new), want);
        }
    }

    #[test]
    fn incremental_equals_full() {
        let mut data = [0x45u8, 0x00, 0x00, 0x54, 0x12, 0x34, 0x40, 0x00, 0x40, 0x01, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        let c = checksum(&data);
        data[10..12].copy_from_slice(&c.to_be_bytes());
        for new in [0u16, 1, 0xffff, 0x1234, 0x0a00] {
            let mut d = data;
            let old = u16::from_be_bytes([d[12], d[13]]);
            d[12..14].copy_from_slice(&new.to_be_bytes());
            let inc = update_u16(c, old, new);
            d[10..12].copy_from_slice(&[0, 0]);
            assert_eq!(inc, checksum(&d), "word {new:#x}");
        }
        let old: IpAddr = "10.0.0.2".parse().unwrap();
        let new: IpAddr = "192.168.7.9".parse().unwrap();
        let mut d = data;
        d[16..20].copy_from_slice(&[192, 168, 7, 9]);
        d[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(update_addr(c, old, new), checksum(&d));
        assert_eq!(update_u32(c, 0x0a00_0002, 0xc0a8_0709), checksum(&d));
    }
}
