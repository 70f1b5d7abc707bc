//! Reading iptables-save / iptables-restore text into a [`Ruleset`].
//!
//! Both the form kube-proxy feeds to `iptables-restore` and the form a live `iptables-save`
//! prints parse to equal rulesets: values are normalised as the kernel stores them, the basic
//! matches (`-s -d -i -o -p -f`) are put first in iptables-save's order, built-in chains are
//! always present, and chains and tables are kept in the order iptables-save prints them.

use std::borrow::Cow;
use std::collections::HashMap;

use super::ast::{Chain, Counters, Match, Neg, Policy, Rule, Ruleset, Table, TableName, Target};
use super::matches::{ModuleBuilder, RuleInfo};
use super::targets::{TargetBuilder, TARGET_NAMES};
use super::tokenize::{tokenize_into, Token};
use super::validate::{validate_table, ChainIndex};
use super::values::{parse_cidr, parse_iface};
use crate::error::{Error, Result};
use crate::net::{Cidr, Family};

/// Longest line accepted (iptables-restore itself reads much shorter lines).
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// Most words in one line (iptables-restore's own limit).
pub const MAX_WORDS: usize = 255;
/// Longest chain name (`XT_EXTENSION_MAXNAMELEN - 1`).
pub const MAX_CHAIN_NAME: usize = 28;

/// Parses iptables-save or ip6tables-save text, detecting the family from the addresses in it.
///
/// # Errors
/// [`Error::Parse`] naming the line and column of the first problem, quoting the line.
pub fn parse(text: &str) -> Result<Ruleset> {
    parse_family(text, detect_family(text))
}

/// The family of a dump: IPv6 when its header says `ip6tables-save` or its first address is IPv6.
pub fn detect_family(text: &str) -> Family {
    let mut tokens = Vec::new();
    for line in text.lines().take(100_000) {
        if line.starts_with('#') {
            if line.contains("ip6tables-save") {
                return Family::V6;
            }
            continue;
        }
        if line.len() > MAX_LINE_BYTES {
            continue;
        }
        if tokenize_into(line, &mut tokens).is_err() {
            continue;
        }
        for pair in tokens.windows(2) {
            let opt = pair[0].text();
            let is_addr_opt = matches!(
                opt,
                "-s" | "-d"
                    | "--source"
                    | "--destination"
                    | "--to-destination"
                    | "--to-source"
                    | "--ctorigsrc"
                    | "--ctorigdst"
                    | "--ctreplsrc"
                    | "--ctrepldst"
            );
            if is_addr_opt {
                let v = pair[1].text().trim_start_matches('[');
                let addr = v.split(['/', ']', '-']).next().unwrap_or("");
                if addr.parse::<std::net::Ipv6Addr>().is_ok() {
                    return Family::V6;
                }
                if addr.split(':').next().unwrap_or("").parse::<std::net::Ipv4Addr>().is_ok() {
                    return Family::V4;
                }
            }
            if opt == "-p" && matches!(pair[1].text(), "ipv6-icmp" | "icmpv6" | "58") {
                return Family::V6;
            }
        }
    }
    Family::V4
}

/// Where a problem is: the line being parsed.
#[derive(Clone, Copy)]
pub(crate) struct LineCtx<'a> {
    pub number: usize,
    pub text: &'a str,
}

impl LineCtx<'_> {
    pub(crate) fn err(&self, column: usize, message: impl Into<String>) -> Error {
        Error::parse(self.number, column, self.text, message)
    }
}

/// Built-in chains of a table, in iptables-save order.
pub fn builtin_chains(table: TableName) -> &'static [&'static str] {
    match table {
        TableName::Raw => &["PREROUTING", "OUTPUT"],
        TableName::Mangle => &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
        TableName::Nat => &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
        TableName::Filter | TableName::Security => &["INPUT", "FORWARD", "OUTPUT"],
    }
}

/// A table's name as written after `*`.
pub fn table_name(table: TableName) -> &'static str {
    match table {
        TableName::Raw => "raw",
        TableName::Mangle => "mangle",
        TableName::Nat => "nat",
        TableName::Filter => "filter",
        TableName::Security => "security",
    }
}

