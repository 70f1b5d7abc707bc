//! Batch encapsulation and decapsulation over one buffer of packets, with a fast path for the
//! common VXLAN case (IPv4 inner packet, IPv4 underlay).
//!
//! [`FastPath`] precomputes, per remote lease, the outer headers the node puts in front of an
//! inner packet (underlay Ethernet, IPv4, UDP, VXLAN, inner Ethernet) and the parts of the two
//! checksums that do not change from packet to packet. A packet then costs one lease lookup
//! (cached), the flow hash for the UDP source port, a copy of the template and of the inner
//! packet, and the checksum arithmetic: the outer IPv4 header checksum is the template's sum
//! plus the words that change (TOS, total length, identification), the UDP checksum the
//! template's sum plus the length, source port and the inner bytes. Nothing is allocated per
//! packet.
//!
//! The bytes are those of [`Encapsulator::encap_into`] and [`Encapsulator::decap_into`]: the
//! templates are cut from frames the single-packet path built, and every packet the fast path
//! does not cover (another backend, IPv6, GBP marks, options, anything the checks would refuse)
//! goes through the single-packet path, which also gives the exact error.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{IpAddr, Ipv4Addr};

use super::inner::{self, Inner};
use super::{vxlan, Backend, Encapsulator, Link};
use crate::error::{Error, Result};

/// Most bytes any backend puts in front of an inner packet (VXLAN over IPv6 with Ethernet:
/// 14 + 40 + 8 + 8 + 14); a buffer of `sum(lengths) + n * MAX_OVERHEAD` bytes holds any batch.
pub const MAX_OVERHEAD: usize = 84;

/// The outer headers for one remote lease, with the varying fields zeroed.
#[derive(Debug, Clone)]
struct Template {
    /// Underlay Ethernet (optional) + IPv4 + UDP + VXLAN + inner Ethernet.
    bytes: [u8; 64],
    /// One's-complement sum of the outer IPv4 header without TOS, length, ID and checksum.
    ip_sum: u32,
    /// Pseudo-header (without length) + UDP header (without ports' source, length, checksum) +
    /// VXLAN + inner Ethernet.
    udp_sum: u32,
}

