//! The checks the kernel makes when a table is committed: every jump has a chain to go to,
//! targets only appear in tables and hooks that allow them, and no loop is reachable from a
//! built-in chain.

use std::borrow::Cow;
use std::collections::HashMap;

use super::ast::{Rule, Table, TableName, Target};
use super::parse::{builtin_chains, table_name};
use crate::error::{Error, Result};
use crate::net::Family;

fn line_text(text: &str, line: usize) -> &str {
    text.split('\n').nth(line.saturating_sub(1)).unwrap_or("").trim_end_matches('\r')
}

/// Column of the target word of a rule line (after `-j`/`-g`), or 1.
fn target_column(line: &str, name: &str) -> usize {
    for flag in [" -j ", " --jump ", " -g ", " --goto "] {
        let needle = format!("{flag}{name}");
        if let Some(pos) = line.find(&needle) {
            return line[..pos + flag.len()].chars().count() + 1;
        }
    }
    1
}

fn rule_error(text: &str, rule: &Rule, name: &str, message: String) -> Error {
    let line = line_text(text, rule.line);
    Error::parse(rule.line, target_column(line, name), line, message)
}

/// Target name as written after `-j`, for messages.
fn target_word(target: &Target) -> &str {
    match target {
        Target::Dnat { .. } => "DNAT",
        Target::Snat { .. } => "SNAT",
        Target::Masquerade { .. } => "MASQUERADE",
        Target::Redirect { .. } => "REDIRECT",
        Target::Drop => "DROP",
        Target::Reject(_) => "REJECT",
        Target::Notrack => "NOTRACK",
        Target::Ct(_) => "CT",
        Target::Jump(c) | Target::Goto(c) => c,
        _ => "",
    }
}

/// Tables a target may appear in (`None`: any).
fn allowed_tables(target: &Target) -> Option<&'static [TableName]> {
    match target {
        Target::Dnat { .. } | Target::Snat { .. } | Target::Masquerade { .. } | Target::Redirect { .. } => {
            Some(&[TableName::Nat])
        }
        Target::Reject(_) => Some(&[TableName::Filter, TableName::Security]),
        Target::Notrack | Target::Ct(_) => Some(&[TableName::Raw]),
        _ => None,
    }
}

/// Built-in chains (hooks) from which a target may be reached (`None`: any).
fn allowed_hooks(target: &Target) -> Option<&'static [&'static str]> {
    match target {
        Target::Dnat { .. } | Target::Redirect { .. } => Some(&["PREROUTING", "OUTPUT"]),
        Target::Snat { .. } => Some(&["POSTROUTING", "INPUT"]),
        Target::Masquerade { .. } => Some(&["POSTROUTING"]),
        Target::Reject(_) => Some(&["INPUT", "FORWARD", "OUTPUT"]),
        _ => None,
    }
}

/// Why a rule's target is refused, found without building a message (the checks run on every
/// rule; a message is built only for the one reported).
#[derive(Clone, Copy)]
enum TargetProblem {
    MissingChain,
    BuiltinChain,
    NatDrop,
    WrongTable,
}

/// The chain index a finished table is checked with: chain name to position in `Table::chains`.
pub(crate) type ChainIndex<'a> = HashMap<Cow<'a, str>, usize>;

fn target_problem(table: &Table, index: &ChainIndex<'_>, target: &Target) -> Option<TargetProblem> {
    match target {
        Target::Jump(c) | Target::Goto(c) if !index.contains_key(c.as_str()) => Some(TargetProblem::MissingChain),
        Target::Jump(c) | Target::Goto(c) if builtin_chains(table.name).contains(&c.as_str()) => {
            Some(TargetProblem::BuiltinChain)
        }
        Target::Drop if table.name == TableName::Nat => Some(TargetProblem::NatDrop),
        t => allowed_tables(t).filter(|tables| !tables.contains(&table.name)).map(|_| TargetProblem::WrongTable),
    }
}

fn target_error(text: &str, table: &Table, rule: &Rule, problem: TargetProblem) -> Error {
    match (problem, &rule.target) {
        (TargetProblem::MissingChain, Target::Jump(c) | Target::Goto(c)) => {
            rule_error(text, rule, c, format!("Chain '{c}' does not exist"))
        }
        (TargetProblem::BuiltinChain, Target::Jump(c) | Target::Goto(c)) => rule_error(
            text,
            rule,
            c,
            format!("jump to the built-in chain {c} (the kernel refuses it: Operation not supported)"),
        ),
        (TargetProblem::NatDrop, _) => rule_error(
            text,
            rule,
            "DROP",
            "The \"nat\" table is not intended for filtering, the use of DROP is therefore inhibited.".into(),
        ),
        (_, t) => {
            let word = target_word(t);
            let tname = table_name(table.name);
            rule_error(
                text,
                rule,
                word,
                format!("target {word} is not allowed in the {tname} table (the kernel refuses it: Invalid argument)"),
            )
        }
    }
}

