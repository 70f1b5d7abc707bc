//! The checks the kernel makes when a table is committed: every jump has a chain to go to,
//! targets only appear in tables and hooks that allow them, and no loop is reachable from a
//! built-in chain.

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

/// Runs every commit-time check on a finished table.
pub(crate) fn validate_table(table: &Table, family: Family, text: &str) -> Result<()> {
    let _ = family;
    let index: HashMap<&str, usize> = table.chains.iter().enumerate().map(|(i, c)| (c.name.as_str(), i)).collect();
    let tname = table_name(table.name);
    // Jumps to missing chains and targets in the wrong table, in line order.
    let mut rules: Vec<&Rule> = table.chains.iter().flat_map(|c| &c.rules).collect();
    rules.sort_by_key(|r| r.line);
    for rule in &rules {
        match &rule.target {
            Target::Jump(c) | Target::Goto(c) if !index.contains_key(c.as_str()) => {
                return Err(rule_error(text, rule, c, format!("Chain '{c}' does not exist")));
            }
            Target::Drop if table.name == TableName::Nat => {
                return Err(rule_error(
                    text,
                    rule,
                    "DROP",
                    "The \"nat\" table is not intended for filtering, the use of DROP is therefore inhibited.".into(),
                ));
            }
            t => {
                if let Some(tables) = allowed_tables(t) {
                    if !tables.contains(&table.name) {
                        let word = target_word(t);
                        return Err(rule_error(
                            text,
                            rule,
                            word,
                            format!("target {word} is not allowed in the {tname} table (the kernel refuses it: Invalid argument)"),
                        ));
                    }
                }
            }
        }
    }
    // Which built-in chains reach each chain, and loops reachable from them.
    let n = table.chains.len();
    let mut hooks: Vec<Vec<&str>> = vec![Vec::new(); n];
    let edges: Vec<Vec<(usize, &Rule)>> = table
        .chains
        .iter()
        .map(|c| {
            c.rules
                .iter()
                .filter_map(|r| match &r.target {
                    Target::Jump(t) | Target::Goto(t) => index.get(t.as_str()).map(|&j| (j, r)),
                    _ => None,
                })
                .collect()
        })
        .collect();
    for builtin in builtin_chains(table.name) {
        let Some(&start) = index.get(builtin) else { continue };
        // Iterative DFS with an explicit stack: deep chain nesting must not overflow the stack.
        let mut state = vec![0u8; n]; // 0 unvisited, 1 on the path, 2 done
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = 1;
        hooks[start].push(builtin);
        while let Some(top) = stack.len().checked_sub(1) {
            let (node, next) = stack[top];
            if let Some(&(child, rule)) = edges[node].get(next) {
                stack[top].1 += 1;
                match state[child] {
                    1 => {
                        let name = &table.chains[child].name;
                        return Err(rule_error(
                            text,
                            rule,
                            name,
                            format!("jump to {name:?} makes a loop reachable from {builtin} (the kernel refuses it: Too many links)"),
                        ));
                    }
                    0 => {
                        state[child] = 1;
                        if !hooks[child].contains(builtin) {
                            hooks[child].push(builtin);
                        }
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
    for chain in &table.chains {
        for rule in &chain.rules {
            check_addrtype_hooks(text, chain.name.as_str(), rule)?;
        }
    }
    for (ci, chain) in table.chains.iter().enumerate() {
        for rule in &chain.rules {
            let Some(allowed) = allowed_hooks(&rule.target) else { continue };
            if let Some(bad) = hooks[ci].iter().find(|h| !allowed.contains(h)) {
                let word = target_word(&rule.target);
                return Err(rule_error(
                    text,
                    rule,
                    word,
                    format!("target {word} is not allowed in {bad} of the {tname} table (the kernel refuses it: Invalid argument)"),
                ));
            }
        }
    }
    Ok(())
}

/// `addrtype --limit-iface-in` cannot be used in OUTPUT/POSTROUTING, `--limit-iface-out` not in
/// PREROUTING/INPUT (checked by the kernel for rules in those built-in chains).
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
                    format!("addrtype: this interface limitation cannot be used in {chain} (the kernel refuses it: Invalid argument)"),
                ));
            }
        }
    }
    Ok(())
}