/// A multiplicative hash for subnet addresses (the default SipHash costs more than the rest
/// of an encapsulation).
#[derive(Default)]
struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.0 = (self.0 ^ u64::from(v)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type AddrMap = HashMap<u32, u32, BuildHasherDefault<AddrHasher>>;

/// Per-prefix-length maps from subnet address to template index (IPv4 leases only).
#[derive(Debug, Clone, Default)]
struct Subnets {
    by_len: Vec<(u32, AddrMap)>,
    /// (network, mask, template) of every entry, to check the last hit cheaply.
    entries: Vec<(u32, u32, u32)>,
}

impl Subnets {
    fn insert(&mut self, net: u32, prefix: u8, template: u32) {
        let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
        let slot = match self.by_len.iter().position(|(m, _)| *m == mask) {
            Some(s) => s,
            None => {
                self.by_len.push((mask, AddrMap::default()));
                self.by_len.len() - 1
            }
        };
        self.by_len[slot].1.insert(net & mask, template);
        self.entries.push((net & mask, mask, template));
    }

    /// Index into `entries` of the lease containing `addr`. Leases never overlap, so at most
    /// one contains it and the order of the search does not matter.
    #[inline]
    fn find(&self, addr: u32, last: &mut usize) -> Option<u32> {
        if let Some(&(net, mask, t)) = self.entries.get(*last) {
            if addr & mask == net {
                return Some(t);
            }
        }
        for (mask, map) in &self.by_len {
            if let Some(&t) = map.get(&(addr & mask)) {
                *last = t as usize;
                return Some(t);
            }
        }
        None
    }
}

/// What the fast decapsulation checks against (the receive side's configuration).
#[derive(Debug, Clone, Copy)]
struct RxConfig {
    local_mac: Option<[u8; 6]>,
    local_v4: Option<u32>,
    vtep_mac: Option<[u8; 6]>,
    port: u16,
    vni: u32,
}

/// Batch encapsulation/decapsulation for one node and link type (see the module docs).
#[derive(Debug, Clone)]
pub struct FastPath {
    /// The node (a copy: a `FastPath` is built once and kept), for the single-packet path.
    enc: Encapsulator,
    /// The mark the templates were built for.
    mark: u32,
    link: Link,
    /// VXLAN configuration when the fast path applies to this backend.
    vxlan: Option<(vxlan::Config, usize)>,
    templates: Vec<Template>,
    subnets: Subnets,
    /// Length of a template: 64 with the underlay Ethernet header, 50 without.
    hdr_len: usize,
    /// Offset of the outer IPv4 header in a frame.
    ip_at: usize,
    rx: Option<RxConfig>,
}

/// The result of a batch call: per-packet errors (packets that produced no output).
pub type Failures = Vec<(usize, Error)>;

/// One's-complement sum of `data` as 16-bit words, in a wide accumulator: fold it with
/// [`fold64`]. `data` starts on a 16-bit word boundary of the checksummed data.
///
/// The words are added in the machine's little-endian order and the folded sum is byte-swapped
/// (RFC 1071 §2(B): the sum is byte-order independent), which saves a swap per word.
#[inline(always)]
pub fn sum_words(data: &[u8]) -> u64 {
    let mut acc = 0u64;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        acc += (w >> 32) + (w & 0xffff_ffff);
    }
    let mut rest = chunks.remainder().chunks_exact(2);
    for c in &mut rest {
        acc += u64::from(u16::from_le_bytes([c[0], c[1]]));
    }
    if let [last] = rest.remainder() {
        acc += u64::from(*last);
    }
    // Fold to 16 bits in little-endian word order, then swap to big-endian order.
    u64::from(fold64(acc).swap_bytes())
}

/// Folds a wide one's-complement accumulator to 16 bits (end-around carry).
#[inline]
pub fn fold64(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    // The loop leaves at most 16 bits.
    #[allow(clippy::cast_possible_truncation)]
    let folded = acc as u16;
    folded
}

/// Whether a 20-byte IPv4 header (no options) has a valid checksum.
#[inline(always)]
fn header_ok(h: &[u8]) -> bool {
    let Some(h) = h.get(..20) else { return false };
    let w = |at: usize| u64::from(u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]));
    fold64(w(0) + w(4) + w(8) + w(12) + w(16)) == 0xffff
}

#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A 20-byte IPv4 packet to `dst` (no ports), from which the single-packet path builds a frame
/// whose headers become the lease's template.
fn probe(dst: Ipv4Addr) -> [u8; 20] {
    let mut p = [0u8; 20];
    p[0] = 0x45;
    p[3] = 20;
    p[8] = 64;
    p[16..20].copy_from_slice(&dst.octets());
    p
}

impl FastPath {
    /// Prepares batches for `enc` on `link`, frames carrying `mark` (a GBP device with a
    /// non-zero mark takes the single-packet path for every packet).
    pub fn new(enc: &Encapsulator, link: Link, mark: u32) -> FastPath {
        let (ip_at, hdr_len) = match link {
            Link::Ethernet => (14, 64),
            Link::Ip => (0, 50),
        };
        let mut fp = FastPath {
            enc: enc.clone(),
            mark,
            link,
            vxlan: None,
            templates: Vec::new(),
            subnets: Subnets::default(),
            hdr_len,
            ip_at,
            rx: None,
        };
        let Backend::Vxlan { config, mtu } = enc.backend() else { return fp };
        if config.gbp && mark != 0 {
            return fp;
        }
        fp.vxlan = Some((*config, *mtu));
        let local = enc.local();
        fp.rx = Some(RxConfig {
            local_mac: local.underlay_mac,
            local_v4: local.ipv4.map(u32::from),
            vtep_mac: local.vtep_mac,
            port: config.port,
            vni: config.vni,
        });
        for lease in enc.leases().leases() {
            let IpAddr::V4(net) = lease.subnet.addr() else { continue };
            if let Some(t) = fp.template(net, mark) {
                let index = u32::try_from(fp.templates.len()).unwrap_or(u32::MAX);
                fp.templates.push(t);
                fp.subnets.insert(u32::from(net), lease.subnet.prefix(), index);
            }
        }
        fp
    }

