//! The typed form of an iptables-save dump.
//!
//! Values are stored in the kernel's normalised form (what `iptables-save` prints back), so
//! that two spellings the kernel treats alike compare equal: `--or-mark 0x4000` and
//! `--set-xmark 0x4000/0x4000` are the same [`Target::Mark`]; a `--probability` is the 31-bit
//! fraction the kernel keeps. The order of [`Rule::matches`] is iptables-save's: the basic
//! matches (`-s -d -i -o -p -f`) first, then the `-m` modules in the order given in the text.
//! Tables and chains are kept in iptables-save's order too (built-in chains first, then user
//! chains by name), and equality ignores line numbers and counters, so the form kube-proxy
//! feeds to iptables-restore and the form iptables-save prints back compare equal.

use std::net::IpAddr;

use crate::net::{Cidr, Family};

/// A whole dump: one or more tables of one family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    /// `iptables-save` (V4) or `ip6tables-save` (V6).
    pub family: Family,
    /// Tables in iptables-save's order (mangle, security, raw, filter, nat).
    pub tables: Vec<Table>,
}

/// The netfilter tables iptables knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TableName {
    /// `raw`
    Raw,
    /// `mangle`
    Mangle,
    /// `nat`
    Nat,
    /// `filter`
    Filter,
    /// `security`
    Security,
}

/// One `*table` … `COMMIT` section. Equality ignores `line`.
#[derive(Debug, Clone, Eq)]
pub struct Table {
    /// Which table.
    pub name: TableName,
    /// Chains in declaration order (built-in and user-defined alike).
    pub chains: Vec<Chain>,
    /// Line of the `*table` header (1-based; 0 for tables built in code).
    pub line: usize,
}

/// A built-in chain's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// `ACCEPT`
    Accept,
    /// `DROP`
    Drop,
}

/// Packet and byte counters, `[pkts:bytes]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Counters {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// A chain: `:NAME POLICY [p:b]` (built-in) or `:NAME - [p:b]` (user-defined).
/// Equality ignores `counters` and `line`.
#[derive(Debug, Clone, Eq)]
pub struct Chain {
    /// Chain name.
    pub name: String,
    /// `Some` for built-in chains, `None` (`-`) for user chains.
    pub policy: Option<Policy>,
    /// Counters from the declaration line, if given.
    pub counters: Option<Counters>,
    /// Rules in order.
    pub rules: Vec<Rule>,
    /// Line of the `:NAME` declaration (0 when built in code).
    pub line: usize,
}

/// One `-A CHAIN …` rule. Equality ignores `counters` and `line`.
#[derive(Debug, Clone, Eq)]
pub struct Rule {
    /// The matches in the order written; all must match.
    pub matches: Vec<Match>,
    /// What happens when all matches match.
    pub target: Target,
    /// `-c p b` / `[p:b]` counters, if given.
    pub counters: Option<Counters>,
    /// 1-based line in the parsed text (0 when built in code).
    pub line: usize,
}

/// A value that may be inverted with `!`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Neg<T> {
    /// The value.
    pub value: T,
    /// Whether `!` preceded it.
    pub negated: bool,
}

impl<T> Neg<T> {
    /// A plain (not inverted) value.
    pub fn plain(value: T) -> Self {
        Neg { value, negated: false }
    }

    /// Applies the inversion to a raw test result.
    pub fn apply(&self, matched: bool) -> bool {
        matched != self.negated
    }
}

/// An inclusive port range; a single port has `first == last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    /// Lowest port.
    pub first: u16,
    /// Highest port.
    pub last: u16,
}

impl PortRange {
    /// A single port.
    pub fn single(port: u16) -> Self {
        PortRange { first: port, last: port }
    }

    /// Whether `port` is inside.
    pub fn contains(&self, port: u16) -> bool {
        self.first <= port && port <= self.last
    }
}

/// An interface name pattern: exact, or a prefix when written with a trailing `+`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IfacePattern {
    /// The name without the `+`.
    pub name: String,
    /// `eth+` matches every name starting with `eth`.
    pub wildcard: bool,
}

impl IfacePattern {
    /// Whether an interface name matches.
    pub fn matches(&self, iface: &str) -> bool {
        if self.wildcard {
            iface.starts_with(&self.name)
        } else {
            iface == self.name
        }
    }
}

/// Conntrack states (`--ctstate` / `--state`), as a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CtStates(pub u8);

impl CtStates {
    /// `INVALID`
    pub const INVALID: u8 = 1 << 0;
    /// `NEW`
    pub const NEW: u8 = 1 << 1;
    /// `ESTABLISHED`
    pub const ESTABLISHED: u8 = 1 << 2;
    /// `RELATED`
    pub const RELATED: u8 = 1 << 3;
    /// `UNTRACKED`
    pub const UNTRACKED: u8 = 1 << 4;
    /// `SNAT` (conntrack only): the original destination differs from the reply source.
    pub const SNAT: u8 = 1 << 5;
    /// `DNAT` (conntrack only)
    pub const DNAT: u8 = 1 << 6;