/// Position of a table in iptables-save's output (nf_tables backend).
pub fn table_save_rank(table: TableName) -> usize {
    match table {
        TableName::Mangle => 0,
        TableName::Security => 1,
        TableName::Raw => 2,
        TableName::Filter => 3,
        TableName::Nat => 4,
    }
}

fn parse_table_name(name: &str) -> Option<TableName> {
    Some(match name {
        "raw" => TableName::Raw,
        "mangle" => TableName::Mangle,
        "nat" => TableName::Nat,
        "filter" => TableName::Filter,
        "security" => TableName::Security,
        _ => return None,
    })
}

/// A table while its section is being read.
struct OpenTable<'a> {
    name: TableName,
    /// Whether any command touched the table: iptables-restore (nf_tables) does not create a
    /// table whose section is empty or only flushes.
    touched: bool,
    line: usize,
    chains: Vec<Chain>,
    /// Chain name to position in `chains`; the names borrow from the text where they can.
    index: ChainIndex<'a>,
    /// The chain of the last `-A`: dumps list a chain's rules together, so most lookups end here
    /// without hashing.
    last_appended: Option<usize>,
}

impl<'a> OpenTable<'a> {
    fn new(name: TableName, line: usize) -> Self {
        let mut t =
            OpenTable { name, touched: false, line, chains: Vec::new(), index: HashMap::new(), last_appended: None };
        for builtin in builtin_chains(name) {
            t.add_chain(
                Cow::Borrowed(builtin),
                Chain {
                    name: (*builtin).to_string(),
                    policy: Some(Policy::Accept),
                    counters: None,
                    rules: Vec::new(),
                    line: 0,
                },
            );
        }
        t
    }

    fn add_chain(&mut self, key: Cow<'a, str>, chain: Chain) {
        self.index.insert(key, self.chains.len());
        self.chains.push(chain);
    }

    fn chain_mut(&mut self, name: &str) -> Option<&mut Chain> {
        self.index.get(name).map(|i| &mut self.chains[*i])
    }

    /// The chain a rule is appended to, trying the previous one first.
    fn append_target(&mut self, name: &str) -> Option<&mut Chain> {
        let i = match self.last_appended {
            Some(i) if self.chains[i].name == name => i,
            _ => *self.index.get(name)?,
        };
        self.last_appended = Some(i);
        Some(&mut self.chains[i])
    }

    /// Removes the chain at `i`, keeping the index in step.
    fn remove_chain(&mut self, i: usize) {
        let removed = self.chains.remove(i);
        self.index.remove(removed.name.as_str());
        for position in self.index.values_mut() {
            if *position > i {
                *position -= 1;
            }
        }
        self.last_appended = None;
    }

    fn is_builtin(&self, name: &str) -> bool {
        builtin_chains(self.name).contains(&name)
    }

    /// Built-in chains first in kernel order, then user chains sorted by name, as iptables-save
    /// prints them; with the chain index updated to the new order.
    fn finish(self) -> (Table, ChainIndex<'a>) {
        let OpenTable { name, line, chains, mut index, .. } = self;
        // Built-in chains are created first, in kernel order, and can never be deleted, so they
        // are already in place; user chain names are unique, so an unstable sort is exact.
        // Sorting positions rather than chains lets the index follow without hashing again.
        let builtins = builtin_chains(name).len();
        let mut order: Vec<usize> = (0..chains.len()).collect();
        order[builtins..].sort_unstable_by(|&a, &b| chains[a].name.as_bytes().cmp(chains[b].name.as_bytes()));
        let mut new_position = vec![0; chains.len()];
        for (new, &old) in order.iter().enumerate() {
            new_position[old] = new;
        }
        for position in index.values_mut() {
            *position = new_position[*position];
        }
        let mut slots: Vec<Option<Chain>> = chains.into_iter().map(Some).collect();
        let chains = order
            .iter()
            .filter_map(|&old| slots[old].take())
            .map(|mut chain| {
                // Vec growth leaves up to half of a chain's rules unused; tables live long.
                chain.rules.shrink_to_fit();
                chain
            })
            .collect();
        (Table { name, chains, line }, index)
    }
}