    /// The lease's template, cut from a frame the single-packet path builds; `None` when that
    /// frame is not IPv4-in-IPv4 VXLAN (an IPv6 peer) or cannot be built (missing MACs...).
    fn template(&self, net: Ipv4Addr, mark: u32) -> Option<Template> {
        let frame = self.enc.encap(&probe(net), 0, mark, self.link).ok()?;
        if frame.len() != self.hdr_len + 20 {
            return None;
        }
        let ip = self.ip_at;
        if (self.link == Link::Ethernet && frame[12..14] != [0x08, 0x00]) || frame[ip] != 0x45 {
            return None;
        }
        let mut bytes = [0u8; 64];
        bytes[..self.hdr_len].copy_from_slice(&frame[..self.hdr_len]);
        // Zero what varies per packet: TOS, total length, ID, IP checksum; UDP source port,
        // length, checksum.
        let l4 = ip + 20;
        bytes[ip + 1..ip + 6].fill(0);
        bytes[ip + 10..ip + 12].fill(0);
        bytes[l4..l4 + 2].fill(0);
        bytes[l4 + 4..l4 + 8].fill(0);
        let ip_sum = fold64(sum_words(&bytes[ip..l4]));
        // Pseudo-header: source, destination, protocol (the length is added per packet).
        let pseudo = sum_words(&bytes[ip + 12..ip + 20]) + 17;
        let udp_sum = fold64(pseudo + sum_words(&bytes[l4..self.hdr_len]));
        Some(Template { bytes, ip_sum: u32::from(ip_sum), udp_sum: u32::from(udp_sum) })
    }

    /// Whether any packet can take the fast path (VXLAN backend, some IPv4 lease usable).
    pub fn is_fast(&self) -> bool {
        !self.templates.is_empty()
    }

    /// Bytes of output a batch of `n` packets totalling `bytes` can need at most.
    pub fn encap_capacity(n: usize, bytes: usize) -> usize {
        bytes.saturating_add(n.saturating_mul(MAX_OVERHEAD))
    }

    /// The fast-path plan for one packet: its template and UDP source port, or `None` when it
    /// needs the single-packet path. A batch plans a few packets before writing them, which
    /// gives the processor independent flow hashes (a serial chain each) to overlap.
    #[inline(always)]
    fn plan(&self, p: &[u8], last: &mut usize) -> Option<(u32, u16)> {
        let (cfg, mtu) = self.vxlan.as_ref()?;
        let n = p.len();
        if n < 20 || p[0] >> 4 != 4 || (*mtu != 0 && n > *mtu) || n > 65535 - 50 {
            return None;
        }
        let hl = usize::from(p[0] & 0x0f) * 4;
        if hl < 20 || n < hl {
            return None;
        }
        let dst = be32(p, 16);
        let t = self.subnets.find(dst, last)?;
        // The flow hash of `inner::parse` + `vxlan::source_port`.
        let protocol = p[9];
        let first_fragment = be16(p, 6) & 0x1fff == 0;
        let ports = (first_fragment && matches!(protocol, 6 | 17 | 132 | 136) && n >= hl + 4)
            .then(|| (be16(p, hl), be16(p, hl + 2)));
        let info = Inner {
            src: IpAddr::V4(Ipv4Addr::from(be32(p, 12))),
            dst: IpAddr::V4(Ipv4Addr::from(dst)),
            dsfield: p[1],
            protocol,
            ports,
        };
        let sport =
            inner::src_port_in_range(inner::flow_hash(&info, cfg.hash_seed), cfg.port_range.0, cfg.port_range.1);
        Some((t, sport))
    }

