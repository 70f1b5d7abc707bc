//! The VXLAN backend: the 8-byte VXLAN header (view + Repr) and the bytes the Linux vxlan driver
//! puts on the wire for a device configured as flannel configures `flannel.1`.
//!
//! ```text
//! [outer Ethernet 14][outer IPv4 20 | IPv6 40][UDP 8][VXLAN 8][inner Ethernet 14][inner IP ...]
//! ```
//!
//! Transmit (`vxlan_xmit_one`): outer TTL 64 (`ttl auto`), DF clear (`df unset`), DSCP 0 with the
//! inner ECN bits copied except CE → ECT(0) (`INET_ECN_encapsulate`), UDP source port from the
//! flow hash mapped into the port range (`udp_flow_src_port`), destination port 8472 unless
//! configured, UDP checksum on unless `noudpcsum` (IPv6 always), VXLAN flags 0x08 + VNI, inner
//! Ethernet from the local VTEP MAC to the remote VtepMAC. Receive (`vxlan_rcv`) checks are in
//! [`Repr::parse`] and [`decap`].

use std::net::IpAddr;

use super::inner::{self, Inner};
use super::outer::{self, OuterSpec};
use super::subnet::{Lease, Mac};
use super::{Link, Local};
use crate::error::{Error, Result};

/// Length of the VXLAN header.
pub const HEADER_LEN: usize = 8;
/// The Linux vxlan driver's default UDP port (`vxlan_port`), which flannel uses.
pub const DEFAULT_PORT: u16 = 8472;
/// Bytes VXLAN adds in front of the inner IP packet over IPv4: 20 + 8 + 8 + 14.
pub const OVERHEAD_V4: usize = 50;
/// Bytes VXLAN adds over IPv6: 40 + 8 + 8 + 14.
pub const OVERHEAD_V6: usize = 70;

/// The I flag (valid VNI), `VXLAN_HF_VNI`.
pub const FLAG_I: u8 = 0x08;
/// The G flag (group policy), `VXLAN_HF_GBP`.
pub const FLAG_G: u8 = 0x80;
/// GBP "don't learn" bit in byte 1.
pub const GBP_DONT_LEARN: u8 = 0x40;
/// GBP "policy applied" bit in byte 1.
pub const GBP_POLICY_APPLIED: u8 = 0x08;

/// A view of a VXLAN header.
#[derive(Debug, Clone)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Wraps a buffer without checking its length.
    pub fn new_unchecked(buffer: T) -> Self {
        Header { buffer }
    }

    /// Wraps a buffer of at least [`HEADER_LEN`] bytes.
    ///
    /// # Errors
    /// [`Error::Packet`] when the buffer is shorter.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let have = buffer.as_ref().len();
        if have < HEADER_LEN {
            return Err(Error::packet("vxlan", "header", 0, format!("truncated: need 8 bytes, only {have} available")));
        }
        Ok(Header { buffer })
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// The flags byte (byte 0).
    pub fn flags(&self) -> u8 {
        self.b()[0]
    }

    /// The first 32-bit word (flags and reserved / GBP fields), big-endian.
    pub fn word0(&self) -> u32 {
        let b = self.b();
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The VNI (bytes 4–6).
    pub fn vni(&self) -> u32 {
        let b = self.b();
        u32::from_be_bytes([0, b[4], b[5], b[6]])
    }

    /// The reserved byte after the VNI (byte 7).
    pub fn reserved_low(&self) -> u8 {
        self.b()[7]
    }

    /// GBP policy ID (bytes 2–3), meaningful when the G flag is set.
    pub fn gbp_policy_id(&self) -> u16 {
        let b = self.b();
        u16::from_be_bytes([b[2], b[3]])
    }

    /// The payload after the header.
    pub fn payload(&self) -> &[u8] {
        &self.b()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Header<T> {
    /// Sets the flags byte.
    pub fn set_flags(&mut self, flags: u8) {
        self.buffer.as_mut()[0] = flags;
    }

    /// Sets the VNI (low 24 bits of `vni`).
    pub fn set_vni(&mut self, vni: u32) {
        let b = vni.to_be_bytes();
        self.buffer.as_mut()[4..7].copy_from_slice(&b[1..4]);
    }
}

/// Group Based Policy fields (`VXLAN_F_GBP`), taken from the packet mark on transmit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Gbp {
    /// Policy ID (`mark & 0xffff`).
    pub policy_id: u16,
    /// D bit (mark bit 22).
    pub dont_learn: bool,
    /// A bit (mark bit 19).
    pub policy_applied: bool,
}

impl Gbp {
    /// What `vxlan_build_gbp_hdr` derives from `skb->mark`; `None` for mark 0 (no G flag then).
    pub fn from_mark(mark: u32) -> Option<Gbp> {
        (mark != 0).then_some(Gbp {
            policy_id: (mark & 0xffff) as u16,
            dont_learn: mark & (1 << 22) != 0,
            policy_applied: mark & (1 << 19) != 0,
        })
    }
}

/// An owned VXLAN header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// VXLAN network identifier (24 bits).
    pub vni: u32,
    /// GBP fields (only on a `gbp` device).
    pub gbp: Option<Gbp>,
}