/// Parses text of a known family.
///
/// # Errors
/// [`Error::Parse`] naming the line and column of the first problem, quoting the line.
pub fn parse_family(text: &str, family: Family) -> Result<Ruleset> {
    let mut tables: Vec<Table> = Vec::new();
    let mut open: Option<OpenTable<'_>> = None;
    // Buffers reused by every line.
    let mut tokens: Vec<Token<'_>> = Vec::new();
    let mut modules: Vec<(ModuleBuilder, usize)> = Vec::new();
    for (index, raw_line) in text.split('\n').enumerate() {
        let number = index + 1;
        if raw_line.len() > MAX_LINE_BYTES {
            let shown: String = raw_line.chars().take(120).collect();
            return Err(Error::parse(
                number,
                1,
                format!("{shown}..."),
                format!("line is {} bytes long, over the limit of {MAX_LINE_BYTES}", raw_line.len()),
            ));
        }
        let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        let ctx = LineCtx { number, text: line };
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('*') {
            if let Some(t) = &open {
                return Err(ctx.err(1, format!("table {} was not closed with COMMIT", table_name(t.name))));
            }
            let name = name.trim();
            let table = parse_table_name(name).ok_or_else(|| ctx.err(2, format!("unknown table {name:?}")))?;
            open = Some(OpenTable::new(table, number));
            continue;
        }
        let Some(table) = open.as_mut() else {
            return Err(ctx.err(1, "expected a *table line first"));
        };
        if trimmed == "COMMIT" {
            let open_table = open.take().ok_or_else(|| ctx.err(1, "COMMIT without a table"))?;
            if !open_table.touched {
                continue;
            }
            let (finished, index) = open_table.finish();
            validate_table(&finished, &index, family, text)?;
            tables.retain(|t| t.name != finished.name);
            tables.push(finished);
            continue;
        }
        if let Some(decl) = trimmed.strip_prefix(':') {
            table.touched = true;
            declare_chain(table, decl, ctx, line.len() - decl.len() + 1)?;
            continue;
        }
        tokenize_into(line, &mut tokens).map_err(|e| ctx.err(e.column, e.message))?;
        if tokens.len() > MAX_WORDS {
            return Err(ctx.err(1, format!("line has {} words, over the limit of {MAX_WORDS}", tokens.len())));
        }
        if !matches!(tokens.first().map(Token::text), Some("-F" | "--flush")) {
            table.touched = true;
        }
        command(table, &tokens, ctx, family, &mut modules)?;
    }
    if let Some(t) = open {
        return Err(Error::parse(t.line, 1, format!("*{}", table_name(t.name)), "table is missing its COMMIT line"));
    }
    tables.sort_by_key(|t| table_save_rank(t.name));
    Ok(Ruleset { family, tables })
}

fn parse_counters(text: &str) -> Option<Counters> {
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    let (p, b) = inner.split_once(':')?;
    Some(Counters { packets: p.parse().ok()?, bytes: b.parse().ok()? })
}

fn check_chain_name(name: &str, ctx: LineCtx<'_>, column: usize) -> Result<()> {
    if name.len() > MAX_CHAIN_NAME {
        return Err(ctx.err(column, format!("chain name `{name}' too long (must be under 29 chars)")));
    }
    if name.is_empty() || name.starts_with('-') || name.starts_with('!') || TARGET_NAMES.contains(&name) {
        return Err(ctx.err(column, format!("invalid chain name {name:?}")));
    }
    Ok(())
}

