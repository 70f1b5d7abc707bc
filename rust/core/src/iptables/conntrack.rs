//! Connection tracking: the table of connections, a packet's conntrack state, and the NAT
//! bindings conntrack keeps so that later packets and replies are translated alike.

use std::collections::HashMap;

use crate::iptables::ast::CtStates;
use crate::iptables::flow::{proto, tcp_flags, Flow, Tuple};
use crate::iptables::result::NatKind;

/// `IPS_*` status bits kubenat models (values as in the kernel's `ip_conntrack_status`).
pub mod status {
    /// A reply has been seen.
    pub const SEEN_REPLY: u32 = 1 << 1;
    /// The connection will not be early-dropped (set with the reply).
    pub const ASSURED: u32 = 1 << 2;
    /// Entered into the table.
    pub const CONFIRMED: u32 = 1 << 3;
    /// Source is translated.
    pub const SRC_NAT: u32 = 1 << 4;
    /// Destination is translated.
    pub const DST_NAT: u32 = 1 << 5;
    /// Source manip decided (a binding, possibly the identity, is in place).
    pub const SRC_NAT_DONE: u32 = 1 << 7;
    /// Destination manip decided.
    pub const DST_NAT_DONE: u32 = 1 << 8;
}

/// The direction of a packet relative to its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Same direction as the first packet.
    Original,
    /// Towards the initiator.
    Reply,
}

/// One tracked connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CtEntry {
    /// The tuple of the first packet, as it arrived.
    pub original: Tuple,
    /// The tuple replies carry (after NAT: the translated addresses, inverted).
    pub reply: Tuple,
    /// `IPS_*` bits of [`status`].
    pub status: u32,
    /// The connection mark (`CONNMARK`, `-m connmark`).
    pub mark: u32,
    /// Which NAT targets decided the bindings (bit per [`NatKind`], for reporting later packets).
    pub nat_targets: u8,
}

impl CtEntry {
    /// A fresh entry for a packet's tuple: the reply is the plain inversion until NAT decides.
    pub fn new(original: Tuple) -> CtEntry {
        CtEntry { original, reply: original.invert(), status: 0, mark: 0, nat_targets: 0 }
    }

    /// Remembers that a NAT target decided a binding.
    pub fn mark_nat(&mut self, kind: NatKind) {
        self.nat_targets |= nat_bit(kind);
    }

    /// Remembers that the kernel chose a port at random for this connection.
    pub fn mark_random_port(&mut self) {
        self.nat_targets |= RANDOM_PORT;
    }

    /// Whether a binding's port was chosen at random by the kernel.
    pub fn random_port(&self) -> bool {
        self.nat_targets & RANDOM_PORT != 0
    }

    /// The NAT targets that decided this connection's bindings, in hook order.
    pub fn nat_kinds(&self) -> Vec<NatKind> {
        [NatKind::Dnat, NatKind::Redirect, NatKind::Snat, NatKind::Masquerade]
            .into_iter()
            .filter(|k| self.nat_targets & nat_bit(*k) != 0)
            .collect()
    }

    /// The tuple of a direction.
    pub fn tuple(&self, dir: Direction) -> &Tuple {
        match dir {
            Direction::Original => &self.original,
            Direction::Reply => &self.reply,
        }
    }

    /// Where a packet of direction `dir` is translated to: the inversion of the other direction's tuple.
    pub fn target(&self, dir: Direction) -> Tuple {
        match dir {
            Direction::Original => self.reply.invert(),
            Direction::Reply => self.original.invert(),
        }
    }
}

const RANDOM_PORT: u8 = 0x10;

fn nat_bit(kind: NatKind) -> u8 {
    match kind {
        NatKind::Dnat => 1,
        NatKind::Snat => 2,
        NatKind::Masquerade => 4,
        NatKind::Redirect => 8,
    }
}

