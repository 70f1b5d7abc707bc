//! One packet's walk through the hooks: tables in kernel order, routing, conntrack and NAT
//! bindings, and the first-match chain walker (an explicit stack, no recursion).

use std::collections::HashMap;
use std::net::IpAddr;

use crate::error::{Error, Result};
use crate::iptables::ast::{ConnmarkOp, NatRange, Policy, Rule, TableName, Target};
use crate::iptables::chance::Chooser;
use crate::iptables::conntrack::{status, valid_new, CtEntry, PacketCt};
use crate::iptables::eval::{hook_slot, table_slot, Netfilter, RuleKey, State, MAX_VISITS};
use crate::iptables::flow::{endpoint, Flow};
use crate::iptables::matchers::is_header_match;
use crate::iptables::nat::{self, Binding, Manip};
use crate::iptables::node::LOOPBACK;
use crate::iptables::recent::RecentList;
use crate::iptables::result::{EvalResult, Hook, NatKind, TraceStep, Verdict};

/// The order of tables at each hook (kernel priorities), with the NAT manip where nat runs.
fn tables_at(hook: Hook) -> &'static [TableName] {
    use TableName::*;
    match hook {
        Hook::Prerouting => &[Raw, Mangle, Nat],
        Hook::Input => &[Mangle, Filter, Security, Nat],
        Hook::Forward => &[Mangle, Filter, Security],
        Hook::Output => &[Raw, Mangle, Nat, Filter, Security],
        Hook::Postrouting => &[Mangle, Nat],
    }
}

/// State changes of one walk, applied when the packet's evaluation is kept.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    recent: HashMap<String, RecentList>,
    nth: HashMap<RuleKey, u32>,
    conntrack: Option<(Option<usize>, CtEntry)>,
}

impl Effects {
    pub(crate) fn apply(self, state: &mut State) {
        state.recent.extend(self.recent);
        state.nth.extend(self.nth);
        if let Some((id, entry)) = self.conntrack {
            state.conntrack.commit(id, entry);
        }
    }
}

/// How a table's walk ended.
pub(crate) enum TableEnd {
    Accept,
    Stop(Verdict),
    Nat(Binding),
}

/// One packet's walk through the hooks.
pub(crate) struct Walk<'a> {
    pub(crate) nf: &'a Netfilter,
    pub(crate) chooser: &'a mut Chooser,
    pub(crate) flow: Flow,
    pub(crate) mark: u32,
    pub(crate) in_iface: Option<String>,
    pub(crate) out_iface: Option<String>,
    pub(crate) ct: PacketCt,
    ct_attached: bool,
    pub(crate) now_ms: i64,
    recent: HashMap<String, RecentList>,
    nth: HashMap<RuleKey, u32>,
    hook: Hook,
    notrack: bool,
    nat: Vec<NatKind>,
    /// Fields of this packet's new bindings that the kernel chooses itself.
    chosen: Vec<(&'static str, nat::Chosen)>,
    trace: Option<Vec<TraceStep>>,
    visits: usize,
    commit: bool,
    local_delivery: bool,
    routed_out: Option<String>,
    /// The bridge port the packet arrived on (`br_netfilter` knows it: `-m physdev`).
    pub(crate) physdev_in: Option<String>,
    /// The bridge port a bridged packet leaves by (known from FORWARD on).
    pub(crate) physdev_out: Option<String>,
    /// Bridged between two ports of a bridge rather than routed.
    bridged: bool,
}