/// `:NAME POLICY [p:b]`
fn declare_chain<'a>(table: &mut OpenTable<'a>, decl: &'a str, ctx: LineCtx<'_>, column: usize) -> Result<()> {
    let mut words = decl.split_whitespace();
    let (name, policy_text, counters_text) = match (words.next(), words.next(), words.next(), words.next()) {
        (Some(n), Some(p), c, None) => (n, p, c),
        _ => return Err(ctx.err(column, "a chain line is `:NAME POLICY [packets:bytes]`")),
    };
    let counters = match counters_text {
        Some(c) => Some(parse_counters(c).ok_or_else(|| ctx.err(column, format!("bad counters {c:?}")))?),
        None => None,
    };
    let policy = match policy_text {
        "-" => None,
        "ACCEPT" => Some(Policy::Accept),
        "DROP" => Some(Policy::Drop),
        other => return Err(ctx.err(column, format!("bad chain policy {other:?}"))),
    };
    if table.is_builtin(name) {
        let chain = table.chain_mut(name).ok_or_else(|| ctx.err(column, "internal: built-in chain missing"))?;
        // `:INPUT - [0:0]` is accepted by iptables-restore and keeps the policy.
        if let Some(p) = policy {
            chain.policy = Some(p);
        }
        chain.counters = counters;
        chain.line = ctx.number;
        return Ok(());
    }
    check_chain_name(name, ctx, column)?;
    if let Some(chain) = table.chain_mut(name) {
        // Declaring an existing chain flushes it, as iptables-restore does.
        chain.rules.clear();
        chain.counters = counters;
        chain.line = ctx.number;
        return Ok(());
    }
    // A policy on a user chain is accepted by iptables-restore and ignored.
    table.add_chain(
        Cow::Borrowed(name),
        Chain { name: name.to_string(), policy: None, counters, rules: Vec::new(), line: ctx.number },
    );
    Ok(())
}

/// `-A`, `-I`, `-N`, `-X`, `-F`, `-P`, optionally after `[p:b]`.
fn command<'a>(
    table: &mut OpenTable<'a>,
    tokens: &[Token<'a>],
    ctx: LineCtx<'_>,
    family: Family,
    modules: &mut Vec<(ModuleBuilder, usize)>,
) -> Result<()> {
    let (prefix_counters, tokens) = match tokens.first().and_then(|t| parse_counters(t.text())) {
        Some(c) => (Some(c), &tokens[1..]),
        None => (None, tokens),
    };
    let Some(cmd) = tokens.first() else { return Err(ctx.err(1, "empty command")) };
    let chain_tok = tokens.get(1);
    let need_chain =
        || chain_tok.ok_or_else(|| ctx.err(cmd.column, format!("option \"{}\" requires a chain name", cmd.text())));
    match cmd.text() {
        "-A" | "--append" | "-I" | "--insert" => {
            let chain = need_chain()?;
            let mut rest = &tokens[2..];
            let mut position: Option<usize> = None;
            if matches!(cmd.text(), "-I" | "--insert") {
                if let Some(n) = rest.first().and_then(|t| t.text().parse::<usize>().ok()) {
                    if n == 0 {
                        return Err(ctx.err(rest[0].column, "rule number must be at least 1"));
                    }
                    position = Some(n - 1);
                    rest = &rest[1..];
                } else {
                    position = Some(0);
                }
            }
            let mut rule = parse_rule(rest, ctx, family, modules)?;
            if rule.counters.is_none() {
                rule.counters = prefix_counters;
            }
            let target_chain = table
                .append_target(chain.text())
                .ok_or_else(|| ctx.err(chain.column, format!("chain {:?} does not exist", chain.text())))?;
            match position {
                None => target_chain.rules.push(rule),
                Some(p) if p <= target_chain.rules.len() => target_chain.rules.insert(p, rule),
                Some(_) => return Err(ctx.err(cmd.column, "index of insertion too big")),
            }
        }
        "-N" | "--new-chain" => {
            let chain = need_chain()?;
            check_chain_name(chain.text(), ctx, chain.column)?;
            if table.index.contains_key(chain.text()) {
                return Err(ctx.err(chain.column, format!("chain {:?} already exists", chain.text())));
            }
            table.add_chain(
                chain.text.clone(),
                Chain {
                    name: chain.text().to_string(),
                    policy: None,
                    counters: None,
                    rules: Vec::new(),
                    line: ctx.number,
                },
            );
        }
        "-X" | "--delete-chain" => {
            let names: Vec<String> = match chain_tok {
                Some(c) => vec![c.text().to_string()],
                None => table.chains.iter().filter(|c| c.policy.is_none()).map(|c| c.name.clone()).collect(),
            };
            let column = chain_tok.map_or(cmd.column, |c| c.column);
            for name in names {
                delete_chain(table, &name, ctx, column)?;
            }
        }
        "-F" | "--flush" => match chain_tok {
            Some(c) => {
                let chain = table
                    .chain_mut(c.text())
                    .ok_or_else(|| ctx.err(c.column, format!("chain {:?} does not exist", c.text())))?;
                chain.rules.clear();
            }
            None => table.chains.iter_mut().for_each(|c| c.rules.clear()),
        },
        "-P" | "--policy" => {
            let chain = need_chain()?;
            let policy_tok = tokens.get(2).ok_or_else(|| ctx.err(chain.column, "-P needs a policy"))?;
            let policy = match policy_tok.text() {
                "ACCEPT" => Policy::Accept,
                "DROP" => Policy::Drop,
                other => return Err(ctx.err(policy_tok.column, format!("bad chain policy {other:?}"))),
            };
            if !table.is_builtin(chain.text()) {
                return Err(
                    ctx.err(chain.column, format!("only built-in chains have a policy, not {:?}", chain.text()))
                );
            }
            if let Some(c) = table.chain_mut(chain.text()) {
                c.policy = Some(policy);
            }
        }
        other => return Err(ctx.err(cmd.column, format!("unknown command {other:?}"))),
    }
    Ok(())
}