/// What conntrack knows about one packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketCt {
    /// `NOTRACK` / `CT --notrack` in raw: no conntrack at all.
    Untracked,
    /// Conntrack refused the packet (bad TCP flags for a new connection, ICMP reply without a
    /// request, an ICMP error about no known connection).
    Invalid,
    /// Part of a connection.
    Tracked {
        /// Index in the table; `None` while the connection is new and unconfirmed.
        id: Option<usize>,
        /// Direction of this packet.
        dir: Direction,
        /// Working copy of the entry (NAT and CONNMARK change it; written back on confirmation).
        entry: CtEntry,
        /// An ICMP error about this connection (`RELATED`; `dir` is the direction of the
        /// packet it quotes, inverted, as the kernel's `IP_CT_RELATED[_REPLY]`).
        related: bool,
    },
}

impl PacketCt {
    /// The `--ctstate` / `--state` bits of this packet (without SNAT/DNAT).
    pub fn state_bits(&self) -> u8 {
        match self {
            PacketCt::Untracked => CtStates::UNTRACKED,
            PacketCt::Invalid => CtStates::INVALID,
            PacketCt::Tracked { related: true, .. } => CtStates::RELATED,
            PacketCt::Tracked { dir, entry, .. } => {
                if *dir == Direction::Reply || entry.status & status::SEEN_REPLY != 0 {
                    CtStates::ESTABLISHED
                } else {
                    CtStates::NEW
                }
            }
        }
    }

    /// The entry, when tracked.
    pub fn entry(&self) -> Option<&CtEntry> {
        match self {
            PacketCt::Tracked { entry, .. } => Some(entry),
            _ => None,
        }
    }

    /// The entry, mutably, when tracked.
    pub fn entry_mut(&mut self) -> Option<&mut CtEntry> {
        match self {
            PacketCt::Tracked { entry, .. } => Some(entry),
            _ => None,
        }
    }

    /// Whether the packet is an ICMP error related to a tracked connection.
    pub fn is_related(&self) -> bool {
        matches!(self, PacketCt::Tracked { related: true, .. })
    }

    /// Direction, when tracked.
    pub fn direction(&self) -> Option<Direction> {
        match self {
            PacketCt::Tracked { dir, .. } => Some(*dir),
            _ => None,
        }
    }

    /// Name of the state as `conntrack -L` / iptables spell it.
    pub fn state_name(&self) -> &'static str {
        match self.state_bits() {
            CtStates::UNTRACKED => "UNTRACKED",
            CtStates::INVALID => "INVALID",
            CtStates::ESTABLISHED => "ESTABLISHED",
            CtStates::RELATED => "RELATED",
            _ => "NEW",
        }
    }
}

/// Whether conntrack accepts a packet as the first one of a new connection.
///
/// TCP follows `nf_conntrack_proto_tcp` with `nf_conntrack_tcp_loose=1` (the default): a SYN
/// starts a connection, a bare ACK is picked up mid-stream, and everything else (SYN+ACK, FIN,
/// RST, no flags, invalid combinations) is INVALID. ICMP: only queries (echo, timestamp, ...)
/// start connections; replies without a known connection are INVALID (errors never get here:
/// they are RELATED to the connection they quote, or INVALID).
pub fn valid_new(flow: &Flow) -> bool {
    if flow.proto == proto::TCP && !flow.is_later_fragment() {
        let f = flow.tcp_flags & !(tcp_flags::PSH | tcp_flags::ECE | tcp_flags::CWR);
        const VALID: [u8; 9] = [
            tcp_flags::SYN,
            tcp_flags::SYN | tcp_flags::URG,
            tcp_flags::SYN | tcp_flags::ACK,
            tcp_flags::RST,
            tcp_flags::RST | tcp_flags::ACK,
            tcp_flags::FIN | tcp_flags::ACK,
            tcp_flags::FIN | tcp_flags::ACK | tcp_flags::URG,
            tcp_flags::ACK,
            tcp_flags::ACK | tcp_flags::URG,
        ];
        if !VALID.contains(&f) {
            return false;
        }
        // get_conntrack_index, then the NONE column of the original-direction state table.
        return if f & tcp_flags::RST != 0 {
            false
        } else if f & tcp_flags::SYN != 0 {
            f & tcp_flags::ACK == 0
        } else if f & tcp_flags::FIN != 0 {
            false
        } else {
            f & tcp_flags::ACK != 0
        };
    }
    if flow.proto == proto::SCTP && !flow.is_later_fragment() {
        // nf_conntrack_proto_sctp: a packet without chunks, or whose chunk cannot start an
        // association (DATA, SACK, ABORT, ...), is INVALID; INIT and HEARTBEAT open one.
        return matches!(flow.sctp_chunk, Some(1 | 4));
    }
    if flow.is_icmp() {
        return match crate::iptables::flow::icmp_query_reply(flow.family(), flow.icmp_type) {
            // Only the request side of a query opens a connection.
            Some(_) => matches!(flow.icmp_type, 8 | 13 | 15 | 17 | 128),
            None => false,
        };
    }
    true
}