    /// Whether any bit of `other` is set.
    pub fn intersects(self, other: u8) -> bool {
        self.0 & other != 0
    }
}

/// `addrtype` address types, as a bit set (`RTN_*` order as iptables prints them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AddrTypes(pub u16);

impl AddrTypes {
    /// `UNSPEC`
    pub const UNSPEC: u16 = 1 << 0;
    /// `UNICAST`
    pub const UNICAST: u16 = 1 << 1;
    /// `LOCAL`
    pub const LOCAL: u16 = 1 << 2;
    /// `BROADCAST`
    pub const BROADCAST: u16 = 1 << 3;
    /// `ANYCAST`
    pub const ANYCAST: u16 = 1 << 4;
    /// `MULTICAST`
    pub const MULTICAST: u16 = 1 << 5;
    /// `BLACKHOLE`
    pub const BLACKHOLE: u16 = 1 << 6;
    /// `UNREACHABLE`
    pub const UNREACHABLE: u16 = 1 << 7;
    /// `PROHIBIT`
    pub const PROHIBIT: u16 = 1 << 8;
    /// `THROW`
    pub const THROW: u16 = 1 << 9;
    /// `NAT`
    pub const NAT: u16 = 1 << 10;
    /// `XRESOLVE`
    pub const XRESOLVE: u16 = 1 << 11;
}

/// Which ports a `multiport` match tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MultiportSide {
    /// `--sports`
    Source,
    /// `--dports`
    Destination,
    /// `--ports` (either)
    Either,
}

/// `statistic` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Statistic {
    /// `--mode random --probability p`; `probability` is the kernel's 31-bit fraction
    /// (p × 2³¹ as iptables computes it), so the exact probability is `probability / 2³¹`.
    Random {
        /// The stored fraction.
        probability: u32,
    },
    /// `--mode nth --every n --packet p`: matches packet `p` of every `n` (counter starts at `p`... see eval).
    Nth {
        /// `--every`
        every: u32,
        /// `--packet`
        packet: u32,
    },
}

/// What a `recent` rule does to / checks against its list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecentCommand {
    /// `--set`
    Set,
    /// `--rcheck`
    Check,
    /// `--update`
    Update,
    /// `--remove`
    Remove,
}

/// The `recent` match.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Recent {
    /// The command.
    pub command: RecentCommand,
    /// `--name` (default `DEFAULT`).
    pub name: String,
    /// `--seconds`
    pub seconds: Option<u32>,
    /// `--reap`
    pub reap: bool,
    /// `--hitcount`
    pub hitcount: Option<u32>,
    /// `--rttl`
    pub rttl: bool,
    /// `--mask` (default all ones).
    pub mask: IpAddr,
    /// `--rdest` when true, `--rsource` (the default) when false.
    pub use_destination: bool,
    /// `!` before the command.
    pub negated: bool,
}

/// An `--icmp-type` / `--icmpv6-type` value; `code: None` matches every code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IcmpType {
    /// Type (255 with `code: None` is `any`).
    pub kind: u8,
    /// Code range; `None` matches all.
    pub code: Option<(u8, u8)>,
}

/// The `conntrack` match; every field is optional and all given ones must match.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ConntrackMatch {
    /// `--ctstate`
    pub state: Option<Neg<CtStates>>,
    /// `--ctproto`
    pub proto: Option<Neg<u8>>,
    /// `--ctorigsrc`
    pub orig_src: Option<Neg<Cidr>>,
    /// `--ctorigdst`
    pub orig_dst: Option<Neg<Cidr>>,
    /// `--ctreplsrc`
    pub repl_src: Option<Neg<Cidr>>,
    /// `--ctrepldst`
    pub repl_dst: Option<Neg<Cidr>>,
    /// `--ctorigsrcport`
    pub orig_src_port: Option<Neg<PortRange>>,
    /// `--ctorigdstport`
    pub orig_dst_port: Option<Neg<PortRange>>,
    /// `--ctreplsrcport`
    pub repl_src_port: Option<Neg<PortRange>>,
    /// `--ctrepldstport`
    pub repl_dst_port: Option<Neg<PortRange>>,
    /// `--ctstatus` bit set (EXPECTED=1, SEEN_REPLY=2, ASSURED=4, CONFIRMED=8).
    pub status: Option<Neg<u8>>,
    /// `--ctdir ORIGINAL` (false) / `REPLY` (true).
    pub direction_reply: Option<bool>,
    /// The addresses of `--ctorigsrc`, `--ctorigdst`, `--ctreplsrc`, `--ctrepldst` as written,
    /// only where they had host bits set: the kernel keeps and prints them (`10.1.2.3/8`), while
    /// matching uses the prefix alone. `None` everywhere for matches built in code.
    pub written_addrs: [Option<IpAddr>; 4],
}

