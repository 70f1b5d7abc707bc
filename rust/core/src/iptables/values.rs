//! Parsing of option values as iptables reads them: numbers in C's base-0 notation, marks,
//! ports and port ranges (with service names), addresses with prefix or dotted netmask.

use std::net::IpAddr;

use super::ast::PortRange;
use super::names;
use crate::net::{Cidr, Family};

/// A number as `strtoul(s, NULL, 0)` reads it: `0x` hex, leading-`0` octal, else decimal.
pub(crate) fn parse_u32(text: &str) -> Result<u32, String> {
    let bad = || format!("{text:?} is not a number");
    let value = if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).map_err(|_| bad())?
    } else if text.len() > 1 && text.starts_with('0') {
        u64::from_str_radix(&text[1..], 8).map_err(|_| bad())?
    } else {
        text.parse::<u64>().map_err(|_| bad())?
    };
    u32::try_from(value).map_err(|_| format!("{text:?} is out of range (0-4294967295)"))
}

/// A bounded unsigned number in base-0 notation.
pub(crate) fn parse_bounded(text: &str, max: u32) -> Result<u32, String> {
    let v = parse_u32(text)?;
    if v > max {
        return Err(format!("{text:?} is out of range (0-{max})"));
    }
    Ok(v)
}

/// `value[/mask]`; the mask defaults to all ones.
pub(crate) fn parse_mark(text: &str) -> Result<(u32, u32), String> {
    match text.split_once('/') {
        Some((v, m)) => Ok((parse_u32(v)?, parse_u32(m)?)),
        None => Ok((parse_u32(text)?, u32::MAX)),
    }
}

/// One port: a number or a service name of `proto` (any protocol when `None`).
pub(crate) fn parse_port(text: &str, proto: Option<&str>) -> Result<u16, String> {
    if let Ok(n) = text.parse::<u32>() {
        return u16::try_from(n).map_err(|_| format!("invalid port/service {text:?} specified"));
    }
    names::service_port(text, proto).ok_or_else(|| format!("invalid port/service {text:?} specified"))
}

/// `first[:last]`, `first:` (to 65535) or `:last` (from 0); `sep` is `:` for matches.
pub(crate) fn parse_port_range(text: &str, proto: Option<&str>, sep: char) -> Result<PortRange, String> {
    let range = match text.split_once(sep) {
        None => PortRange::single(parse_port(text, proto)?),
        Some((a, b)) => {
            let first = if a.is_empty() { 0 } else { parse_port(a, proto)? };
            let last = if b.is_empty() { u16::MAX } else { parse_port(b, proto)? };
            PortRange { first, last }
        }
    };
    if range.first > range.last {
        return Err("invalid portrange (min > max)".into());
    }
    Ok(range)
}

/// An address of the ruleset's family.
pub(crate) fn parse_addr(text: &str, family: Family) -> Result<IpAddr, String> {
    let addr: IpAddr = text.parse().map_err(|_| format!("host/network {text:?} not found"))?;
    if Family::of(&addr) != family {
        return Err(format!("{text:?} is not an {} address", family_name(family)));
    }
    Ok(addr)
}

/// `addr[/prefix|/netmask]`; host bits are cleared as iptables does.
pub(crate) fn parse_cidr(text: &str, family: Family) -> Result<Cidr, String> {
    if text.contains(',') {
        return Err(format!("{text:?}: address lists expand to several rules, which is not supported"));
    }
    let (addr_text, mask_text) = match text.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (text, None),
    };
    let addr = parse_addr(addr_text, family)?;
    let prefix = match mask_text {
        None => family.bits(),
        Some(m) => match m.parse::<u8>() {
            Ok(p) if p <= family.bits() => p,
            Ok(_) => return Err(format!("invalid mask {m:?} specified")),
            Err(_) => netmask_prefix(m, family)?,
        },
    };
    Cidr::new(addr, prefix).map_err(|e| e.to_string())
}

/// Prefix length of a dotted (or v6) netmask; non-contiguous masks are refused.
fn netmask_prefix(mask: &str, family: Family) -> Result<u8, String> {
    let m = parse_addr(mask, family).map_err(|_| format!("invalid mask {mask:?} specified"))?;
    let bits: u128 = match m {
        IpAddr::V4(a) => u128::from(u32::from(a)) << 96,
        IpAddr::V6(a) => u128::from(a),
    };
    let ones = bits.leading_ones();
    if bits.checked_shl(ones).unwrap_or(0) != 0 {
        return Err(format!("non-contiguous mask {mask:?} is not supported"));
    }
    u8::try_from(ones).map_err(|_| format!("invalid mask {mask:?} specified"))
}

/// The first `max` bytes of `text` (at a character boundary), as the kernel keeps fixed-size
/// strings: a comment keeps 255 bytes, a LOG prefix 29.
pub(crate) fn truncate_bytes(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `IPv4` / `IPv6`.
pub(crate) fn family_name(family: Family) -> &'static str {
    match family {
        Family::V4 => "IPv4",
        Family::V6 => "IPv6",
    }
}

