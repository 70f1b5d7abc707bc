//! flannel's UDP backend: the C proxy between the `flannel0` TUN device and a UDP socket.
//!
//! The datagram payload is the bare inner IPv4 packet (no header of flannel's own); the socket
//! is bound to `<public IP>:8285`, so source and destination ports are both the configured port.
//! The proxy decrements the TTL in both directions with its own little-endian checksum patch,
//! silently drops packets whose TTL reaches zero, and answers packets for a destination outside
//! every lease with an ICMP net-unreachable written back into the TUN ([`net_unreachable`]).

use std::net::{IpAddr, Ipv4Addr};

use super::outer::{self, OuterSpec};
use super::subnet::{Lease, Mac};
use super::{Link, Local};
use crate::error::{Error, Result};
use crate::packet::checksum as csum;

/// flannel's default UDP port (`defaultPort` in `udp_amd64.go`).
pub const DEFAULT_PORT: u16 = 8285;
/// Bytes the UDP backend adds: outer IPv4 20 + UDP 8.
pub const OVERHEAD: usize = 28;

/// How the UDP backend is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The UDP port, both ends (`Backend.Port`, default 8285).
    pub port: u16,
    /// MTU of `flannel0` (link MTU − 28); also the proxy's buffer size.
    pub tun_mtu: usize,
    /// Address of `flannel0`: the local lease's subnet address (e.g. `10.244.1.0`), the source of
    /// the proxy's ICMP errors.
    pub tun_addr: Ipv4Addr,
    /// Outer TTL (`ip_default_ttl`, 64).
    pub ttl: u8,
    /// Whether the proxies decrement the TTL (flannel always does; off only to compare payloads).
    pub decrement_ttl: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config { port: DEFAULT_PORT, tun_mtu: 1472, tun_addr: Ipv4Addr::UNSPECIFIED, ttl: 64, decrement_ttl: true }
    }
}

/// `decrement_ttl()` of the proxy, byte for byte: the TTL byte wraps (a TTL of 0 becomes 255 and
/// is forwarded), and the checksum is patched by adding 1 to the checksum field *read as a
/// little-endian u16* (the `htons(0x100)` of an amd64 build), with the proxy's special case near
/// overflow. Returns false when the new TTL is 0 (the proxy drops the packet).
pub fn decrement_ttl(ip: &mut [u8]) -> bool {
    ip[8] = ip[8].wrapping_sub(1);
    if ip[8] == 0 {
        return false;
    }
    let check = u16::from_le_bytes([ip[10], ip[11]]);
    // htons(0xFFFF - 0x100) is 0xFFFE on little-endian; htons(0x100) + 1 is 2.
    let patched = if check >= 0xfffe { check.wrapping_add(2) } else { check + 1 };
    ip[10..12].copy_from_slice(&patched.to_le_bytes());
    true
}