fn delete_chain(table: &mut OpenTable<'_>, name: &str, ctx: LineCtx<'_>, column: usize) -> Result<()> {
    if table.is_builtin(name) {
        return Err(ctx.err(column, format!("cannot delete built-in chain {name:?}")));
    }
    let Some(&i) = table.index.get(name) else {
        return Err(ctx.err(column, format!("chain {name:?} does not exist")));
    };
    if !table.chains[i].rules.is_empty() {
        return Err(
            ctx.err(column, format!("cannot delete chain {name:?}: it still has rules (Device or resource busy)"))
        );
    }
    let referenced = table.chains.iter().flat_map(|c| &c.rules).any(|r| match &r.target {
        Target::Jump(t) | Target::Goto(t) => t == name,
        _ => false,
    });
    if referenced {
        return Err(
            ctx.err(column, format!("cannot delete chain {name:?}: it is still referenced (Device or resource busy)"))
        );
    }
    table.remove_chain(i);
    Ok(())
}

/// The pieces of a rule while it is being read.
#[derive(Default)]
struct RuleParts {
    source: Option<Neg<Cidr>>,
    destination: Option<Neg<Cidr>>,
    in_iface: Option<Match>,
    out_iface: Option<Match>,
    proto: Option<Neg<u8>>,
    fragment: Option<Neg<()>>,
    target: Option<(TargetBuilder, usize)>,
    counters: Option<Counters>,
}