/// An interface name (`eth0`, `veth+`), at most 15 characters.
pub(crate) fn parse_iface(text: &str) -> Result<super::ast::IfacePattern, String> {
    if text.len() > 15 {
        return Err(format!("interface name {text:?} must be shorter than IFNAMSIZ (15)"));
    }
    match text.strip_suffix('+') {
        Some(prefix) => Ok(super::ast::IfacePattern { name: prefix.to_string(), wildcard: true }),
        None => Ok(super::ast::IfacePattern { name: text.to_string(), wildcard: false }),
    }
}

/// The statistic module's 31-bit fraction of a probability, as `libxt_statistic` computes it
/// (`lround(0x80000000 * p)`, with `p` read by `strtod`).
pub(crate) fn parse_probability(text: &str) -> Result<u32, String> {
    let p: f64 = text.trim().parse().map_err(|_| format!("bad value for option \"--probability\": {text:?}"))?;
    if !(0.0..=1.0).contains(&p) {
        return Err(format!("bad value for option \"--probability\", or out of range (0-1): {text:?}"));
    }
    // Multiplying by a power of two is exact; round() is C's lround (half away from zero).
    let scaled = (p * 2_147_483_648.0).round();
    // In [0, 2^31] after the range check, so the conversion is exact.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(scaled as u32)
}

/// The probability as iptables-save prints it: `printf("%.11f", fraction / 2^31)`, exactly
/// (round half to even on the exact binary value, as glibc does).
pub(crate) fn format_probability(fraction: u32) -> String {
    const SCALE: u128 = 100_000_000_000; // 10^11
    let numerator = u128::from(fraction) * SCALE;
    let denominator: u128 = 1 << 31;
    let mut q = numerator / denominator;
    let r = numerator % denominator;
    if r * 2 > denominator || (r * 2 == denominator && q % 2 == 1) {
        q += 1;
    }
    format!("{}.{:011}", q / SCALE, q % SCALE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_follow_strtoul_base_zero() {
        assert_eq!(parse_u32("0x4000"), Ok(0x4000));
        assert_eq!(parse_u32("010"), Ok(8));
        assert_eq!(parse_u32("16384"), Ok(16384));
        assert_eq!(parse_u32("0"), Ok(0));
        assert!(parse_u32("0x1ffffffff").is_err());
        assert!(parse_u32("x").is_err());
    }

    #[test]
    fn marks_default_to_full_mask() {
        assert_eq!(parse_mark("0x4000/0x4000"), Ok((0x4000, 0x4000)));
        assert_eq!(parse_mark("5"), Ok((5, u32::MAX)));
    }

    #[test]
    fn ports_and_ranges() {
        assert_eq!(parse_port_range("http", Some("tcp"), ':'), Ok(PortRange::single(80)));
        assert_eq!(parse_port_range("1000:", Some("tcp"), ':'), Ok(PortRange { first: 1000, last: 65535 }));
        assert_eq!(parse_port_range(":10", Some("tcp"), ':'), Ok(PortRange { first: 0, last: 10 }));
        assert!(parse_port_range("5:3", Some("tcp"), ':').is_err());
        assert!(parse_port_range("70000", Some("tcp"), ':').is_err());
        assert!(parse_port_range("nosuch", Some("tcp"), ':').is_err());
    }

    #[test]
    fn cidrs_and_netmasks() {
        assert_eq!(parse_cidr("1.2.3.4", Family::V4).unwrap().to_string(), "1.2.3.4/32");
        assert_eq!(parse_cidr("10.1.2.3/255.0.0.0", Family::V4).unwrap().to_string(), "10.0.0.0/8");
        assert!(parse_cidr("1.2.3.4/255.0.255.0", Family::V4).is_err());
        assert!(parse_cidr("1.2.3.4/33", Family::V4).is_err());
        assert!(parse_cidr("fd00::1", Family::V4).is_err());
        assert!(parse_cidr("example.com", Family::V4).is_err());
        assert_eq!(parse_cidr("fd00::1/64", Family::V6).unwrap().to_string(), "fd00::/64");
    }

    #[test]
    fn probabilities_are_quantised_like_the_kernel() {
        assert_eq!(format_probability(parse_probability("0.3333333333").unwrap()), "0.33333333349");
        assert_eq!(format_probability(parse_probability("0.5000000000").unwrap()), "0.50000000000");
        assert_eq!(format_probability(parse_probability("0.25").unwrap()), "0.25000000000");
        assert_eq!(format_probability(parse_probability("1").unwrap()), "1.00000000000");
        assert_eq!(format_probability(parse_probability("0.000244140625").unwrap()), "0.00024414062");
        assert_eq!(parse_probability("0.50000000000"), parse_probability("0.5000000000"));
        assert!(parse_probability("1.5").is_err());
        assert!(parse_probability("-0.1").is_err());
    }
}