/// The connection table.
#[derive(Debug, Clone, Default)]
pub struct Conntrack {
    entries: Vec<CtEntry>,
    index: HashMap<Tuple, (usize, Direction)>,
}

impl Conntrack {
    /// Finds the connection a tuple belongs to and the packet's direction.
    pub fn lookup(&self, t: &Tuple) -> Option<(usize, Direction, &CtEntry)> {
        self.index.get(t).map(|&(id, dir)| (id, dir, &self.entries[id]))
    }

    /// Inserts or updates an entry (the reply tuple of an existing entry does not change).
    pub fn commit(&mut self, id: Option<usize>, entry: CtEntry) -> usize {
        match id {
            Some(id) => {
                self.entries[id] = entry;
                id
            }
            None => {
                let id = self.entries.len();
                // A clashing tuple would be re-mapped by the kernel's NAT; kubenat keeps the first.
                self.index.entry(entry.original).or_insert((id, Direction::Original));
                self.index.entry(entry.reply).or_insert((id, Direction::Reply));
                self.entries.push(entry);
                id
            }
        }
    }

    /// All connections, oldest first.
    pub fn entries(&self) -> &[CtEntry] {
        &self.entries
    }

    /// Number of connections.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets every connection.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.index.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(flags: u8) -> Flow {
        let mut f = Flow::tcp("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), 1000, 80).unwrap();
        f.tcp_flags = flags;
        f
    }

    #[test]
    fn tcp_new_validity() {
        assert!(valid_new(&flow(tcp_flags::SYN)));
        assert!(valid_new(&flow(tcp_flags::ACK)));
        assert!(valid_new(&flow(tcp_flags::ACK | tcp_flags::PSH)));
        assert!(!valid_new(&flow(tcp_flags::SYN | tcp_flags::ACK)));
        assert!(!valid_new(&flow(tcp_flags::RST)));
        assert!(!valid_new(&flow(tcp_flags::FIN | tcp_flags::ACK)));
        assert!(!valid_new(&flow(tcp_flags::SYN | tcp_flags::FIN)));
        assert!(!valid_new(&flow(0)));
    }

    #[test]
    fn sctp_new_validity() {
        let mut f = Flow::new("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), proto::SCTP, 5, 80).unwrap();
        assert!(valid_new(&f), "INIT by default");
        f.sctp_chunk = None;
        assert!(!valid_new(&f));
        f.sctp_chunk = Some(0);
        assert!(!valid_new(&f), "DATA");
        f.sctp_chunk = Some(4);
        assert!(valid_new(&f), "HEARTBEAT");
    }

    #[test]
    fn icmp_new_validity() {
        let mut f = Flow::new("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), proto::ICMP, 5, 0).unwrap();
        assert!(valid_new(&f));
        f.icmp_type = 0;
        assert!(!valid_new(&f));
        f.icmp_type = 3;
        assert!(!valid_new(&f));
    }

    #[test]
    fn table_finds_both_directions() {
        let mut ct = Conntrack::default();
        let t = flow(tcp_flags::SYN).tuple();
        let mut e = CtEntry::new(t);
        e.reply.src = "10.244.1.5".parse().unwrap();
        let id = ct.commit(None, e.clone());
        assert_eq!(ct.lookup(&t).map(|x| (x.0, x.1)), Some((id, Direction::Original)));
        assert_eq!(ct.lookup(&e.reply).map(|x| (x.0, x.1)), Some((id, Direction::Reply)));
        assert_eq!(e.target(Direction::Original).dst, "10.244.1.5".parse::<std::net::IpAddr>().unwrap());
        assert!(ct.lookup(&t.invert()).is_none());
    }
}