impl<'a> Walk<'a> {
    /// A fresh walk of `flow` arriving on `in_iface` (`None`: generated locally).
    pub(crate) fn new(
        nf: &'a Netfilter,
        chooser: &'a mut Chooser,
        flow: Flow,
        in_iface: Option<String>,
        trace: bool,
    ) -> Walk<'a> {
        Walk {
            nf,
            chooser,
            flow,
            mark: 0,
            in_iface,
            out_iface: None,
            ct: PacketCt::Invalid,
            ct_attached: false,
            now_ms: nf.state.now_ms,
            recent: HashMap::new(),
            nth: HashMap::new(),
            hook: Hook::Prerouting,
            notrack: false,
            nat: Vec::new(),
            chosen: Vec::new(),
            trace: trace.then(Vec::new),
            visits: 0,
            commit: false,
            local_delivery: false,
            routed_out: None,
            physdev_in: None,
            physdev_out: None,
            bridged: false,
        }
    }

    /// The working copy of a `recent` list (copied from the node's state on first use).
    pub(crate) fn recent_list(&mut self, name: &str) -> &mut RecentList {
        let nf = self.nf;
        self.recent.entry(name.to_string()).or_insert_with(|| nf.state.recent.get(name).cloned().unwrap_or_default())
    }

    pub(crate) fn nth_counter(&self, key: RuleKey) -> Option<u32> {
        self.nth.get(&key).or_else(|| self.nf.state.nth.get(&key)).copied()
    }

    pub(crate) fn set_nth_counter(&mut self, key: RuleKey, value: u32) {
        self.nth.insert(key, value);
    }

    pub(crate) fn note(&mut self, table: TableName, text: String) {
        let hook = self.hook;
        if let Some(t) = &mut self.trace {
            t.push(TraceStep {
                hook,
                table,
                chain: String::new(),
                rule: 0,
                line: 0,
                text: String::new(),
                matched: true,
                action: text,
                depth: 0,
            });
        }
    }

    fn step(&mut self, key: RuleKey, matched: bool, action: impl FnOnce() -> String, depth: usize) {
        if self.trace.is_none() {
            return;
        }
        let (t, c, r) = key;
        let table = &self.nf.ruleset.tables[t];
        let step = TraceStep {
            hook: self.hook,
            table: table.name,
            chain: table.chains[c].name.clone(),
            rule: r + 1,
            line: table.chains[c].rules[r].line,
            text: self.nf.rule_text(t, c, r),
            matched,
            action: action(),
            depth,
        };
        if let Some(tr) = &mut self.trace {
            tr.push(step);
        }
    }

    fn policy_step(&mut self, t: usize, chain: usize, policy: Policy) {
        let hook = self.hook;
        if let Some(tr) = &mut self.trace {
            let table = &self.nf.ruleset.tables[t];
            let name = match policy {
                Policy::Accept => "ACCEPT",
                Policy::Drop => "DROP",
            };
            tr.push(TraceStep {
                hook,
                table: table.name,
                chain: table.chains[chain].name.clone(),
                rule: 0,
                line: table.chains[chain].line,
                text: String::new(),
                matched: true,
                action: format!("policy {name}"),
                depth: 0,
            });
        }
    }

    /// A packet arriving on an interface.
    pub(crate) fn arriving_path(&mut self) -> Result<Verdict> {
        let addressed_to = self.flow.dst;
        if let Some(v) = self.hook_pass(Hook::Prerouting, true)? {
            return Ok(v);
        }
        if let Some(port) = self.bridge_port_out()? {
            return self.bridged_path(port, addressed_to);
        }
        if self.in_iface.as_deref() != Some(LOOPBACK) {
            if let Some(why) = self.nf.node.martian_arriving(&self.flow.src, &self.flow.dst) {
                self.note(TableName::Filter, format!("routing: {why}; dropped"));
                return Ok(Verdict::Drop);
            }
        }
        if self.nf.node.delivers_locally(&self.flow.dst) {
            self.local_delivery = true;
            self.out_iface = None;
            if let Some(v) = self.hook_pass(Hook::Input, true)? {
                return Ok(v);
            }
            self.confirm();
            return Ok(Verdict::Accept);
        }
        let Some(out) = self.nf.node.route(&self.flow.dst).map(str::to_string) else {
            self.note(TableName::Filter, format!("routing: no route to {}; dropped", self.flow.dst));
            return Ok(Verdict::Drop);
        };
        if self.flow.ttl <= 1 {
            self.note(TableName::Filter, "routing: TTL exceeded while forwarding; dropped (ICMP time exceeded)".into());
            return Ok(Verdict::Drop);
        }
        // ip_forward decrements the TTL before the FORWARD hook.
        self.flow.ttl -= 1;
        self.out_iface = Some(out.clone());
        self.routed_out = Some(out);
        if let Some(v) = self.hook_pass(Hook::Forward, true)? {
            return Ok(v);
        }
        if let Some(v) = self.hook_pass(Hook::Postrouting, true)? {
            return Ok(v);
        }
        self.confirm();
        Ok(Verdict::Accept)
    }

    /// For a packet that arrived on a bridge port: the port it is bridged to, when its
    /// destination (after DNAT) is a host on the same bridge; `None` when it is routed.
    fn bridge_port_out(&self) -> Result<Option<String>> {
        let (Some(_), Some(bridge)) = (&self.physdev_in, self.in_iface.as_deref()) else { return Ok(None) };
        let node = &self.nf.node;
        let dst = self.flow.dst;
        // Without DNAT the frame went to the host itself when that is on the bridge; after DNAT
        // br_netfilter re-routes it and bridges it when the new route leaves by the same bridge.
        if node.delivers_locally(&dst) || node.route(&dst) != Some(bridge) {
            return Ok(None);
        }
        match node.port_for(bridge, &dst) {
            Some(p) => Ok(Some(p.to_string())),
            None => Err(Error::invalid(
                "bridges",
                format!("{dst} is bridged on {bridge}, but no port of {bridge} lists it among its hosts"),
            )),
        }
    }

    /// A packet bridged between two ports (`br_netfilter`): FORWARD and POSTROUTING see the
    /// bridge as both devices; no routing, so no TTL decrement.
    fn bridged_path(&mut self, port: String, addressed_to: IpAddr) -> Result<Verdict> {
        if self.flow.dst != addressed_to {
            // DNAT made br_netfilter route the packet (ip_route_input) before bridging it.
            if let Some(why) = self.nf.node.martian_arriving(&self.flow.src, &self.flow.dst) {
                self.note(TableName::Filter, format!("routing: {why}; dropped"));
                return Ok(Verdict::Drop);
            }
        }
        self.bridged = true;
        self.out_iface = self.in_iface.clone();
        self.routed_out = self.in_iface.clone();
        self.physdev_out = Some(port);
        if let Some(v) = self.hook_pass(Hook::Forward, true)? {
            return Ok(v);
        }
        if let Some(v) = self.hook_pass(Hook::Postrouting, true)? {
            return Ok(v);
        }
        self.confirm();
        Ok(Verdict::Accept)
    }

    /// A packet generated by a local process.
    pub(crate) fn local_path(&mut self) -> Result<Verdict> {
        // The socket's route decides the output device the OUTPUT hook sees.
        let first_route = if self.nf.node.delivers_locally(&self.flow.dst) {
            Some(LOOPBACK.to_string())
        } else {
            self.nf.node.route(&self.flow.dst).map(str::to_string)
        };
        let Some(first_out) = first_route else {
            self.note(
                TableName::Filter,
                format!("routing: no route to {} (the socket gets ENETUNREACH)", self.flow.dst),
            );
            return Ok(Verdict::Drop);
        };
        if first_out != LOOPBACK {
            if let Some(why) = self.nf.node.martian_leaving(&self.flow.src) {
                self.note(TableName::Filter, format!("routing: {why}; the socket gets EINVAL"));
                return Ok(Verdict::Drop);
            }
        }
        self.out_iface = Some(first_out);
        if let Some(v) = self.hook_pass(Hook::Output, true)? {
            return Ok(v);
        }
        // Rerouting after nat/mangle OUTPUT may change the device.
        let to_self = self.nf.node.delivers_locally(&self.flow.dst);
        let out =
            if to_self { Some(LOOPBACK.to_string()) } else { self.nf.node.route(&self.flow.dst).map(str::to_string) };
        let Some(out) = out else {
            self.note(TableName::Filter, format!("rerouting: no route to {}; dropped", self.flow.dst));
            return Ok(Verdict::Drop);
        };
        if out != LOOPBACK {
            if let Some(why) = self.nf.node.martian_leaving(&self.flow.src) {
                self.note(TableName::Filter, format!("rerouting: {why}; dropped"));
                return Ok(Verdict::Drop);
            }
        }
        self.out_iface = Some(out.clone());
        self.routed_out = Some(out);
        if let Some(v) = self.hook_pass(Hook::Postrouting, true)? {
            return Ok(v);
        }
        self.confirm();
        if !to_self {
            return Ok(Verdict::Accept);
        }
        // Looped back through lo: conntrack is already attached and both NAT bindings are set.
        self.local_delivery = true;
        self.in_iface = Some(LOOPBACK.to_string());
        self.out_iface = None;
        if let Some(v) = self.hook_pass(Hook::Prerouting, false)? {
            return Ok(v);
        }
        if let Some(v) = self.hook_pass(Hook::Input, false)? {
            return Ok(v);
        }
        Ok(Verdict::Accept)
    }

    /// Runs the tables of one hook; `Some(verdict)` when the packet stops here.
    fn hook_pass(&mut self, hook: Hook, with_nat: bool) -> Result<Option<Verdict>> {
        self.hook = hook;
        for &table in tables_at(hook) {
            if table == TableName::Nat {
                if with_nat {
                    let manip = if matches!(hook, Hook::Prerouting | Hook::Output) { Manip::Dst } else { Manip::Src };
                    if let Some(v) = self.nat_hook(hook, manip)? {
                        return Ok(Some(v));
                    }
                }
            } else if let Some(t) = self.nf.tables[table_slot(table)] {
                match self.run_table(t, hook)? {
                    TableEnd::Accept => {}
                    TableEnd::Stop(v) => return Ok(Some(v)),
                    TableEnd::Nat(_) => {
                        return Err(Error::eval(format!("NAT target outside the nat table at {}", hook.chain())));
                    }
                }
            }
            if table == TableName::Raw && matches!(hook, Hook::Prerouting | Hook::Output) {
                self.conntrack_in();
            }
        }
        Ok(None)
    }

    /// Conntrack's lookup (priority -200, right after raw).
    fn conntrack_in(&mut self) {
        if self.ct_attached {
            return;
        }
        self.ct_attached = true;
        if self.notrack {
            self.ct = PacketCt::Untracked;
            return;
        }
        // ICMP first, as nf_conntrack_in does: the checksum (in PREROUTING only), then errors,
        // which are RELATED to the connection they quote or INVALID.
        if self.flow.is_icmp() && self.flow.icmp_checksum_bad && self.hook == Hook::Prerouting {
            self.ct = PacketCt::Invalid;
            self.note(TableName::Raw, "conntrack: INVALID (bad ICMP checksum, nf_conntrack_checksum=1)".into());
            return;
        }
        if self.flow.is_icmp_error() {
            self.ct = self.related_ct();
            return;
        }
        let t = self.flow.tuple();
        if let Some((id, dir, e)) = self.nf.state.conntrack.lookup(&t) {
            let mut entry = e.clone();
            if dir == crate::iptables::conntrack::Direction::Reply {
                entry.status |= status::SEEN_REPLY | status::ASSURED;
            }
            self.ct = PacketCt::Tracked { id: Some(id), dir, entry, related: false };
            return;
        }
        if !valid_new(&self.flow) {
            self.ct = PacketCt::Invalid;
            self.note(TableName::Raw, "conntrack: INVALID (not a valid first packet of a connection)".into());
            return;
        }
        self.ct = PacketCt::Tracked {
            id: None,
            dir: crate::iptables::conntrack::Direction::Original,
            entry: CtEntry::new(t),
            related: false,
        };
    }

    /// Marks the connection for insertion (the packet left POSTROUTING or INPUT).
    fn confirm(&mut self) {
        if let PacketCt::Tracked { entry, .. } = &mut self.ct {
            entry.status |= status::CONFIRMED;
            self.commit = true;
        }
    }

    /// The nat table at a hook: walked only for a connection's first packet; every packet of a
    /// tracked connection then gets the connection's translation for this side.
    fn nat_hook(&mut self, hook: Hook, manip: Manip) -> Result<Option<Verdict>> {
        if self.ct.is_related() {
            return Ok(self.related_nat(hook, manip));
        }
        let done = nat::done_bit(manip);
        let (needs_walk, tracked) = match &self.ct {
            PacketCt::Tracked { entry, .. } => (entry.status & done == 0, true),
            _ => (false, false),
        };
        if !tracked {
            if self.nf.tables[table_slot(TableName::Nat)].is_some() {
                let why = if matches!(self.ct, PacketCt::Untracked) { "untracked" } else { "invalid" };
                self.note(TableName::Nat, format!("nat {}: skipped, packet is {why}", hook.chain()));
            }
            return Ok(None);
        }
        if needs_walk {
            if let Some(t) = self.nf.tables[table_slot(TableName::Nat)] {
                match self.run_table(t, hook)? {
                    TableEnd::Accept => {}
                    TableEnd::Stop(v) => return Ok(Some(v)),
                    TableEnd::Nat(b) => {
                        let has_ports = self.flow.has_ports() || self.flow.is_icmp();
                        if let PacketCt::Tracked { entry, .. } = &mut self.ct {
                            nat::bind(entry, manip, &b, has_ports);
                            entry.mark_nat(b.kind);
                            if b.random_port() && has_ports {
                                entry.mark_random_port();
                            }
                        }
                        let (addr_field, port_field) = match manip {
                            Manip::Dst => ("dst", "dport"),
                            Manip::Src => ("src", "sport"),
                        };
                        if let Some((lo, hi)) = b.addr_span {
                            self.chosen.push((addr_field, nat::Chosen::Addr(lo, hi)));
                        }
                        if let Some((lo, hi)) = b.port_span {
                            let field = if self.flow.is_icmp() { "icmp_id" } else { port_field };
                            self.chosen.push((field, nat::Chosen::Port(lo, hi)));
                        }
                        self.nat.push(b.kind);
                    }
                }
            }
        } else if self.nf.tables[table_slot(TableName::Nat)].is_some() {
            self.note(
                TableName::Nat,
                format!("nat {}: connection already tracked, its binding is reused", hook.chain()),
            );
        }
        if let PacketCt::Tracked { entry, dir, .. } = &mut self.ct {
            entry.status |= done;
            let target = entry.target(*dir);
            let mut t = self.flow.tuple();
            match manip {
                Manip::Dst => {
                    t.dst = target.dst;
                    t.dport = target.dport;
                }
                Manip::Src => {
                    t.src = target.src;
                    t.sport = target.sport;
                }
            }
            self.flow.set_tuple(&t);
        }
        Ok(None)
    }

    /// Whether every match of a rule holds (header matches first, as `ip_packet_match` does,
    /// then the modules in the order written, stopping at the first that fails).
    fn rule_matches(&mut self, rule: &Rule, key: RuleKey) -> Result<bool> {
        for m in rule.matches.iter().filter(|m| is_header_match(m)) {
            if !self.test(m, key)? {
                return Ok(false);
            }
        }
        for m in rule.matches.iter().filter(|m| !is_header_match(m)) {
            if !self.test(m, key)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Walks one table's built-in chain for the current hook.
    fn run_table(&mut self, t: usize, hook: Hook) -> Result<TableEnd> {
        let nf = self.nf;
        let Some(base) = nf.hook_chain[t][hook_slot(hook)] else {
            return Ok(TableEnd::Accept);
        };
        let table = &nf.ruleset.tables[t];
        let policy = table.chains[base].policy.unwrap_or(Policy::Accept);
        let policy_end = |p: Policy| match p {
            Policy::Accept => TableEnd::Accept,
            Policy::Drop => TableEnd::Stop(Verdict::Drop),
        };
        let mut stack: Vec<(usize, usize)> = vec![(base, 0)];
        loop {
            let depth = stack.len() - 1;
            let Some(&mut (ci, ref mut next)) = stack.last_mut() else {
                return Ok(TableEnd::Accept);
            };
            let ri = *next;
            let chain = &table.chains[ci];
            if ri >= chain.rules.len() {
                if stack.len() == 1 {
                    self.policy_step(t, base, policy);
                    return Ok(policy_end(policy));
                }
                stack.pop();
                continue;
            }
            *next += 1;
            self.visits += 1;
            if self.visits > MAX_VISITS {
                return Err(Error::Limit {
                    what: "rules visited for one packet",
                    limit: MAX_VISITS,
                    actual: self.visits,
                });
            }
            let rule = &chain.rules[ri];
            let key = (t, ci, ri);
            if !self.rule_matches(rule, key)? {
                self.step(key, false, || "no match".into(), depth);
                continue;
            }
            match &rule.target {
                Target::Accept => {
                    self.step(key, true, || "ACCEPT".into(), depth);
                    return Ok(TableEnd::Accept);
                }
                Target::Drop => {
                    self.step(key, true, || "DROP".into(), depth);
                    return Ok(TableEnd::Stop(Verdict::Drop));
                }
                Target::Reject(with) => {
                    self.step(key, true, || "REJECT".into(), depth);
                    return Ok(TableEnd::Stop(Verdict::Reject(*with)));
                }
                Target::Return => {
                    self.step(key, true, || "RETURN".into(), depth);
                    if stack.len() == 1 {
                        self.policy_step(t, base, policy);
                        return Ok(policy_end(policy));
                    }
                    stack.pop();
                }
                Target::Jump(name) => {
                    let to = nf.targets[t][ci][ri].ok_or_else(|| Error::eval(format!("unresolved jump to {name}")))?;
                    self.step(key, true, || format!("jump {name}"), depth);
                    stack.push((to, 0));
                }
                Target::Goto(name) => {
                    let to = nf.targets[t][ci][ri].ok_or_else(|| Error::eval(format!("unresolved goto to {name}")))?;
                    self.step(key, true, || format!("goto {name}"), depth);
                    if let Some(top) = stack.last_mut() {
                        *top = (to, 0);
                    }
                }
                Target::Mark { value, mask } => {
                    self.mark = (self.mark & !mask) ^ value;
                    let m = self.mark;
                    self.step(key, true, || format!("MARK set 0x{value:x}/0x{mask:x} → mark 0x{m:x}"), depth);
                }
                Target::Connmark(op) => {
                    let mark = self.mark;
                    let mut new_mark = mark;
                    if let Some(e) = self.ct.entry_mut() {
                        match *op {
                            ConnmarkOp::SetXmark { value, mask } => e.mark = (e.mark & !mask) ^ value,
                            ConnmarkOp::Save { nfmask, ctmask } => e.mark = (e.mark & !ctmask) ^ (mark & nfmask),
                            ConnmarkOp::Restore { nfmask, ctmask } => new_mark = (mark & !nfmask) ^ (e.mark & ctmask),
                        }
                    }
                    self.mark = new_mark;
                    self.step(key, true, || "CONNMARK".into(), depth);
                }
                Target::Log(_) => self.step(key, true, || "LOG".into(), depth),
                Target::Nflog(_) => self.step(key, true, || "NFLOG".into(), depth),
                Target::None => self.step(key, true, || "count".into(), depth),
                Target::Ct(opts) if !opts.iter().any(|o| o == "--notrack") => {
                    self.step(key, true, || "CT".into(), depth);
                }
                Target::Ct(_) | Target::Notrack => {
                    // Effective only before conntrack has looked at the packet (raw table).
                    if !self.ct_attached {
                        self.notrack = true;
                    }
                    self.step(key, true, || "NOTRACK".into(), depth);
                }
                Target::Dnat { .. } | Target::Snat { .. } | Target::Masquerade { .. } | Target::Redirect { .. } => {
                    return match self.binding(&rule.target, hook, rule.line)? {
                        Some(b) => {
                            let text = format!("{} → {}", b.kind.name(), endpoint(b.addr, b.port));
                            self.step(key, true, || text, depth);
                            Ok(TableEnd::Nat(b))
                        }
                        None => {
                            self.step(key, true, || "no address to translate to: DROP".into(), depth);
                            Ok(TableEnd::Stop(Verdict::Drop))
                        }
                    };
                }
            }
        }
    }

    /// The translation a NAT target picks for the current packet (`None`: the kernel drops it).
    fn binding(&self, target: &Target, hook: Hook, line: usize) -> Result<Option<Binding>> {
        let f = &self.flow;
        let has_ports = f.has_ports();
        let (sport, dport) = if f.is_icmp() { (f.icmp_id, f.icmp_id) } else { (f.sport, f.dport) };
        let l4 = if f.is_icmp() {
            nat::L4::Icmp
        } else if has_ports {
            nat::L4::Ported
        } else {
            nat::L4::Other
        };
        let wrong_hook = |name: &str| {
            Err(Error::eval(format!(
                "line {line}: {name} is not valid in nat {} (the kernel refuses this ruleset)",
                hook.chain()
            )))
        };
        Ok(match target {
            Target::Dnat { ranges, random, .. } => {
                if !matches!(hook, Hook::Prerouting | Hook::Output) {
                    return wrong_hook("DNAT");
                }
                let mut b = nat::from_range(NatKind::Dnat, ranges.first(), f.dst, dport, has_ports);
                (b.addr_span, b.port_span) = nat::spans(NatKind::Dnat, ranges.first(), f.dst, dport, l4, *random);
                Some(b)
            }
            Target::Redirect { ports, random } => {
                if !matches!(hook, Hook::Prerouting | Hook::Output) {
                    return wrong_hook("REDIRECT");
                }
                let addr = if hook == Hook::Output {
                    Some(nat::loopback(f.family() == crate::net::Family::V6))
                } else {
                    self.in_iface.as_deref().and_then(|i| self.nf.node.redirect_address(i, f.family()))
                };
                let range = NatRange { addrs: None, ports: *ports };
                let (_, port_span) = nat::spans(NatKind::Redirect, Some(&range), f.dst, dport, l4, *random);
                addr.map(|a| Binding {
                    kind: NatKind::Redirect,
                    addr: a,
                    port: nat::map_port(*ports, dport, has_ports),
                    port_span,
                    addr_span: None,
                })
            }
            Target::Snat { ranges, random, random_fully, .. } => {
                if !matches!(hook, Hook::Postrouting | Hook::Input) {
                    return wrong_hook("SNAT");
                }
                let mut b = nat::from_range(NatKind::Snat, ranges.first(), f.src, sport, has_ports);
                let all = *random || *random_fully;
                (b.addr_span, b.port_span) = nat::spans(NatKind::Snat, ranges.first(), f.src, sport, l4, all);
                Some(b)
            }
            Target::Masquerade { ports, random, random_fully } => {
                if hook != Hook::Postrouting {
                    return wrong_hook("MASQUERADE");
                }
                let out = self.out_iface.as_deref().unwrap_or("");
                let range = NatRange { addrs: None, ports: *ports };
                let all = *random || *random_fully;
                let (_, port_span) = nat::spans(NatKind::Masquerade, Some(&range), f.src, sport, l4, all);
                self.nf.node.masquerade_source(out, &f.dst).map(|a| Binding {
                    kind: NatKind::Masquerade,
                    addr: a,
                    port: nat::map_port(*ports, sport, has_ports),
                    port_span,
                    addr_span: None,
                })
            }
            _ => None,
        })
    }

    /// Assembles the result and the state changes.
    pub(crate) fn finish(mut self, original: &Flow, verdict: Verdict, local: bool) -> (EvalResult, Effects) {
        let f = &self.flow;
        let (osport, odport) = (original.sport, original.dport);
        let dnat = (f.dst != original.dst || (f.has_ports() && f.dport != odport)).then_some((f.dst, f.dport));
        let snat = (f.src != original.src || (f.has_ports() && f.sport != osport)).then_some((f.src, f.sport));
        let mut nat_kinds = self.nat.clone();
        if let Some(e) = self.ct.entry() {
            if nat_kinds.is_empty() && self.ct.direction().is_some() && (dnat.is_some() || snat.is_some()) {
                nat_kinds = e.nat_kinds();
            }
        }
        let masquerade = nat_kinds.contains(&NatKind::Masquerade);
        let conntrack = self.ct.entry().cloned();
        let ct_commit = if self.commit {
            match &self.ct {
                PacketCt::Tracked { id, entry, .. } => Some((*id, entry.clone())),
                _ => None,
            }
        } else {
            None
        };
        let result = EvalResult {
            verdict,
            original: original.clone(),
            flow: self.flow.clone(),
            nat: nat_kinds,
            dnat,
            snat,
            masquerade,
            random_port: (self.ct.entry().is_some_and(|e| e.random_port()) && (dnat.is_some() || snat.is_some()))
                || self.chosen.iter().any(|(_, c)| matches!(c, nat::Chosen::Port(..))),
            chosen: std::mem::take(&mut self.chosen),
            mark: self.mark,
            ct_state: self.ct.state_name(),
            conntrack,
            in_interface: if local { None } else { self.in_iface.clone() },
            out_interface: self.routed_out.clone(),
            local_delivery: self.local_delivery && verdict == Verdict::Accept,
            locally_generated: local,
            physdev_in: self.physdev_in.clone(),
            physdev_out: if self.bridged { self.physdev_out.clone() } else { None },
            trace: self.trace.take().unwrap_or_default(),
        };
        let effects = Effects {
            recent: std::mem::take(&mut self.recent),
            nth: std::mem::take(&mut self.nth),
            conntrack: ct_commit,
        };
        (result, effects)
    }
}