    /// Writes the frame of a planned packet into `out`; returns its length (`None` only if
    /// `out` is too short, which the capacity check excludes). `IP` is the offset of the outer
    /// IPv4 header (14 after an Ethernet header, else 0), a constant so the offsets below are.
    #[inline(always)]
    fn write<const IP: usize>(&self, p: &[u8], plan: (u32, u16), ip_id: u16, out: &mut [u8]) -> Option<usize> {
        let (t, sport) = plan;
        let t = self.templates.get(t as usize)?;
        let udp_checksum = self.vxlan.as_ref().is_some_and(|(c, _)| c.udp_checksum);
        let n = p.len();
        let tos = vxlan::outer_tos(p[1]);
        let h = IP + 50;
        // plan() admitted n <= 65485, so both lengths fit 16 bits.
        #[allow(clippy::cast_possible_truncation)]
        let (total, udp_len) = ((n + 50) as u16, (n + 30) as u16);
        let frame = out.get_mut(..h + n)?;
        // The whole 64-byte template: without the Ethernet header its last 14 bytes are
        // overwritten by the inner packet (n >= 20).
        frame[..64].copy_from_slice(&t.bytes);
        frame[h..].copy_from_slice(p);
        let hdr: &mut [u8; 64] = (&mut frame[..64]).try_into().ok()?;
        let ip_sum = u64::from(t.ip_sum) + u64::from(tos) + u64::from(total) + u64::from(ip_id);
        let l4 = IP + 20;
        hdr[IP + 1] = tos;
        hdr[IP + 2..IP + 4].copy_from_slice(&total.to_be_bytes());
        hdr[IP + 4..IP + 6].copy_from_slice(&ip_id.to_be_bytes());
        hdr[IP + 10..IP + 12].copy_from_slice(&(!fold64(ip_sum)).to_be_bytes());
        hdr[l4..l4 + 2].copy_from_slice(&sport.to_be_bytes());
        hdr[l4 + 4..l4 + 6].copy_from_slice(&udp_len.to_be_bytes());
        if udp_checksum {
            let s = u64::from(t.udp_sum) + 2 * u64::from(udp_len) + u64::from(sport) + sum_words(p);
            let c = !fold64(s);
            hdr[l4 + 6..l4 + 8].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
        }
        Some(h + n)
    }

    /// Encapsulates one packet through the fast path (plan, then write).
    #[cfg(test)]
    fn encap_one<const IP: usize>(&self, p: &[u8], ip_id: u16, last: &mut usize, out: &mut [u8]) -> Option<usize> {
        let plan = self.plan(p, last)?;
        self.write::<IP>(p, plan, ip_id, out)
    }