/// Parses the words of a rule after `-A CHAIN`; `modules` is a buffer reused across rules.
pub(crate) fn parse_rule<'t>(
    tokens: &'t [Token<'_>],
    ctx: LineCtx<'_>,
    family: Family,
    modules: &mut Vec<(ModuleBuilder, usize)>,
) -> Result<Rule> {
    modules.clear();
    let mut parts = RuleParts::default();
    let mut i = 0;
    let mut negate_column: Option<usize> = None;
    while i < tokens.len() {
        let tok = &tokens[i];
        i += 1;
        if tok.text() == "!" && !tok.quoted {
            if negate_column.is_some() {
                return Err(ctx.err(tok.column, "consecutive `!' not allowed"));
            }
            negate_column = Some(tok.column);
            continue;
        }
        let negated = negate_column.take().is_some();
        let info = RuleInfo { family, proto: parts.proto };
        let take_value = |i: &mut usize| -> Result<&Token> {
            let v = tokens
                .get(*i)
                .ok_or_else(|| ctx.err(tok.column, format!("option \"{}\" requires an argument", tok.text())))?;
            *i += 1;
            Ok(v)
        };
        let once = |present: bool, flag: &str| -> Result<()> {
            if present {
                return Err(ctx.err(tok.column, format!("multiple {flag} flags not allowed")));
            }
            Ok(())
        };
        match tok.text() {
            "-s" | "--source" | "--src" | "-d" | "--destination" | "--dst" => {
                let is_src = matches!(tok.text(), "-s" | "--source" | "--src");
                let slot = if is_src { &mut parts.source } else { &mut parts.destination };
                once(slot.is_some(), if is_src { "-s" } else { "-d" })?;
                let v = take_value(&mut i)?;
                let cidr = parse_cidr(v.text(), family).map_err(|m| ctx.err(v.column, m))?;
                if negated && cidr.prefix() == 0 {
                    let msg =
                        format!("{} {} never matches (the kernel refuses it: Invalid argument)", tok.text(), v.text());
                    return Err(ctx.err(v.column, msg));
                }
                *slot = Some(Neg { value: cidr, negated });
            }
            "-i" | "--in-interface" | "-o" | "--out-interface" => {
                let is_in = matches!(tok.text(), "-i" | "--in-interface");
                let slot = if is_in { &mut parts.in_iface } else { &mut parts.out_iface };
                once(slot.is_some(), if is_in { "-i" } else { "-o" })?;
                let v = take_value(&mut i)?;
                let pattern = Neg { value: parse_iface(v.text()).map_err(|m| ctx.err(v.column, m))?, negated };
                *slot = Some(if is_in { Match::InInterface(pattern) } else { Match::OutInterface(pattern) });
            }
            "-p" | "--protocol" => {
                once(parts.proto.is_some(), "-p")?;
                let v = take_value(&mut i)?;
                let number = super::names::protocol_number(v.text())
                    .ok_or_else(|| ctx.err(v.column, format!("unknown protocol {:?} specified", v.text())))?;
                if number == 0 && negated {
                    return Err(ctx.err(tok.column, "rule would never match protocol"));
                }
                parts.proto = Some(Neg { value: number, negated });
            }
            "-f" | "--fragment" => {
                once(parts.fragment.is_some(), "-f")?;
                parts.fragment = Some(Neg { value: (), negated });
            }
            "-m" | "--match" => {
                if negated {
                    return Err(ctx.err(tok.column, "unexpected `!' before -m"));
                }
                let v = take_value(&mut i)?;
                let module = ModuleBuilder::new(v.text(), family)
                    .ok_or_else(|| ctx.err(v.column, format!("unknown match module {:?}", v.text())))?;
                modules.push((module, v.column));
            }
            "-j" | "--jump" | "-g" | "--goto" => {
                if negated {
                    return Err(ctx.err(tok.column, "cannot invert a target"));
                }
                if parts.target.is_some() {
                    return Err(ctx.err(tok.column, "multiple -j flags not allowed"));
                }
                let v = take_value(&mut i)?;
                let goto = matches!(tok.text(), "-g" | "--goto");
                let builder = match TargetBuilder::new(v.text()) {
                    Some(_) if goto => return Err(ctx.err(v.column, format!("goto needs a chain, not {:?}", v.text()))),
                    Some(b) => b,
                    None => {
                        if v.text().is_empty() || v.text().len() > MAX_CHAIN_NAME || v.text().starts_with('-') {
                            return Err(ctx.err(v.column, format!("invalid target {:?}", v.text())));
                        }
                        let t =
                            if goto { Target::Goto(v.text().to_string()) } else { Target::Jump(v.text().to_string()) };
                        TargetBuilder::Plain(t)
                    }
                };
                parts.target = Some((builder, v.column));
            }
            "-c" | "--set-counters" => {
                let p = take_value(&mut i)?;
                let b = take_value(&mut i)?;
                let packets =
                    p.text().parse().map_err(|_| ctx.err(p.column, format!("bad packet counter {:?}", p.text())))?;
                let bytes =
                    b.text().parse().map_err(|_| ctx.err(b.column, format!("bad byte counter {:?}", b.text())))?;
                parts.counters = Some(Counters { packets, bytes });
            }
            option if option.starts_with("--") => {
                let mut next = || -> std::result::Result<&'t str, String> {
                    let v = tokens.get(i).ok_or_else(|| format!("option \"{option}\" requires an argument"))?;
                    i += 1;
                    Ok(v.text())
                };
                // Target options take precedence once a target is given, then the most recent module.
                if let Some((t, _)) = parts.target.as_mut().filter(|(t, _)| t.knows(option)) {
                    t.apply(option, negated, info, &mut next).map_err(|m| ctx.err(tok.column, m))?;
                    continue;
                }
                if let Some(index) = module_for_option(modules, option) {
                    let m = &mut modules[index].0;
                    m.apply(option, negated, info, &mut next).map_err(|m| ctx.err(tok.column, m))?;
                    continue;
                }
                let implicit =
                    parts.proto.filter(|p| !p.negated).and_then(|p| ModuleBuilder::implicit_for(p.value, family));
                if let Some(mut m) =
                    implicit.and_then(|name| ModuleBuilder::new(name, family)).filter(|m| m.knows(option))
                {
                    m.apply(option, negated, info, &mut next).map_err(|m| ctx.err(tok.column, m))?;
                    modules.push((m, tok.column));
                    continue;
                }
                return Err(ctx.err(tok.column, format!("unknown option {option:?}")));
            }
            other => return Err(ctx.err(tok.column, format!("unexpected word {other:?}"))),
        }
    }
    if let Some(column) = negate_column {
        return Err(ctx.err(column, "`!' at the end of the rule"));
    }
    finish_rule(parts, modules, ctx, family)
}