impl Repr {
    /// Reads a header as `vxlan_rcv` does: I flag required, the device looked up by VNI, GBP
    /// fields consumed only on a GBP device, then *any* remaining bit is malformed (Linux is
    /// deliberately stricter than RFC 7348 here). `base` is the header's offset in the frame,
    /// for the error offsets.
    ///
    /// # Errors
    /// [`Error::Decap`] kinds `vxlan_flags`, `vni`, `vxlan_reserved`.
    pub fn parse<T: AsRef<[u8]>>(h: &Header<T>, expect_vni: u32, gbp: bool, base: usize) -> Result<Repr> {
        let flags = h.flags();
        if flags & FLAG_I == 0 {
            return Err(Error::decap(
                "vxlan_flags",
                base,
                format!("flags 0x{flags:02x} lack the I bit (0x08): not a VXLAN packet"),
            ));
        }
        let vni = h.vni();
        if vni != expect_vni {
            return Err(Error::decap(
                "vni",
                base + 4,
                format!("VNI {vni} has no device (this node's VNI is {expect_vni})"),
            ));
        }
        let mut unparsed = h.word0() & !(u32::from(FLAG_I) << 24);
        let mut parsed_gbp = None;
        if gbp && unparsed & (u32::from(FLAG_G) << 24) != 0 {
            let used = (u32::from(FLAG_G) << 24)
                | (u32::from(GBP_DONT_LEARN) << 16)
                | (u32::from(GBP_POLICY_APPLIED) << 16)
                | 0xffff;
            parsed_gbp = Some(Gbp {
                policy_id: h.gbp_policy_id(),
                dont_learn: unparsed & (u32::from(GBP_DONT_LEARN) << 16) != 0,
                policy_applied: unparsed & (u32::from(GBP_POLICY_APPLIED) << 16) != 0,
            });
            unparsed &= !used;
        }
        if unparsed != 0 {
            let at = base + unparsed.to_be_bytes().iter().position(|&b| b != 0).unwrap_or(0);
            return Err(Error::decap(
                "vxlan_reserved",
                at,
                format!("reserved bits 0x{unparsed:08x} set in the first word: Linux drops such packets as malformed"),
            ));
        }
        if h.reserved_low() != 0 {
            return Err(Error::decap(
                "vxlan_reserved",
                base + 7,
                format!(
                    "reserved byte after the VNI is 0x{:02x}: Linux drops such packets as malformed",
                    h.reserved_low()
                ),
            ));
        }
        Ok(Repr { vni, gbp: parsed_gbp })
    }

