//! Evaluating real packet bytes: the verdict plus the packet as it leaves, rewritten in place
//! with incremental checksum updates (as the kernel's NAT manip does).

use crate::error::Result;
use crate::iptables::eval::{Netfilter, Origin};
use crate::iptables::flow::{Flow, Tuple};
use crate::iptables::result::{EvalResult, Verdict};
use crate::packet::nat::{self, Rewrite};
use crate::packet::quoted::Quoted;
use crate::packet::{IpPacket, Layout};

/// The bytes of an evaluated packet after NAT (and, when forwarded, the TTL decrement).
///
/// # Errors
/// [`crate::Error::Packet`]/[`crate::Error::Invalid`] from the rewrite helpers.
pub fn rewrite(packet: &IpPacket, result: &EvalResult) -> Result<IpPacket> {
    let mut p = packet.clone();
    let (o, f) = (&result.original, &result.flow);
    let icmp = f.is_icmp();
    let rw = Rewrite {
        src: (f.src != o.src).then_some(f.src),
        dst: (f.dst != o.dst).then_some(f.dst),
        sport: if icmp {
            (f.icmp_id != o.icmp_id).then_some(f.icmp_id)
        } else {
            (f.has_ports() && f.sport != o.sport).then_some(f.sport)
        },
        dport: (!icmp && f.has_ports() && f.dport != o.dport).then_some(f.dport),
    };
    let (buf, layout) = p.bytes_mut();
    let layout = *layout;
    if let (Some(oq), Some(nq)) = (&o.quote, &f.quote) {
        if oq != nq {
            rewrite_quote(buf, &layout, &oq.tuple, &nq.tuple, nq.has_ports())?;
        }
    }
    nat::rewrite_nat(buf, &layout, &rw)?;
    // A routed packet loses one TTL; a bridged one (physdev_out) is not routed.
    let forwarded = !result.locally_generated
        && !result.local_delivery
        && result.out_interface.is_some()
        && result.physdev_out.is_none();
    if forwarded {
        nat::decrement_ttl(buf, &layout);
    }
    Ok(p)
}

/// Rewrites the packet an ICMP error quotes from tuple `old` to `new`, then the error's
/// checksum (the outer addresses are rewritten afterwards, as the kernel does). A side whose
/// address or port changed is written whole, address and port, as `*_manip_pkt` writes it: for
/// SCTP that recomputes the quoted CRC even when only the address changed.
fn rewrite_quote(buf: &mut [u8], layout: &Layout, old: &Tuple, new: &Tuple, ports: bool) -> Result<()> {
    let q = Quoted::parse(buf, layout)?
        .ok_or_else(|| crate::Error::eval("an ICMP error without its quoted packet cannot be rewritten"))?;
    let src_side = old.src != new.src || old.sport != new.sport;
    let dst_side = old.dst != new.dst || old.dport != new.dport;
    let query = q.icmp_ident(buf).is_some();
    let rw = Rewrite {
        src: src_side.then_some(new.src),
        dst: dst_side.then_some(new.dst),
        // A quoted query has one identifier (the tuple's source port); other protocols two ports.
        sport: ((src_side || (query && dst_side)) && ports).then_some(new.sport),
        dport: (dst_side && ports && !query).then_some(new.dport),
    };
    q.rewrite(buf, layout, &rw)
}

impl Netfilter {
    /// Evaluates a packet and returns it as it leaves the hooks (`None` when it is dropped or
    /// rejected), together with the full result. State is kept as by [`Netfilter::evaluate`].
    ///
    /// # Errors
    /// As [`Netfilter::evaluate`] and [`rewrite`].
    pub fn process(
        &mut self,
        packet: &IpPacket,
        origin: &Origin,
        seed: Option<u64>,
        trace: bool,
    ) -> Result<(Option<IpPacket>, EvalResult)> {
        let flow = Flow::from_packet(packet);
        let result = self.evaluate(&flow, origin, seed, trace)?;
        if result.verdict != Verdict::Accept {
            return Ok((None, result));
        }
        let out = rewrite(packet, &result)?;
        Ok((Some(out), result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iptables::ast::*;
    use crate::iptables::node::{IfaceAddr, Interface, Node};
    use crate::net::Family;
    use crate::packet::{build, Link};

    #[test]
    fn dnat_rewrites_bytes_with_valid_checksums() {
        let to = "10.244.1.5".parse().unwrap();
        let rule = Rule {
            matches: vec![],
            target: Target::Dnat {
                ranges: vec![NatRange { addrs: Some((to, to)), ports: Some(PortRange::single(8080)) }],
                random: false,
                persistent: false,
            },
            counters: None,
            line: 0,
        };
        let chain = Chain {
            name: "PREROUTING".into(),
            policy: Some(Policy::Accept),
            counters: None,
            rules: vec![rule],
            line: 0,
        };
        let rs =
            Ruleset { family: Family::V4, tables: vec![Table { name: TableName::Nat, chains: vec![chain], line: 0 }] };
        let node = Node::new(
            vec![],
            vec![Interface { name: "eth0".into(), addrs: vec![IfaceAddr::parse("192.168.0.2/24").unwrap()] }],
            vec![],
        )
        .unwrap();
        let mut nf = Netfilter::new(rs, node, false).unwrap();
        let bytes = build::tcp("1.2.3.4".parse().unwrap(), "10.96.0.10".parse().unwrap(), 5555, 80)
            .flags(0x02)
            .to_bytes()
            .unwrap();
        let pkt = IpPacket::parse(bytes, Link::Ip).unwrap();
        let (out, res) = nf.process(&pkt, &Origin::Auto, None, false).unwrap();
        let out = out.unwrap();
        assert_eq!(res.dnat_text().as_deref(), Some("10.244.1.5:8080"));
        assert_eq!(out.dst(), to);
        assert_eq!(out.dport(), Some(8080));
        assert_eq!(out.ttl(), pkt.ttl() - 1);
        let (buf, layout) = (out.bytes(), *out.layout());
        assert!(nat::checksums_valid(buf, &layout));
    }
}
