//! What an evaluation reports: verdict, translated packet, NAT, marks, conntrack, trace.

use std::fmt;
use std::net::IpAddr;

use crate::iptables::ast::{RejectWith, TableName};
use crate::iptables::chance::Probability;
use crate::iptables::conntrack::CtEntry;
use crate::iptables::flow::{endpoint, Flow};

/// The netfilter hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hook {
    /// `PREROUTING`
    Prerouting,
    /// `INPUT`
    Input,
    /// `FORWARD`
    Forward,
    /// `OUTPUT`
    Output,
    /// `POSTROUTING`
    Postrouting,
}

impl Hook {
    /// The built-in chain name of the hook.
    pub fn chain(self) -> &'static str {
        match self {
            Hook::Prerouting => "PREROUTING",
            Hook::Input => "INPUT",
            Hook::Forward => "FORWARD",
            Hook::Output => "OUTPUT",
            Hook::Postrouting => "POSTROUTING",
        }
    }

    /// The hook of a built-in chain name.
    pub fn from_chain(name: &str) -> Option<Hook> {
        Some(match name {
            "PREROUTING" => Hook::Prerouting,
            "INPUT" => Hook::Input,
            "FORWARD" => Hook::Forward,
            "OUTPUT" => Hook::Output,
            "POSTROUTING" => Hook::Postrouting,
            _ => return None,
        })
    }
}

/// iptables' name of a table.
pub fn table_name(t: TableName) -> &'static str {
    match t {
        TableName::Raw => "raw",
        TableName::Mangle => "mangle",
        TableName::Nat => "nat",
        TableName::Filter => "filter",
        TableName::Security => "security",
    }
}

/// The final fate of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Delivered locally or sent on.
    Accept,
    /// Silently discarded (a DROP rule or policy, no route, or a NAT that found no address).
    Drop,
    /// Discarded with an ICMP error or TCP reset.
    Reject(RejectWith),
}

impl Verdict {
    /// `ACCEPT`, `DROP` or `REJECT`.
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Accept => "ACCEPT",
            Verdict::Drop => "DROP",
            Verdict::Reject(_) => "REJECT",
        }
    }

    /// For REJECT: the `--reject-with` name iptables-save prints (`icmp-port-unreachable`,
    /// `tcp-reset`, `icmp6-adm-prohibited`, ...); None otherwise.
    pub fn reject_with(&self) -> Option<&'static str> {
        match self {
            Verdict::Reject(with) => Some(crate::iptables::names::reject_name(*with)),
            _ => None,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A kind of address translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NatKind {
    /// `DNAT`
    Dnat,
    /// `SNAT`
    Snat,
    /// `MASQUERADE`
    Masquerade,
    /// `REDIRECT`
    Redirect,
}

impl NatKind {
    /// The target's name.
    pub fn name(&self) -> &'static str {
        match self {
            NatKind::Dnat => "DNAT",
            NatKind::Snat => "SNAT",
            NatKind::Masquerade => "MASQUERADE",
            NatKind::Redirect => "REDIRECT",
        }
    }
}

/// One rule (or policy, or note) visited during a walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceStep {
    /// Hook being traversed.
    pub hook: Hook,
    /// Table.
    pub table: TableName,
    /// Chain of the rule (the built-in chain for a policy; empty for a note).
    pub chain: String,
    /// 1-based rule number in its chain; 0 for a policy or a note.
    pub rule: usize,
    /// Line in the parsed dump (0 when unknown).
    pub line: usize,
    /// The rule's text when known (else a short description).
    pub text: String,
    /// Whether the rule matched (always true for policies and notes).
    pub matched: bool,
    /// What happened: `continue`, `jump KUBE-SERVICES`, `DNAT 10.0.0.1:80`, `policy ACCEPT`, ...
    pub action: String,
    /// Nesting depth (0 in the built-in chain).
    pub depth: usize,
}

impl fmt::Display for TraceStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let indent = "  ".repeat(self.depth);
        if self.chain.is_empty() {
            return write!(f, "{indent}{}: {}", table_name(self.table), self.action);
        }
        let mark = if self.matched { "✓" } else { "·" };
        if self.rule == 0 {
            write!(f, "{indent}{}:{} {}", table_name(self.table), self.chain, self.action)
        } else {
            write!(
                f,
                "{indent}{mark} {}:{}:{} {} → {}",
                table_name(self.table),
                self.chain,
                self.rule,
                self.text,
                self.action
            )
        }
    }
}

/// Everything one walk of one packet produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalResult {
    /// The final verdict.
    pub verdict: Verdict,
    /// The packet as it came in.
    pub original: Flow,
    /// The packet after NAT (as far as it got).
    pub flow: Flow,
    /// NAT applied to this packet, in order (for later packets of a connection: the reused bindings).
    pub nat: Vec<NatKind>,
    /// Destination after DNAT/REDIRECT, when the destination changed.
    pub dnat: Option<(IpAddr, u16)>,
    /// Source after SNAT/MASQUERADE, when the source was translated.
    pub snat: Option<(IpAddr, u16)>,
    /// Whether MASQUERADE chose the source.
    pub masquerade: bool,
    /// Whether the kernel picks a translated port at random (`--random`, `--random-fully`):
    /// the reported port is then the original one, not a prediction.
    pub random_port: bool,
    /// Translated fields (`src`, `dst`, `sport`, `dport`, `icmp_id`) the kernel chooses itself
    /// for this packet's new connection: at random or by a hash of the tuple. The reported value
    /// of such a field is one of its span, not a prediction.
    pub chosen: Vec<(&'static str, crate::iptables::nat::Chosen)>,
    /// The packet mark at the end.
    pub mark: u32,
    /// Conntrack state of the packet (`NEW`, `ESTABLISHED`, `RELATED`, `INVALID`, `UNTRACKED`).
    pub ct_state: &'static str,
    /// The connection (after this packet), when tracked.
    pub conntrack: Option<CtEntry>,
    /// Interface the packet arrived on (`None` when generated locally).
    pub in_interface: Option<String>,
    /// Interface it left by (`lo` for local-to-local traffic; `None` when delivered locally or dropped before routing).
    pub out_interface: Option<String>,
    /// Whether it was delivered to a local socket.
    pub local_delivery: bool,
    /// Whether it was generated on the node.
    pub locally_generated: bool,
    /// The bridge port it arrived on (`in_interface` is then the bridge).
    pub physdev_in: Option<String>,
    /// The bridge port it left by when it was bridged rather than routed (`out_interface` is
    /// then the bridge; no TTL decrement).
    pub physdev_out: Option<String>,
    /// Every rule visited, in order (empty when tracing is off).
    pub trace: Vec<TraceStep>,
}

impl EvalResult {
    /// `ip:port` of the DNAT destination, if any.
    pub fn dnat_text(&self) -> Option<String> {
        self.dnat.map(|(a, p)| endpoint(a, p))
    }

    /// `ip:port` of the SNAT source, if any.
    pub fn snat_text(&self) -> Option<String> {
        self.snat.map(|(a, p)| endpoint(a, p))
    }
}

/// One possible result with its exact probability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Exact probability of this branch.
    pub probability: Probability,
    /// The result along this branch.
    pub result: EvalResult,
}