    /// Writes the 8 header bytes (`vxlan_build_skb` + `vxlan_build_gbp_hdr`).
    pub fn emit(&self, buf: &mut [u8; HEADER_LEN]) {
        *buf = [FLAG_I, 0, 0, 0, 0, 0, 0, 0];
        if let Some(g) = self.gbp {
            buf[0] |= FLAG_G;
            if g.dont_learn {
                buf[1] |= GBP_DONT_LEARN;
            }
            if g.policy_applied {
                buf[1] |= GBP_POLICY_APPLIED;
            }
            buf[2..4].copy_from_slice(&g.policy_id.to_be_bytes());
        }
        let mut h = Header::new_unchecked(&mut buf[..]);
        h.set_vni(self.vni);
    }
}

/// How the `flannel.<VNI>` device is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// VNI (flannel default 1).
    pub vni: u32,
    /// UDP destination port and listening port (8472 unless `Backend.Port` is set).
    pub port: u16,
    /// `udpcsum` (the default on current kernels) or `noudpcsum`; IPv6 always computes it.
    pub udp_checksum: bool,
    /// `gbp`.
    pub gbp: bool,
    /// Source port range `[min, max)`; flannel leaves `srcport 0 0`, so the netns's
    /// `ip_local_port_range` applies (32768 60999 by default).
    pub port_range: (u16, u16),
    /// Outer TTL / hop limit (`ttl auto` → `ip_default_ttl`, 64).
    pub ttl: u8,
    /// Seed of kubenat's deterministic flow hash (see [`inner::flow_hash`]).
    pub hash_seed: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            vni: 1,
            port: DEFAULT_PORT,
            udp_checksum: true,
            gbp: false,
            port_range: (32768, 60999),
            ttl: 64,
            hash_seed: 0,
        }
    }
}

/// `INET_ECN_encapsulate(0, inner)`: DSCP 0, the inner ECN bits, CE sent as ECT(0).
pub fn outer_tos(inner_dsfield: u8) -> u8 {
    match inner_dsfield & 3 {
        3 => 2,
        ecn => ecn,
    }
}

/// The outer UDP source port the kernel would pick for this inner packet (in range, per flow).
pub fn source_port(cfg: &Config, inner: &Inner) -> u16 {
    inner::src_port_in_range(inner::flow_hash(inner, cfg.hash_seed), cfg.port_range.0, cfg.port_range.1)
}

/// Appends the encapsulated frame for `inner_ip` to `out`, for the remote `lease`.
///
/// # Errors
/// [`Error::Invalid`] when a MAC or local address the frame needs is not configured.
#[allow(clippy::too_many_arguments)]
pub fn encap_into(
    cfg: &Config,
    local: &Local,
    lease: &Lease,
    underlay: Option<(Mac, Mac)>,
    inner_ip: &[u8],
    info: &Inner,
    ip_id: u16,
    mark: u32,
    out: &mut Vec<u8>,
) -> Result<()> {
    let v6 = info.dst.is_ipv6();
    let vtep = if v6 { local.vtep_mac_v6 } else { local.vtep_mac };
    let src_vtep = vtep.ok_or_else(|| {
        Error::invalid(if v6 { "vtep_mac_v6" } else { "vtep_mac" }, "the local VTEP MAC is needed to encapsulate")
    })?;
    let dst_vtep = lease
        .vtep_mac
        .ok_or_else(|| Error::invalid(format!("lease {}", lease.subnet), "has no VtepMAC in its BackendData"))?;
    let src: IpAddr = match lease.public_ip {
        IpAddr::V4(_) => local.ipv4.map(IpAddr::V4),
        IpAddr::V6(_) => local.ipv6.map(IpAddr::V6),
    }
    .ok_or_else(|| {
        Error::invalid("public_ip", format!("no local address of the family of peer {}", lease.public_ip))
    })?;
    let mut vx = [0u8; HEADER_LEN];
    Repr { vni: cfg.vni, gbp: if cfg.gbp { Gbp::from_mark(mark) } else { None } }.emit(&mut vx);
    let mut eth = [0u8; 14];
    eth[0..6].copy_from_slice(&dst_vtep);
    eth[6..12].copy_from_slice(&src_vtep);
    eth[12..14].copy_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
    let spec = OuterSpec {
        macs: underlay,
        src,
        dst: lease.public_ip,
        tos: outer_tos(info.dsfield),
        ttl: cfg.ttl,
        ident: ip_id,
        dont_frag: false,
        sport: source_port(cfg, info),
        dport: cfg.port,
        udp_checksum: cfg.udp_checksum,
    };
    outer::emit(&spec, &[&vx, &eth, inner_ip], out)
}