/// The ICMP destination-unreachable / net-unreachable packet the proxy writes back into the TUN
/// for an `offender` whose destination is outside every lease (`send_net_unreachable`), or
/// `None` when the proxy sends nothing: the offender is ICMP, a non-first fragment, or its
/// header length is ≥ 60 (the proxy's off-by-one refuses the legal maximum too).
///
/// The packet: IPv4 header (TOS 0, ID 0, no flags, TTL 8, protocol 1, from `tun_addr` to the
/// offender's source), ICMP type 3 code 0 with a zero unused field, then the offender's header
/// and its first 8 payload bytes. When the offender is shorter than that, the proxy copies
/// stale bytes of its buffer; kubenat uses zeros there.
pub fn net_unreachable(offender: &[u8], tun_addr: Ipv4Addr) -> Option<Vec<u8>> {
    if offender.len() < 20 {
        return None;
    }
    let off_len = usize::from(offender[0] & 0x0f) * 4;
    if off_len >= 60 || offender[9] == 1 || u16::from_be_bytes([offender[6], offender[7]]) & 0x1fff != 0 {
        return None;
    }
    let quoted = off_len + 8;
    let total = 20 + 8 + quoted;
    let mut pkt = vec![0u8; total];
    pkt[0] = 0x45;
    // total <= 20 + 8 + 56 + 8.
    #[allow(clippy::cast_possible_truncation)]
    pkt[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    pkt[8] = 8;
    pkt[9] = 1;
    pkt[12..16].copy_from_slice(&tun_addr.octets());
    pkt[16..20].copy_from_slice(&offender[12..16]);
    let c = csum::checksum(&pkt[..20]);
    pkt[10..12].copy_from_slice(&c.to_be_bytes());
    pkt[20] = 3;
    pkt[21] = 0;
    let n = quoted.min(offender.len());
    pkt[28..28 + n].copy_from_slice(&offender[..n]);
    // The proxy sums 32-bit words: (8 + quoted) / 4 of them, which is all of it (quoted % 4 == 0).
    let c = csum::checksum(&pkt[20..20 + (8 + quoted) / 4 * 4]);
    pkt[22..24].copy_from_slice(&c.to_be_bytes());
    Some(pkt)
}

/// Appends the datagram flannel sends for `inner_ip` towards `lease` (`tun_to_udp`).
///
/// The route lookup comes first (a miss is `net_unreachable`, even with TTL 1), then the TTL
/// decrement (zero drops as `ttl_expired`).
///
/// # Errors
/// [`Error::Decap`] kinds `truncated` (< 20 bytes, the proxy's minimum), `not_ipv4`, `oversize`
/// (longer than `flannel0`'s MTU: the kernel fragments or refuses it before the proxy sees it),
/// `ttl_expired`; [`Error::Invalid`] when an address or MAC is missing.
pub fn encap_into(
    cfg: &Config,
    local: &Local,
    lease: &Lease,
    underlay: Option<(Mac, Mac)>,
    inner_ip: &[u8],
    ip_id: u16,
    out: &mut Vec<u8>,
) -> Result<()> {
    let IpAddr::V4(dst) = lease.public_ip else {
        return Err(Error::invalid(format!("lease {}", lease.subnet), "the UDP backend is IPv4 only"));
    };
    let src = local.ipv4.ok_or_else(|| Error::invalid("public_ip", "the UDP backend needs the local IPv4 address"))?;
    let mut inner = inner_ip.to_vec();
    if cfg.decrement_ttl && !decrement_ttl(&mut inner) {
        return Err(Error::decap(
            "ttl_expired",
            8,
            "TTL reached 0 in the flannel proxy: dropped without an ICMP error",
        ));
    }
    let spec = OuterSpec {
        macs: underlay,
        src: IpAddr::V4(src),
        dst: IpAddr::V4(dst),
        tos: 0,
        ttl: cfg.ttl,
        ident: ip_id,
        // IP_PMTUDISC_WANT sets DF on every datagram that fits the path MTU, which flannel0's
        // MTU guarantees.
        dont_frag: true,
        sport: cfg.port,
        dport: cfg.port,
        udp_checksum: true,
    };
    outer::emit(&spec, &[&inner], out)
}

/// Checks the inner packet the proxy reads from the TUN (before the route lookup).
///
/// # Errors
/// [`Error::Decap`] kinds `truncated`, `not_ipv4`, `oversize`.
pub fn check_tun_packet(cfg: &Config, inner_ip: &[u8]) -> Result<()> {
    if inner_ip.len() < 20 {
        return Err(Error::decap(
            "truncated",
            0,
            format!("{} bytes from the TUN is below the proxy's 20-byte minimum", inner_ip.len()),
        ));
    }
    if inner_ip[0] >> 4 != 4 {
        return Err(Error::decap("not_ipv4", 0, "the UDP backend carries IPv4 only (flannel0 has no IPv6 route)"));
    }
    if inner_ip.len() > cfg.tun_mtu {
        return Err(Error::decap(
            "oversize",
            2,
            format!(
                "{} bytes exceed flannel0's MTU of {}: the kernel fragments it (or answers fragmentation-needed when DF is set) before flannel sees it",
                inner_ip.len(),
                cfg.tun_mtu
            ),
        ));
    }
    Ok(())
}

/// Validates a received datagram as the kernel's UDP input and the proxy's `udp_to_tun` do, and
/// appends the inner packet as written into the TUN (TTL decremented) to `out`.
///
/// # Errors
/// [`Error::Decap`]: the outer checks of the kernel, then `truncated` (payload < 20 bytes),
/// `oversize` (payload > the proxy's buffer of `tun_mtu` bytes: it is read truncated and the
/// kernel drops the cut packet), `ttl_expired`, then the inner IP checks the kernel applies when
/// the packet is written into the TUN.
pub fn decap_into(cfg: &Config, local: &Local, frame: &[u8], link: Link, out: &mut Vec<u8>) -> Result<()> {
    let expect = outer::Expect { local_mac: local.underlay_mac, local_v4: local.ipv4, local_v6: None, port: cfg.port };
    let rx = outer::receive(frame, link, &expect)?;
    if rx.src.is_ipv6() {
        return Err(Error::decap("outer_ip_version", 0, "the UDP backend listens on IPv4 only"));
    }
    let at = rx.payload_start;
    let payload = &frame[at..rx.payload_end];
    if payload.len() < 20 {
        return Err(Error::decap(
            "truncated",
            at,
            format!("UDP payload of {} bytes is below the proxy's 20-byte minimum", payload.len()),
        ));
    }
    if payload.len() > cfg.tun_mtu {
        return Err(Error::decap(
            "oversize",
            at,
            format!(
                "UDP payload of {} bytes exceeds the proxy's {}-byte buffer: read truncated, then dropped by the kernel",
                payload.len(),
                cfg.tun_mtu
            ),
        ));
    }
    let start = out.len();
    out.extend_from_slice(payload);
    if cfg.decrement_ttl && !decrement_ttl(&mut out[start..]) {
        out.truncate(start);
        return Err(Error::decap(
            "ttl_expired",
            at + 8,
            "TTL reached 0 in the flannel proxy: dropped without an ICMP error",
        ));
    }
    let checked = super::inner_ip_len(&out[start..], 0, at);
    match checked {
        // The TUN takes the whole buffer; the IP layer trims what follows the total length.
        Ok(len) => {
            out.truncate(start + len);
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UDP packet 10.244.1.5:5000 → 10.244.9.9:53 with a valid header checksum.
    fn offender() -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 32, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0, 10, 244, 1, 5, 10, 244, 9, 9, 0x13, 0x88, 0, 53, 0, 12,
            0, 0, 1, 2, 3, 4,
        ];
        let c = csum::checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p
    }

    #[test]
    fn ttl_patch_keeps_the_checksum_valid() {
        let mut p = offender();
        assert!(decrement_ttl(&mut p));
        assert_eq!(p[8], 63);
        assert!(csum::verify(csum::sum(0, &p[..20])));
    }

    #[test]
    fn ttl_patch_edge_cases_follow_the_proxy() {
        // Field 0xFEFF (LE 0xFFFE): the proxy adds 2 and wraps to 0x0000.
        let mut p = offender();
        p[8] = 5;
        p[10] = 0xfe;
        p[11] = 0xff;
        assert!(decrement_ttl(&mut p));
        assert_eq!(&p[10..12], &[0, 0]);
        // Field 0xFFFF: 0x0100 (end-around carry).
        p[10] = 0xff;
        p[11] = 0xff;
        assert!(decrement_ttl(&mut p));
        assert_eq!(&p[10..12], &[0x01, 0x00]);
        // Field 0xFF00 → carry into the low byte: 0x0001.
        p[10] = 0xff;
        p[11] = 0x00;
        assert!(decrement_ttl(&mut p));
        assert_eq!(&p[10..12], &[0x00, 0x01]);
        // TTL 1 → 0: dropped; TTL 0 wraps to 255 and goes on.
        p[8] = 1;
        assert!(!decrement_ttl(&mut p));
        p[8] = 0;
        assert!(decrement_ttl(&mut p));
        assert_eq!(p[8], 255);
    }

    #[test]
    fn net_unreachable_bytes() {
        let off = offender();
        let icmp = net_unreachable(&off, Ipv4Addr::new(10, 244, 1, 0)).unwrap();
        assert_eq!(icmp.len(), 56);
        assert_eq!(&icmp[..10], &[0x45, 0, 0, 56, 0, 0, 0, 0, 8, 1]);
        assert_eq!(&icmp[12..20], &[10, 244, 1, 0, 10, 244, 1, 5]);
        assert!(csum::verify(csum::sum(0, &icmp[..20])));
        assert_eq!(&icmp[20..22], &[3, 0]);
        assert_eq!(&icmp[24..28], &[0, 0, 0, 0]);
        assert_eq!(&icmp[28..], &off[..28]);
        assert!(csum::verify(csum::sum(0, &icmp[20..])));
    }

    #[test]
    fn net_unreachable_is_not_sent_for_icmp_fragments_or_long_headers() {
        let tun = Ipv4Addr::new(10, 244, 1, 0);
        let mut p = offender();
        p[9] = 1;
        assert_eq!(net_unreachable(&p, tun), None);
        let mut p = offender();
        p[7] = 1;
        assert_eq!(net_unreachable(&p, tun), None);
        let mut p = offender();
        p[0] = 0x4f;
        assert_eq!(net_unreachable(&p, tun), None);
        let mut p = offender();
        p[6] = 0x20; // MF alone: a first fragment still gets one
        assert!(net_unreachable(&p, tun).is_some());
    }
}