/// `physdev` (bridge port) match, as CNI bridge rules use it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PhysdevMatch {
    /// `--physdev-in`
    pub physdev_in: Option<Neg<IfacePattern>>,
    /// `--physdev-out`
    pub physdev_out: Option<Neg<IfacePattern>>,
    /// `--physdev-is-in`
    pub is_in: Option<bool>,
    /// `--physdev-is-out`
    pub is_out: Option<bool>,
    /// `--physdev-is-bridged`
    pub is_bridged: Option<bool>,
}

/// TCP flags test: `(flags & mask) == comp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpFlags {
    /// Flags examined.
    pub mask: u8,
    /// Flags that must be set among them.
    pub comp: u8,
}

/// One match of a rule. Basic header matches (`-s -d -i -o -p -f`) and `-m` modules alike.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Match {
    /// `-s`
    Source(Neg<Cidr>),
    /// `-d`
    Destination(Neg<Cidr>),
    /// `-i`
    InInterface(Neg<IfacePattern>),
    /// `-o`
    OutInterface(Neg<IfacePattern>),
    /// `-p` (protocol number; `all` is 0).
    Protocol(Neg<u8>),
    /// `-f` / `! -f`: `negated == false` matches second and later fragments.
    Fragment(Neg<()>),
    /// `-m tcp`, explicit or implied by `-p tcp --dport`.
    Tcp {
        /// `--sport`
        sport: Option<Neg<PortRange>>,
        /// `--dport`
        dport: Option<Neg<PortRange>>,
        /// `--tcp-flags` / `--syn`
        flags: Option<Neg<TcpFlags>>,
    },
    /// `-m udp`
    Udp {
        /// `--sport`
        sport: Option<Neg<PortRange>>,
        /// `--dport`
        dport: Option<Neg<PortRange>>,
    },
    /// `-m sctp`
    Sctp {
        /// `--sport`
        sport: Option<Neg<PortRange>>,
        /// `--dport`
        dport: Option<Neg<PortRange>>,
    },
    /// `-m multiport`
    Multiport {
        /// Which ports.
        side: MultiportSide,
        /// Up to 15 ports or ranges.
        ports: Vec<PortRange>,
        /// `!`
        negated: bool,
    },
    /// `-m comment --comment`
    Comment(String),
    /// `-m mark --mark value/mask`: `(mark & mask) == value`.
    Mark(Neg<(u32, u32)>),
    /// `-m connmark --mark value/mask`.
    Connmark(Neg<(u32, u32)>),
    /// `-m addrtype`
    AddrType {
        /// `--src-type`
        src: Option<Neg<AddrTypes>>,
        /// `--dst-type`
        dst: Option<Neg<AddrTypes>>,
        /// `--limit-iface-in`
        limit_iface_in: bool,
        /// `--limit-iface-out`
        limit_iface_out: bool,
    },
    /// `-m statistic`
    Statistic(Neg<Statistic>),
    /// `-m recent` (boxed, like the other large and rare matches, so that every `Match` of a
    /// big ruleset stays small).
    Recent(Box<Recent>),
    /// `-m conntrack` (boxed: most rules have no conntrack match).
    Conntrack(Box<ConntrackMatch>),
    /// `-m state --state`
    State(Neg<CtStates>),
    /// `-m icmp --icmp-type` (IPv4).
    Icmp(Neg<IcmpType>),
    /// `-m icmp6 --icmpv6-type` (IPv6).
    Icmp6(Neg<IcmpType>),
    /// `-m nfacct --nfacct-name`: counts; always matches.
    Nfacct(String),
    /// `-m physdev` (boxed).
    Physdev(Box<PhysdevMatch>),
}

/// `--reject-with` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectWith {
    /// `icmp-net-unreachable`
    IcmpNetUnreachable,
    /// `icmp-host-unreachable`
    IcmpHostUnreachable,
    /// `icmp-port-unreachable` (the default for IPv4)
    IcmpPortUnreachable,
    /// `icmp-proto-unreachable`
    IcmpProtoUnreachable,
    /// `icmp-net-prohibited`
    IcmpNetProhibited,
    /// `icmp-host-prohibited`
    IcmpHostProhibited,
    /// `icmp-admin-prohibited`
    IcmpAdminProhibited,
    /// `tcp-reset`
    TcpReset,
    /// `icmp6-no-route`
    Icmp6NoRoute,
    /// `icmp6-adm-prohibited`
    Icmp6AdmProhibited,
    /// `icmp6-addr-unreachable`
    Icmp6AddrUnreachable,
    /// `icmp6-port-unreachable` (the default for IPv6)
    Icmp6PortUnreachable,
}