/// Validates a received frame as the kernel's receive path for `flannel.<VNI>` does and appends
/// the inner IP packet (as the kernel hands it to the IP layer) to `out`.
///
/// # Errors
/// [`Error::Decap`] naming the first check that fails and the byte offset it looked at.
pub fn decap_into(cfg: &Config, local: &Local, frame: &[u8], link: Link, out: &mut Vec<u8>) -> Result<()> {
    let expect =
        outer::Expect { local_mac: local.underlay_mac, local_v4: local.ipv4, local_v6: local.ipv6, port: cfg.port };
    let rx = outer::receive(frame, link, &expect)?;
    let at = rx.payload_start;
    let payload = &frame[at..rx.payload_end];
    let h = Header::new_checked(payload).map_err(|_| {
        Error::decap("truncated", at, format!("VXLAN header needs 8 bytes, only {} left", payload.len()))
    })?;
    Repr::parse(&h, cfg.vni, cfg.gbp, at)?;
    let eth_at = at + HEADER_LEN;
    let eth = h.payload();
    if eth.len() < 14 {
        return Err(Error::decap(
            "truncated",
            eth_at,
            format!("inner Ethernet header needs 14 bytes, only {} left", eth.len()),
        ));
    }
    let vtep = if rx.dst.is_ipv6() { local.vtep_mac_v6 } else { local.vtep_mac };
    if let Some(own) = vtep {
        if eth[6..12] == own {
            return Err(Error::decap(
                "inner_src_mac",
                eth_at + 6,
                "inner source MAC is this VTEP's own MAC: dropped as a loop",
            ));
        }
        if eth[0] & 1 == 0 && eth[0..6] != own {
            return Err(Error::decap(
                "inner_dst_mac",
                eth_at,
                format!(
                    "inner destination MAC {} is not this VTEP ({}): PACKET_OTHERHOST, the IP layer discards it",
                    super::format_mac(&eth[0..6]),
                    super::format_mac(&own)
                ),
            ));
        }
    }
    let ethertype = u16::from_be_bytes([eth[12], eth[13]]);
    let ip_at = eth_at + 14;
    let family = match ethertype {
        0x0800 => 4,
        0x86dd => 6,
        t => {
            return Err(Error::decap(
                "inner_ethertype",
                eth_at + 12,
                format!("inner ethertype 0x{t:04x} is not IP (kubenat decapsulates IP packets)"),
            ));
        }
    };
    let start = out.len();
    let len = super::inner_ip_len(&frame[ip_at..rx.payload_end], family, ip_at)?;
    out.extend_from_slice(&frame[ip_at..ip_at + len]);
    if let Err(e) = ecn_decapsulate(rx.tos, &mut out[start..], family, ip_at) {
        out.truncate(start);
        return Err(e);
    }
    Ok(())
}

