//! ICMP errors about tracked connections: conntrack's RELATED state and NAT's translation of
//! the error and of the packet it quotes.
//!
//! Conntrack (`nf_conntrack_inet_error`) reads the quoted packet's tuple, inverts it and looks
//! the connection up; the error is RELATED to it when the outer destination is the address the
//! connection's tuple in that direction is sent to, else INVALID. NAT
//! (`nf_nat_icmp_reply_translation`) never walks the nat table for such a packet: at each nat
//! hook whose manip the connection needs for this direction, it rewrites the quoted packet with
//! the other direction's tuple (the reverse manip) and the outer addresses as a packet of the
//! error's direction — so the sender of the quoted packet recognises it.

use crate::iptables::ast::TableName;
use crate::iptables::conntrack::{status, Direction, PacketCt};
use crate::iptables::eval::table_slot;
use crate::iptables::nat::Manip;
use crate::iptables::result::{Hook, Verdict};
use crate::iptables::walk::Walk;
use crate::net::Family;

/// Transport bytes NAT needs in the quote to rewrite quoted ports (`*_manip_pkt` make 8 bytes
/// writable; a shorter quote makes the translation fail and the error is dropped).
const MANIP_L4_BYTES: u16 = 8;

/// ICMPv4 redirect: translated only for connections without NAT.
const ICMP_REDIRECT: u8 = 5;

impl Walk<'_> {
    /// The conntrack state of an ICMP error: RELATED to the connection it quotes, or INVALID.
    pub(crate) fn related_ct(&mut self) -> PacketCt {
        let Some(quote) = self.flow.quote else {
            self.note(TableName::Raw, "conntrack: INVALID (ICMP error whose quoted packet has no usable tuple)".into());
            return PacketCt::Invalid;
        };
        let inner = quote.tuple.invert();
        let Some((id, dir, entry)) = self.nf.state.conntrack.lookup(&inner) else {
            self.note(TableName::Raw, format!("conntrack: INVALID (ICMP error about no known connection: {inner})"));
            return PacketCt::Invalid;
        };
        let expected = entry.tuple(dir).dst;
        if expected != self.flow.dst {
            self.note(
                TableName::Raw,
                format!(
                    "conntrack: INVALID (ICMP error to {} but the quoted connection goes to {expected})",
                    self.flow.dst
                ),
            );
            return PacketCt::Invalid;
        }
        self.note(TableName::Raw, format!("conntrack: RELATED to {} (ICMP error)", entry.original));
        PacketCt::Tracked { id: Some(id), dir, entry: entry.clone(), related: true }
    }

    /// NAT at one hook for a RELATED ICMP error (`None`: continue; `Some`: the kernel drops it).
    pub(crate) fn related_nat(&mut self, hook: Hook, manip: Manip) -> Option<Verdict> {
        let PacketCt::Tracked { entry, dir, .. } = &self.ct else { return None };
        let (entry, dir) = (entry.clone(), *dir);
        // The translation verifies the ICMP checksum first, at every nat hook (in PREROUTING
        // conntrack has already found such a packet INVALID; a locally sent one gets here).
        if self.flow.icmp_checksum_bad && self.nf.tables[table_slot(TableName::Nat)].is_some() {
            self.note(TableName::Nat, format!("nat {}: ICMP error with a bad checksum; dropped", hook.chain()));
            return Some(Verdict::Drop);
        }
        let nat_mask = status::SRC_NAT | status::DST_NAT;
        let done_mask = status::SRC_NAT_DONE | status::DST_NAT_DONE;
        if self.flow.family() == Family::V4
            && self.flow.icmp_type == ICMP_REDIRECT
            && (entry.status & done_mask != done_mask || entry.status & nat_mask != 0)
        {
            self.note(
                TableName::Nat,
                format!("nat {}: ICMP redirect about a translated connection; dropped", hook.chain()),
            );
            return Some(Verdict::Drop);
        }
        let mut bit = match manip {
            Manip::Src => status::SRC_NAT,
            Manip::Dst => status::DST_NAT,
        };
        if dir == Direction::Reply {
            bit ^= nat_mask;
        }
        if entry.status & bit == 0 {
            return None;
        }
        let mut quote = self.flow.quote?;
        if quote.has_ports() && quote.l4_len < MANIP_L4_BYTES {
            self.note(
                TableName::Nat,
                format!(
                    "nat {}: the quote holds {} transport bytes, too few to rewrite its ports; dropped",
                    hook.chain(),
                    quote.l4_len
                ),
            );
            return Some(Verdict::Drop);
        }
        // The quoted packet travelled the other way: it gets the reverse manip, from the other
        // direction's tuple; the error itself gets this hook's manip, as a packet of `dir`.
        let other = *entry.tuple(match dir {
            Direction::Original => Direction::Reply,
            Direction::Reply => Direction::Original,
        });
        let icmp_query = quote.is_icmp_query();
        match manip {
            Manip::Dst => {
                quote.tuple.src = other.src;
                if quote.has_ports() {
                    quote.tuple.sport = other.sport;
                }
                self.flow.dst = other.src;
            }
            Manip::Src => {
                quote.tuple.dst = other.dst;
                if quote.has_ports() {
                    quote.tuple.dport = other.dport;
                }
                self.flow.src = other.dst;
            }
        }
        if icmp_query {
            // A quoted query's identifier is always taken from the tuple's source side.
            quote.tuple.sport = other.sport;
            quote.tuple.dport = other.sport;
        }
        self.flow.quote = Some(quote);
        self.note(
            TableName::Nat,
            format!(
                "nat {}: ICMP error related to a translated connection: quote rewritten to {}, error now {} -> {}",
                hook.chain(),
                quote.tuple,
                self.flow.src,
                self.flow.dst
            ),
        );
        None
    }
}
