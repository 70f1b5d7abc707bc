//! flannel's overlays: the UDP backend (port 8285), the VXLAN backend (port 8472) and host-gw.
//!
//! An [`Encapsulator`] holds what one node knows (its addresses and MACs, its backend's
//! configuration, the remote leases) and turns inner IP packets into the frames that node puts
//! on the wire ([`Encapsulator::encap_into`]), and received frames back into inner packets,
//! refusing what the node's receive path would drop ([`Encapsulator::decap_into`], errors are
//! [`Error::Decap`] with a kind and a byte offset).

pub mod fast;
pub mod inner;
pub mod outer;
pub mod subnet;
pub mod udp;
pub mod vxlan;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use subnet::{Lease, LeaseTable, Mac};

use crate::error::{Error, Result};
use crate::packet::checksum as csum;

/// What a frame starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Link {
    /// An Ethernet header (pcap linktype 1).
    Ethernet,
    /// The IP header directly (pcap linktype 101, raw IP).
    Ip,
}

/// What the local node knows about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Local {
    /// The node's public IPv4 address (the lease's `PublicIP`; the VXLAN device's `local`).
    pub ipv4: Option<Ipv4Addr>,
    /// The node's public IPv6 address (`PublicIPv6`).
    pub ipv6: Option<Ipv6Addr>,
    /// MAC of the node's underlay NIC.
    pub underlay_mac: Option<Mac>,
    /// MAC of `flannel.<VNI>`.
    pub vtep_mac: Option<Mac>,
    /// MAC of `flannel-v6.<VNI>`.
    pub vtep_mac_v6: Option<Mac>,
}

/// The backend and its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `Type: "vxlan"`; `mtu` is the device MTU (link MTU − 50), the largest inner packet.
    Vxlan {
        /// Device configuration.
        config: vxlan::Config,
        /// The `flannel.<VNI>` MTU.
        mtu: usize,
    },
    /// `Type: "udp"`.
    Udp(udp::Config),
    /// `Type: "host-gw"`: routes only, the inner packet leaves with a new Ethernet header.
    HostGw {
        /// The link MTU (host-gw adds nothing).
        mtu: usize,
    },
}