/// Chain-to-chain jumps as one flat list per chain (`start[c]..start[c + 1]` of `to`), so that
/// a table of many small chains costs two allocations, not one per chain.
struct Edges<'t> {
    start: Vec<usize>,
    to: Vec<(usize, &'t Rule)>,
}

impl<'t> Edges<'t> {
    /// The jumps of a table, and the first rule in line order whose target is refused (each
    /// jump's chain is looked up once for both).
    fn new(table: &'t Table, index: &ChainIndex<'_>) -> (Self, Option<(&'t Rule, TargetProblem)>) {
        let mut start = Vec::with_capacity(table.chains.len() + 1);
        let mut to = Vec::new();
        let mut first: Option<(&Rule, TargetProblem)> = None;
        for chain in &table.chains {
            start.push(to.len());
            for rule in &chain.rules {
                let problem = match &rule.target {
                    Target::Jump(t) | Target::Goto(t) => match index.get(t.as_str()) {
                        Some(&j) => {
                            to.push((j, rule));
                            target_problem(table, index, &rule.target)
                        }
                        None => Some(TargetProblem::MissingChain),
                    },
                    other => target_problem(table, index, other),
                };
                if let Some(problem) = problem {
                    if first.map_or(true, |(f, _)| rule.line < f.line) {
                        first = Some((rule, problem));
                    }
                }
            }
        }
        start.push(to.len());
        (Edges { start, to }, first)
    }

    /// The jumps out of chain `c`, in rule order.
    fn of(&self, c: usize) -> &[(usize, &'t Rule)] {
        &self.to[self.start[c]..self.start[c + 1]]
    }
}

/// Runs every commit-time check on a finished table.
pub(crate) fn validate_table(table: &Table, index: &ChainIndex<'_>, family: Family, text: &str) -> Result<()> {
    let _ = family;
    let tname = table_name(table.name);
    // Jumps to missing chains and targets in the wrong table: the first in line order.
    let (edges, first) = Edges::new(table, index);
    if let Some((rule, problem)) = first {
        return Err(target_error(text, table, rule, problem));
    }
    for chain in &table.chains {
        for rule in &chain.rules {
            check_addrtype_hooks(text, chain.name.as_str(), rule)?;
        }
    }
    // Which built-in chains reach each chain, and loops reachable from them.
    let hooks = match reach(table, index, &edges, usize::MAX) {
        Ok(hooks) => hooks,
        Err(with_all) => {
            // The kernel adds rules in line order and refuses the first one after which a loop
            // is reachable from a built-in chain: find that line (loops only get more reachable
            // as jumps are added, so the smallest such line is found by bisection).
            let mut lines: Vec<usize> = edges.to.iter().map(|(_, r)| r.line).collect();
            lines.sort_unstable();
            lines.dedup();
            let first = lines.partition_point(|&l| reach(table, index, &edges, l).is_ok());
            let at = lines.get(first).copied().unwrap_or(usize::MAX);
            let (_, builtin) = reach(table, index, &edges, at).err().unwrap_or(with_all);
            let rule = edges.to.iter().map(|(_, r)| *r).find(|r| r.line == at).unwrap_or(with_all.0);
            let name = match &rule.target {
                Target::Jump(name) | Target::Goto(name) => name.as_str(),
                _ => "",
            };
            return Err(rule_error(
                text,
                rule,
                name,
                format!(
                    "jump to {name:?} makes a loop reachable from {builtin} (the kernel refuses it: Too many links)"
                ),
            ));
        }
    };
    if hook_violation(table, &hooks, usize::MAX).is_none() {
        return Ok(());
    }
    // As with loops, the kernel refuses the first rule after which a target is reachable from a
    // hook that does not allow it: the target's own rule, or a later jump that leads to it.
    let mut lines: Vec<usize> = table.chains.iter().flat_map(|c| &c.rules).map(|r| r.line).collect();
    lines.sort_unstable();
    lines.dedup();
    let violates =
        |l: usize| reach(table, index, &edges, l).ok().and_then(|hooks| hook_violation(table, &hooks, l)).is_some();
    let at = lines.get(lines.partition_point(|&l| !violates(l))).copied().unwrap_or(usize::MAX);
    let found = reach(table, index, &edges, at).ok().and_then(|h| hook_violation(table, &h, at));
    let Some((target_rule, bad)) = found.or_else(|| hook_violation(table, &hooks, usize::MAX)) else { return Ok(()) };
    let word = target_word(&target_rule.target);
    let message =
        format!("target {word} is not allowed in {bad} of the {tname} table (the kernel refuses it: Invalid argument)");
    match table.chains.iter().flat_map(|c| &c.rules).find(|r| r.line == at && r.line != target_rule.line) {
        Some(jump) => {
            let name = target_word(&jump.target);
            Err(rule_error(text, jump, name, format!("this jump leads to line {}: {message}", target_rule.line)))
        }
        None => Err(rule_error(text, target_rule, word, message)),
    }
}

/// The first rule (of lines up to `max_line`) whose target is reached from a hook that does not
/// allow it, and that hook.
fn hook_violation<'t>(table: &'t Table, hooks: &[u8], max_line: usize) -> Option<(&'t Rule, &'static str)> {
    let builtins = builtin_chains(table.name);
    for (ci, chain) in table.chains.iter().enumerate() {
        if hooks[ci] == 0 {
            continue;
        }
        for rule in chain.rules.iter().filter(|r| r.line <= max_line) {
            let Some(allowed) = allowed_hooks(&rule.target) else { continue };
            // Hooks in built-in order, as they were found.
            let bad = builtins.iter().enumerate().find(|(b, h)| hooks[ci] & (1 << b) != 0 && !allowed.contains(h));
            if let Some((_, bad)) = bad {
                return Some((rule, bad));
            }
        }
    }
    None
}

/// Which built-in chains reach each chain (bit `b` for `builtin_chains(table)[b]`), using only
/// the jumps of lines up to `max_line`; or the jump that closes a loop reachable from a
/// built-in chain, and that chain.
fn reach<'t>(
    table: &'t Table,
    index: &ChainIndex<'_>,
    edges: &Edges<'t>,
    max_line: usize,
) -> std::result::Result<Vec<u8>, (&'t Rule, &'static str)> {
    let n = table.chains.len();
    let mut hooks = vec![0u8; n];
    let mut state = vec![0u8; n]; // 0 unvisited, 1 on the path, 2 done
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for (bit, builtin) in builtin_chains(table.name).iter().enumerate() {
        let Some(&start) = index.get(*builtin) else { continue };
        let mask = 1u8 << bit;
        // Iterative DFS with an explicit stack: deep chain nesting must not overflow the stack.
        state.fill(0);
        stack.clear();
        stack.push((start, 0));
        state[start] = 1;
        hooks[start] |= mask;
        while let Some(top) = stack.len().checked_sub(1) {
            let (node, next) = stack[top];
            if let Some(&(child, rule)) = edges.of(node).get(next) {
                stack[top].1 += 1;
                if rule.line > max_line {
                    continue;
                }
                match state[child] {
                    1 => return Err((rule, builtin)),
                    0 => {
                        state[child] = 1;
                        hooks[child] |= mask;
                        stack.push((child, 0));
                    }
                    _ => {}
                }
            } else {
                state[node] = 2;
                stack.pop();
            }
        }
    }
    Ok(hooks)
}

/// `addrtype --limit-iface-in` cannot be used in OUTPUT/POSTROUTING, `--limit-iface-out` not in
/// PREROUTING/INPUT (the kernel checks this for rules in those built-in chains).
fn check_addrtype_hooks(text: &str, chain: &str, rule: &Rule) -> Result<()> {
    for m in &rule.matches {
        if let super::ast::Match::AddrType { limit_iface_in, limit_iface_out, .. } = m {
            let bad = (*limit_iface_in && matches!(chain, "OUTPUT" | "POSTROUTING"))
                || (*limit_iface_out && matches!(chain, "PREROUTING" | "INPUT"));
            if bad {
                let line = line_text(text, rule.line);
                let column = line.find("--limit-iface").map_or(1, |p| line[..p].chars().count() + 1);
                return Err(Error::parse(
                    rule.line,
                    column,
                    line,
                    format!(
                        "addrtype: this interface limitation cannot be used in {chain} (the kernel refuses it: Invalid argument)"
                    ),
                ));
            }
        }
    }
    Ok(())
}