/// `IP_ECN_decapsulate`: outer CE over inner not-ECT is dropped; outer CE over inner ECT marks
/// the inner packet CE (IPv4 checksum updated incrementally).
fn ecn_decapsulate(outer_tos: u8, inner: &mut [u8], family: u8, at: usize) -> Result<()> {
    if outer_tos & 3 != 3 {
        return Ok(());
    }
    let ds = if family == 4 { inner[1] } else { ((inner[0] & 0x0f) << 4) | (inner[1] >> 4) };
    if ds & 3 == 0 {
        return Err(Error::decap("ecn", at + 1, "outer ECN is CE but the inner packet is not ECN-capable (RFC 6040)"));
    }
    if ds & 3 != 3 {
        if family == 4 {
            let old = u16::from_be_bytes([inner[0], inner[1]]);
            inner[1] |= 3;
            let new = u16::from_be_bytes([inner[0], inner[1]]);
            let hc = u16::from_be_bytes([inner[10], inner[11]]);
            inner[10..12].copy_from_slice(&super::csum_update(hc, old, new).to_be_bytes());
        } else {
            inner[1] |= 0x30;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes_match_the_kernel() {
        let mut b = [0u8; 8];
        Repr { vni: 1, gbp: None }.emit(&mut b);
        assert_eq!(b, [0x08, 0, 0, 0, 0, 0, 1, 0]);
        Repr { vni: 0x00ab_cdef, gbp: None }.emit(&mut b);
        assert_eq!(b, [0x08, 0, 0, 0, 0xab, 0xcd, 0xef, 0]);
        Repr { vni: 1, gbp: Gbp::from_mark(0x0048_1234) }.emit(&mut b);
        assert_eq!(b, [0x88, 0x48, 0x12, 0x34, 0, 0, 1, 0]);
        assert_eq!(Gbp::from_mark(0), None);
    }

    #[test]
    fn parse_enforces_the_kernel_rules() {
        let ok = [0x08, 0, 0, 0, 0, 0, 1, 0];
        assert_eq!(Repr::parse(&Header::new_checked(&ok[..]).unwrap(), 1, false, 50).unwrap().vni, 1);
        let kind = |bytes: [u8; 8], gbp: bool| match Repr::parse(&Header::new_checked(&bytes[..]).unwrap(), 1, gbp, 50)
        {
            Err(Error::Decap { kind, offset, .. }) => (kind, offset),
            other => panic!("{other:?}"),
        };
        assert_eq!(kind([0, 0, 0, 0, 0, 0, 1, 0], false), ("vxlan_flags", 50));
        assert_eq!(kind([0x08, 0, 0, 0, 0, 0, 2, 0], false), ("vni", 54));
        assert_eq!(kind([0x0c, 0, 0, 3, 0, 0, 1, 0], false), ("vxlan_reserved", 50));
        assert_eq!(kind([0x08, 0, 0, 1, 0, 0, 1, 0], false), ("vxlan_reserved", 53));
        assert_eq!(kind([0x08, 0, 0, 0, 0, 0, 1, 9], false), ("vxlan_reserved", 57));
        assert_eq!(kind([0x88, 0x48, 0x12, 0x34, 0, 0, 1, 0], false), ("vxlan_reserved", 50));
        assert_eq!(kind([0x88, 0x01, 0x12, 0x34, 0, 0, 1, 0], true), ("vxlan_reserved", 51));
        let gbp = [0x88, 0x48, 0x12, 0x34, 0, 0, 1, 0];
        let r = Repr::parse(&Header::new_checked(&gbp[..]).unwrap(), 1, true, 0).unwrap();
        assert_eq!(r.gbp, Some(Gbp { policy_id: 0x1234, dont_learn: true, policy_applied: true }));
    }

    #[test]
    fn ecn_encapsulation() {
        assert_eq!(outer_tos(0xa2), 0x02);
        assert_eq!(outer_tos(0x03), 0x02);
        assert_eq!(outer_tos(0xc0), 0x00);
        assert_eq!(outer_tos(0x01), 0x01);
    }

    #[test]
    fn short_header_is_a_packet_error() {
        assert!(Header::new_checked(&[0u8; 7][..]).is_err());
    }
}