/// One node's view of the overlay: encapsulates and decapsulates frames.
#[derive(Debug, Clone)]
pub struct Encapsulator {
    backend: Backend,
    local: Local,
    leases: LeaseTable,
    gateway_mac: Option<Mac>,
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(m: &[u8]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// RFC 1624 (eqn. 3) incremental checksum update for one 16-bit word.
pub fn csum_update(hc: u16, old: u16, new: u16) -> u16 {
    let sum = u32::from(!hc) + u32::from(!old) + u32::from(new);
    !csum::fold(sum)
}

fn bad(kind: &'static str, offset: usize, message: impl Into<String>) -> Error {
    Error::decap(kind, offset, message)
}

/// Validates an inner IP packet as the kernel's `ip_rcv` / `ipv6_rcv` do and returns its length
/// (trailing bytes beyond the IP length are trimmed by the kernel). `family` 0 means "from the
/// version nibble"; `base` is the packet's offset in the frame, for the error offsets.
///
/// # Errors
/// [`Error::Decap`] kinds `truncated`, `inner_ip_version`, `inner_ip_header`, `inner_ip_checksum`,
/// `inner_ip_length`.
pub fn inner_ip_len(p: &[u8], family: u8, base: usize) -> Result<usize> {
    let Some(&first) = p.first() else {
        return Err(bad("truncated", base, "no inner IP header"));
    };
    let version = first >> 4;
    let family = if family == 0 { version } else { family };
    if version != family {
        return Err(bad("inner_ip_version", base, format!("IP version {version} where IPv{family} was announced")));
    }
    match family {
        4 => {
            if p.len() < 20 {
                return Err(bad("truncated", base, format!("inner IPv4 header needs 20 bytes, only {} left", p.len())));
            }
            let hl = usize::from(first & 0x0f) * 4;
            if hl < 20 {
                return Err(bad("inner_ip_header", base, format!("inner IHL {} is below 5", hl / 4)));
            }
            if p.len() < hl {
                return Err(bad(
                    "truncated",
                    base,
                    format!("inner IPv4 header needs {hl} bytes, only {} left", p.len()),
                ));
            }
            if !csum::verify(csum::sum(0, &p[..hl])) {
                return Err(bad(
                    "inner_ip_checksum",
                    base + 10,
                    format!("bad inner IPv4 header checksum 0x{:02x}{:02x}", p[10], p[11]),
                ));
            }
            let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
            if total < hl {
                return Err(bad("inner_ip_length", base + 2, format!("inner total length {total} is below {hl}")));
            }
            if total > p.len() {
                return Err(bad(
                    "truncated",
                    base + 2,
                    format!("inner total length {total} exceeds the {} bytes present", p.len()),
                ));
            }
            Ok(total)
        }
        6 => {
            if p.len() < 40 {
                return Err(bad("truncated", base, format!("inner IPv6 header needs 40 bytes, only {} left", p.len())));
            }
            let total = 40 + usize::from(u16::from_be_bytes([p[4], p[5]]));
            if total > p.len() {
                return Err(bad(
                    "truncated",
                    base + 4,
                    format!("inner IPv6 length {total} exceeds the {} bytes present", p.len()),
                ));
            }
            Ok(total)
        }
        v => Err(bad("inner_ip_version", base, format!("inner IP version {v} is neither 4 nor 6"))),
    }
}

impl Encapsulator {
    /// A node's overlay.
    ///
    /// # Errors
    /// [`Error::Invalid`] when leases overlap or the backend misses what it needs.
    pub fn new(backend: Backend, local: Local, leases: Vec<Lease>, gateway_mac: Option<Mac>) -> Result<Encapsulator> {
        if let Backend::Vxlan { config, .. } = &backend {
            if config.vni > 0x00ff_ffff {
                return Err(Error::invalid("vni", format!("{} does not fit 24 bits", config.vni)));
            }
        }
        Ok(Encapsulator { backend, local, leases: LeaseTable::new(leases)?, gateway_mac })
    }

    /// The backend.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The local node.
    pub fn local(&self) -> &Local {
        &self.local
    }

    /// The remote leases.
    pub fn leases(&self) -> &LeaseTable {
        &self.leases
    }

    fn underlay(&self, lease: &Lease, link: Link) -> Result<Option<(Mac, Mac)>> {
        if link == Link::Ip {
            return Ok(None);
        }
        let src = self
            .local
            .underlay_mac
            .ok_or_else(|| Error::invalid("underlay_mac", "the local NIC's MAC is needed for Ethernet frames"))?;
        let dst = lease.underlay_mac.or(self.gateway_mac).ok_or_else(|| {
            Error::invalid(
                format!("lease {}", lease.subnet),
                format!("no underlay MAC for {} (give the lease one or set a gateway MAC)", lease.public_ip),
            )
        })?;
        Ok(Some((src, dst)))
    }

    fn route(&self, dst: &IpAddr, kind: &'static str, offset: usize, what: &str) -> Result<&Lease> {
        self.leases.lookup(dst).ok_or_else(|| bad(kind, offset, format!("no lease contains {dst}: {what}")))
    }

    /// Appends the frame this node sends for `inner_ip` to `out`. `ip_id` is the outer IPv4
    /// identification, which the kernel picks unpredictably for both backends (a hashed
    /// per-destination counter; checked on 6.18: the UDP backend's DF datagrams do not get 0);
    /// `mark` is the packet mark (used by GBP).
    ///
    /// # Errors
    /// [`Error::Packet`] for an inner packet that is not IP; [`Error::Decap`] for packets the
    /// node drops or answers (`net_unreachable`, `ttl_expired`, `no_route`, `oversize`, ...);
    /// [`Error::Invalid`] for missing configuration.
    pub fn encap_into(&self, inner_ip: &[u8], ip_id: u16, mark: u32, link: Link, out: &mut Vec<u8>) -> Result<()> {
        match &self.backend {
            Backend::Udp(cfg) => {
                udp::check_tun_packet(cfg, inner_ip)?;
                let dst = IpAddr::V4(Ipv4Addr::new(inner_ip[16], inner_ip[17], inner_ip[18], inner_ip[19]));
                let lease = self.route(&dst, "net_unreachable", 16, "flannel answers ICMP net-unreachable")?;
                let underlay = self.underlay(lease, link)?;
                udp::encap_into(cfg, &self.local, lease, underlay, inner_ip, ip_id, out)
            }
            Backend::Vxlan { config, mtu } => {
                let info = inner::parse(inner_ip)?;
                check_mtu(inner_ip, *mtu, "flannel.1")?;
                let at = if info.dst.is_ipv6() { 24 } else { 16 };
                let lease = self.route(&info.dst, "no_route", at, "not routed into the overlay")?;
                let underlay = self.underlay(lease, link)?;
                vxlan::encap_into(config, &self.local, lease, underlay, inner_ip, &info, ip_id, mark, out)
            }
            Backend::HostGw { mtu } => {
                let info = inner::parse(inner_ip)?;
                check_mtu(inner_ip, *mtu, "the external interface")?;
                let at = if info.dst.is_ipv6() { 24 } else { 16 };
                let lease = self.route(&info.dst, "no_route", at, "not routed into the overlay")?;
                if let Some((src, dst)) = self.underlay(lease, link)? {
                    out.extend_from_slice(&dst);
                    out.extend_from_slice(&src);
                    out.extend_from_slice(if info.dst.is_ipv6() { &[0x86, 0xdd] } else { &[0x08, 0x00] });
                }
                out.extend_from_slice(inner_ip);
                Ok(())
            }
        }
    }

    /// [`Encapsulator::encap_into`] into a new buffer.
    ///
    /// # Errors
    /// As [`Encapsulator::encap_into`].
    pub fn encap(&self, inner_ip: &[u8], ip_id: u16, mark: u32, link: Link) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(inner_ip.len() + 70 + 14);
        self.encap_into(inner_ip, ip_id, mark, link, &mut out)?;
        Ok(out)
    }

    /// The ICMP reply flannel's UDP proxy writes back for `inner_ip` when no lease contains its
    /// destination (see [`udp::net_unreachable`]); `None` for other backends, for routable
    /// destinations and where the proxy stays silent.
    pub fn net_unreachable(&self, inner_ip: &[u8]) -> Option<Vec<u8>> {
        let Backend::Udp(cfg) = &self.backend else { return None };
        if udp::check_tun_packet(cfg, inner_ip).is_err() {
            return None;
        }
        let dst = IpAddr::V4(Ipv4Addr::new(inner_ip[16], inner_ip[17], inner_ip[18], inner_ip[19]));
        if self.leases.lookup(&dst).is_some() {
            return None;
        }
        udp::net_unreachable(inner_ip, cfg.tun_addr)
    }

    /// Validates `frame` as this node's receive path does and appends the inner IP packet.
    ///
    /// # Errors
    /// [`Error::Decap`] naming the first failed check and its byte offset in `frame`.
    pub fn decap_into(&self, frame: &[u8], link: Link, out: &mut Vec<u8>) -> Result<()> {
        match &self.backend {
            Backend::Vxlan { config, .. } => vxlan::decap_into(config, &self.local, frame, link, out),
            Backend::Udp(cfg) => udp::decap_into(cfg, &self.local, frame, link, out),
            Backend::HostGw { .. } => {
                let at = match link {
                    Link::Ip => 0,
                    Link::Ethernet => {
                        if frame.len() < 14 {
                            return Err(bad(
                                "truncated",
                                0,
                                format!("Ethernet header needs 14 bytes, only {}", frame.len()),
                            ));
                        }
                        if let Some(own) = self.local.underlay_mac {
                            if frame[0] & 1 == 0 && frame[0..6] != own {
                                return Err(bad("outer_dst_mac", 0, "destination MAC is another host's"));
                            }
                        }
                        match u16::from_be_bytes([frame[12], frame[13]]) {
                            0x0800 | 0x86dd => 14,
                            t => return Err(bad("outer_ethertype", 12, format!("ethertype 0x{t:04x} is not IP"))),
                        }
                    }
                };
                let len = inner_ip_len(&frame[at..], 0, at)?;
                out.extend_from_slice(&frame[at..at + len]);
                Ok(())
            }
        }
    }

    /// [`Encapsulator::decap_into`] into a new buffer.
    ///
    /// # Errors
    /// As [`Encapsulator::decap_into`].
    pub fn decap(&self, frame: &[u8], link: Link) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(frame.len());
        self.decap_into(frame, link, &mut out)?;
        Ok(out)
    }