/// Which loaded module an option goes to, as iptables resolves it: among the module kinds that
/// know the option, the one first loaded last (iptables merges each kind's options once, newest
/// first), and of that kind the latest instance (`-m mark --mark 1 -m connmark --mark 2` works,
/// `-m connmark --mark 1 -m mark --mark 2 -m connmark --mark 3` gives mark two `--mark`s).
fn module_for_option(modules: &[(ModuleBuilder, usize)], option: &str) -> Option<usize> {
    let mut best: Option<(usize, &str)> = None; // (first index of the kind, kind)
    for (i, (m, _)) in modules.iter().enumerate() {
        if !m.knows(option) {
            continue;
        }
        let first = modules.iter().position(|(o, _)| o.name() == m.name()).unwrap_or(i);
        if best.is_none_or_lower(first) {
            best = Some((first, m.name()));
        }
    }
    let (_, kind) = best?;
    modules.iter().rposition(|(m, _)| m.name() == kind)
}

trait LowerThan {
    fn is_none_or_lower(&self, first: usize) -> bool;
}

impl LowerThan for Option<(usize, &str)> {
    fn is_none_or_lower(&self, first: usize) -> bool {
        self.map_or(true, |(f, _)| f < first)
    }
}

fn finish_rule(
    parts: RuleParts,
    modules: &mut Vec<(ModuleBuilder, usize)>,
    ctx: LineCtx<'_>,
    family: Family,
) -> Result<Rule> {
    let info = RuleInfo { family, proto: parts.proto };
    // A plain `/0` prefix matches everything; the kernel keeps no test for it.
    let everything = |c: &Neg<Cidr>| c.value.prefix() == 0 && !c.negated;
    let source = parts.source.filter(|c| !everything(c));
    let destination = parts.destination.filter(|c| !everything(c));
    let proto = parts.proto.filter(|p| p.value != 0);
    // Exactly as many slots as matches: a ruleset keeps its rules for as long as it lives.
    let basic = usize::from(source.is_some())
        + usize::from(destination.is_some())
        + usize::from(parts.in_iface.is_some())
        + usize::from(parts.out_iface.is_some())
        + usize::from(proto.is_some())
        + usize::from(parts.fragment.is_some());
    let mut matches = Vec::with_capacity(basic + modules.len());
    matches.extend(source.map(Match::Source));
    matches.extend(destination.map(Match::Destination));
    matches.extend(parts.in_iface);
    matches.extend(parts.out_iface);
    matches.extend(proto.map(Match::Protocol));
    if let Some(f) = parts.fragment {
        if family == Family::V6 {
            return Err(ctx.err(1, "-f is not available in ip6tables"));
        }
        matches.push(Match::Fragment(f));
    }
    for (module, column) in modules.drain(..) {
        matches.push(module.finish(info).map_err(|m| ctx.err(column, m))?);
    }
    let target = match parts.target {
        Some((t, column)) => t.finish(info).map_err(|m| ctx.err(column, m))?,
        None => Target::None,
    };
    Ok(Rule { matches, target, counters: parts.counters, line: ctx.number })
}