    /// Encapsulates the packets `data[offsets[i] .. offsets[i] + lengths[i]]` into `out`, one
    /// frame after the other, writing each frame's offset and length (0 for a packet that
    /// failed) to `out_offsets` / `out_lengths`. The outer IPv4 ID starts at `ip_id` and goes up
    /// by one per frame sent, as in [`Encapsulator::encap_batch`]. Returns the failed packets
    /// with their errors. (A `mark` other than the one given to [`FastPath::new`] sends every
    /// packet through the single-packet path.)
    ///
    /// # Errors
    /// [`Error::Invalid`] when a span lies outside `data`, the arrays differ in length, or `out`
    /// is smaller than [`FastPath::encap_capacity`].
    #[allow(clippy::too_many_arguments)]
    pub fn encap_buffer(
        &self,
        data: &[u8],
        offsets: &[u64],
        lengths: &[u32],
        ip_id: u16,
        mark: u32,
        out: &mut [u8],
        out_offsets: &mut [u64],
        out_lengths: &mut [u32],
    ) -> Result<Failures> {
        let total = check_spans(data, offsets, lengths, out_offsets, out_lengths)?;
        let need = Self::encap_capacity(offsets.len(), total);
        if out.len() < need {
            return Err(Error::invalid("out", format!("holds {} bytes; the batch may need {need}", out.len())));
        }
        let mut failures = Vec::new();
        let mut scratch = Vec::new();
        let mut id = ip_id;
        let mut at = 0usize;
        let mut last = 0usize;
        const GROUP: usize = 8;
        let mut plans = [None; GROUP];
        for start in (0..offsets.len()).step_by(GROUP) {
            let end = (start + GROUP).min(offsets.len());
            for (plan, i) in plans.iter_mut().zip(start..end) {
                // Templates hold the VXLAN header of the mark they were built for.
                *plan = if mark == self.mark { self.plan(span(data, offsets[i], lengths[i]), &mut last) } else { None };
            }
            for (&plan, i) in plans.iter().zip(start..end) {
                let p = span(data, offsets[i], lengths[i]);
                out_offsets[i] = at as u64;
                let fast = plan.and_then(|plan| match self.link {
                    Link::Ethernet => self.write::<14>(p, plan, id, &mut out[at..]),
                    Link::Ip => self.write::<0>(p, plan, id, &mut out[at..]),
                });
                let written = match fast {
                    Some(w) => Ok(w),
                    None => {
                        scratch.clear();
                        self.enc.encap_into(p, id, mark, self.link, &mut scratch).map(|()| {
                            out[at..at + scratch.len()].copy_from_slice(&scratch);
                            scratch.len()
                        })
                    }
                };
                match written {
                    Ok(w) => {
                        id = id.wrapping_add(1);
                        at += w;
                        out_lengths[i] = u32::try_from(w).unwrap_or(u32::MAX);
                    }
                    Err(e) => {
                        out_lengths[i] = 0;
                        failures.push((i, e));
                    }
                }
            }
        }
        Ok(failures)
    }

    /// Decapsulates one frame through the fast path when every check of the receive path
    /// passes; `None` sends it to the single-packet path (which decides, and names the error).
    #[inline]
    fn decap_one(&self, f: &[u8], out: &mut [u8]) -> Option<usize> {
        let rx = self.rx.as_ref()?;
        let ip = self.ip_at;
        if f.len() < ip + 50 {
            return None;
        }
        if self.link == Link::Ethernet {
            if let Some(own) = rx.local_mac {
                if f[0] & 1 == 0 && f[0..6] != own {
                    return None;
                }
            }
            if f[12..14] != [0x08, 0x00] {
                return None;
            }
        }
        // Outer IPv4 without options, valid checksum, not a fragment, for this node, UDP.
        let h = &f[ip..];
        let total = usize::from(be16(h, 2));
        if h[0] != 0x45 || !header_ok(h) || total < 20 || total > h.len() {
            return None;
        }
        if be16(h, 6) & 0x3fff != 0 || h[9] != 17 || h[1] & 3 == 3 {
            return None;
        }
        if rx.local_v4.is_some_and(|a| a != be32(h, 16)) {
            return None;
        }
        let ulen = usize::from(be16(h, 24));
        if ulen < 8 + 22 || ulen > total - 20 || be16(h, 22) != rx.port {
            return None;
        }
        let udp = &h[20..20 + ulen];
        if be16(udp, 6) != 0 {
            let pseudo = sum_words(&h[12..20]) + 17 + ulen as u64;
            if fold64(pseudo + sum_words(udp)) != 0xffff {
                return None;
            }
        }
        // VXLAN: exactly the I flag, this VNI, reserved bytes zero.
        let vx = &udp[8..];
        if be32(vx, 0) != u32::from(vxlan::FLAG_I) << 24 || be32(vx, 4) != rx.vni << 8 {
            return None;
        }
        // Inner Ethernet: not from this VTEP, to this VTEP (or multicast), IPv4.
        let eth = &vx[8..];
        if let Some(own) = rx.vtep_mac {
            if eth[6..12] == own || (eth[0] & 1 == 0 && eth[0..6] != own) {
                return None;
            }
        }
        if eth[12..14] != [0x08, 0x00] {
            return None;
        }
        // Inner IPv4 as ip_rcv checks it.
        let p = &eth[14..];
        if p.len() < 20 || p[0] >> 4 != 4 {
            return None;
        }
        let hl = usize::from(p[0] & 0x0f) * 4;
        let valid = if hl == 20 { header_ok(p) } else { p.len() >= hl && fold64(sum_words(&p[..hl])) == 0xffff };
        if hl < 20 || p.len() < hl || !valid {
            return None;
        }
        let len = usize::from(be16(p, 2));
        if len < hl || len > p.len() {
            return None;
        }
        out[..len].copy_from_slice(&p[..len]);
        Some(len)
    }