    /// Encapsulates many packets; the outer IPv4 ID starts at `ip_id` and goes up by one per
    /// frame sent (as the kernel's per-destination counter does for one peer).
    pub fn encap_batch<P: AsRef<[u8]>>(
        &self,
        packets: &[P],
        ip_id: u16,
        mark: u32,
        link: Link,
    ) -> Vec<Result<Vec<u8>>> {
        let mut id = ip_id;
        packets
            .iter()
            .map(|p| {
                let r = self.encap(p.as_ref(), id, mark, link);
                if r.is_ok() {
                    id = id.wrapping_add(1);
                }
                r
            })
            .collect()
    }

    /// Decapsulates many frames.
    pub fn decap_batch<P: AsRef<[u8]>>(&self, frames: &[P], link: Link) -> Vec<Result<Vec<u8>>> {
        frames.iter().map(|f| self.decap(f.as_ref(), link)).collect()
    }
}

fn check_mtu(inner_ip: &[u8], mtu: usize, device: &str) -> Result<()> {
    if mtu != 0 && inner_ip.len() > mtu {
        return Err(bad(
            "oversize",
            2,
            format!(
                "{} bytes exceed the MTU of {device} ({mtu}): the kernel fragments it (or answers fragmentation-needed when DF is set) first",
                inner_ip.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