/// One `--to-destination` / `--to-source` range: `[ip[-ip]][:port[-port]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NatRange {
    /// Address range, inclusive; `None` keeps the address.
    pub addrs: Option<(IpAddr, IpAddr)>,
    /// Port range; `None` keeps the port.
    pub ports: Option<PortRange>,
}

/// `CONNMARK` operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnmarkOp {
    /// `--set-xmark value/mask`: ctmark = (ctmark & !mask) ^ value.
    SetXmark {
        /// Value.
        value: u32,
        /// Mask.
        mask: u32,
    },
    /// `--save-mark --nfmask --ctmask`: ctmark = (ctmark & !ctmask) ^ (mark & nfmask).
    Save {
        /// nfmask
        nfmask: u32,
        /// ctmask
        ctmask: u32,
    },
    /// `--restore-mark --nfmask --ctmask`: mark = (mark & !nfmask) ^ (ctmark & ctmask).
    Restore {
        /// nfmask
        nfmask: u32,
        /// ctmask
        ctmask: u32,
    },
}

/// `-j LOG` options (kept for rendering; logging has no effect on the verdict).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct LogOptions {
    /// `--log-prefix`
    pub prefix: Option<String>,
    /// `--log-level`
    pub level: Option<u8>,
    /// Remaining flags in iptables-save order (`--log-tcp-sequence`, `--log-uid`, ...).
    pub flags: Vec<String>,
}

/// `-j NFLOG` options.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct NflogOptions {
    /// `--nflog-group`
    pub group: Option<u16>,
    /// `--nflog-prefix`
    pub prefix: Option<String>,
    /// `--nflog-range` / `--nflog-size`
    pub size: Option<u32>,
    /// `--nflog-threshold`
    pub threshold: Option<u16>,
}

/// What a rule does when it matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// No `-j`: the rule only counts.
    None,
    /// `ACCEPT`
    Accept,
    /// `DROP`
    Drop,
    /// `RETURN`
    Return,
    /// `REJECT --reject-with`
    Reject(RejectWith),
    /// `-j CHAIN`
    Jump(String),
    /// `-g CHAIN`
    Goto(String),
    /// `DNAT --to-destination`
    Dnat {
        /// Ranges (iptables allows several on old kernels; one in practice).
        ranges: Vec<NatRange>,
        /// `--random`
        random: bool,
        /// `--persistent`
        persistent: bool,
    },
    /// `SNAT --to-source`
    Snat {
        /// Ranges.
        ranges: Vec<NatRange>,
        /// `--random`
        random: bool,
        /// `--random-fully`
        random_fully: bool,
        /// `--persistent`
        persistent: bool,
    },
    /// `MASQUERADE`
    Masquerade {
        /// `--to-ports`
        ports: Option<PortRange>,
        /// `--random`
        random: bool,
        /// `--random-fully`
        random_fully: bool,
    },
    /// `REDIRECT`
    Redirect {
        /// `--to-ports`
        ports: Option<PortRange>,
        /// `--random`
        random: bool,
    },
    /// `MARK`, normalised to `--set-xmark value/mask`: mark = (mark & !mask) ^ value.
    Mark {
        /// Value.
        value: u32,
        /// Mask.
        mask: u32,
    },
    /// `CONNMARK`
    Connmark(ConnmarkOp),
    /// `LOG`
    Log(LogOptions),
    /// `NFLOG`
    Nflog(NflogOptions),
    /// `NOTRACK` (iptables-save keeps it apart from `CT --notrack`).
    Notrack,
    /// `CT` with its options in iptables-save order (`--notrack`, `--helper H`, `--zone N`,
    /// `--timeout T`); `CT --notrack` is `Ct(vec!["--notrack"])`.
    Ct(Vec<String>),
}

impl Target {
    /// Whether evaluation continues with the next rule after this target fires.
    pub fn continues(&self) -> bool {
        matches!(
            self,
            Target::None
                | Target::Mark { .. }
                | Target::Connmark(_)
                | Target::Log(_)
                | Target::Nflog(_)
                | Target::Notrack
                | Target::Ct(_)
        )
    }
}

impl PartialEq for Table {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.chains == other.chains
    }
}

impl PartialEq for Chain {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.policy == other.policy && self.rules == other.rules
    }
}

impl PartialEq for Rule {
    fn eq(&self, other: &Self) -> bool {
        self.matches == other.matches && self.target == other.target
    }
}

impl Ruleset {
    /// The table of a given name, if the dump has it.
    pub fn table(&self, name: TableName) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }
}

impl Table {
    /// The chain of a given name, if declared.
    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.iter().find(|c| c.name == name)
    }
}