    /// Decapsulates the frames `data[offsets[i] .. offsets[i] + lengths[i]]` into `out` (the
    /// inner IP packets one after the other), like [`FastPath::encap_buffer`].
    ///
    /// # Errors
    /// [`Error::Invalid`] when a span lies outside `data`, the arrays differ in length, or `out`
    /// is smaller than the sum of the lengths.
    pub fn decap_buffer(
        &self,
        data: &[u8],
        offsets: &[u64],
        lengths: &[u32],
        out: &mut [u8],
        out_offsets: &mut [u64],
        out_lengths: &mut [u32],
    ) -> Result<Failures> {
        let total = check_spans(data, offsets, lengths, out_offsets, out_lengths)?;
        if out.len() < total {
            return Err(Error::invalid("out", format!("holds {} bytes; the batch may need {total}", out.len())));
        }
        let mut failures = Vec::new();
        let mut scratch = Vec::new();
        let mut at = 0usize;
        for i in 0..offsets.len() {
            let f = span(data, offsets[i], lengths[i]);
            out_offsets[i] = at as u64;
            let written = match self.decap_one(f, &mut out[at..]) {
                Some(w) => Ok(w),
                None => {
                    scratch.clear();
                    self.enc.decap_into(f, self.link, &mut scratch).map(|()| {
                        out[at..at + scratch.len()].copy_from_slice(&scratch);
                        scratch.len()
                    })
                }
            };
            match written {
                Ok(w) => {
                    at += w;
                    out_lengths[i] = u32::try_from(w).unwrap_or(u32::MAX);
                }
                Err(e) => {
                    out_lengths[i] = 0;
                    failures.push((i, e));
                }
            }
        }
        Ok(failures)
    }
}

/// The packet at `offset`/`length` of `data` (checked by [`check_spans`] first).
#[inline]
fn span(data: &[u8], offset: u64, length: u32) -> &[u8] {
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    data.get(start..start.saturating_add(length as usize)).unwrap_or_default()
}

/// Checks that the arrays agree in length and every span lies inside `data`; returns the sum
/// of the lengths.
fn check_spans(
    data: &[u8],
    offsets: &[u64],
    lengths: &[u32],
    out_offsets: &[u64],
    out_lengths: &[u32],
) -> Result<usize> {
    let n = offsets.len();
    if lengths.len() != n || out_offsets.len() != n || out_lengths.len() != n {
        return Err(Error::invalid(
            "lengths",
            format!(
                "{} offsets, {} lengths, {} output offsets, {} output lengths: all must be equal",
                n,
                lengths.len(),
                out_offsets.len(),
                out_lengths.len()
            ),
        ));
    }
    let mut total = 0usize;
    for (i, (&o, &l)) in offsets.iter().zip(lengths).enumerate() {
        let end = o.checked_add(u64::from(l));
        if !matches!(end, Some(e) if e <= data.len() as u64) {
            return Err(Error::invalid(
                format!("offsets[{i}]"),
                format!("packet {i} spans bytes {o}..{o}+{l}, beyond the {} bytes of data", data.len()),
            ));
        }
        total = total.saturating_add(l as usize);
    }
    Ok(total)
}

#[cfg(test)]
mod tests;
