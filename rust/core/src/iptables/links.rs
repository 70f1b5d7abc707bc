//! Load-time checks the kernel (or iptables-restore) makes, and jump resolution.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::iptables::ast::{Ruleset, TableName, Target};
use crate::iptables::result::table_name;

/// Resolves every `-j`/`-g` to a chain index ([table][chain][rule]) and refuses what the kernel
/// refuses: jumps to missing or built-in chains, loops, and targets outside their tables.
///
/// # Errors
/// [`Error::Eval`] naming the line of the offending rule.
pub fn resolve(ruleset: &Ruleset) -> Result<Vec<Vec<Vec<Option<usize>>>>> {
    let mut all = Vec::with_capacity(ruleset.tables.len());
    for table in &ruleset.tables {
        let mut by_name: HashMap<&str, usize> = HashMap::with_capacity(table.chains.len());
        for (i, c) in table.chains.iter().enumerate() {
            if by_name.insert(c.name.as_str(), i).is_some() {
                return Err(Error::eval(format!(
                    "line {}: chain {} is declared twice in table {}",
                    c.line,
                    c.name,
                    table_name(table.name)
                )));
            }
        }
        let mut resolved = Vec::with_capacity(table.chains.len());
        for chain in &table.chains {
            let mut per_rule = Vec::with_capacity(chain.rules.len());
            for rule in &chain.rules {
                check_target(table.name, &rule.target, rule.line, &chain.name)?;
                let to = match &rule.target {
                    Target::Jump(name) | Target::Goto(name) => {
                        let Some(&i) = by_name.get(name.as_str()) else {
                            return Err(Error::eval(format!(
                                "line {}: -A {} jumps to {name}, which table {} does not declare",
                                rule.line,
                                chain.name,
                                table_name(table.name)
                            )));
                        };
                        if table.chains[i].policy.is_some() {
                            return Err(Error::eval(format!(
                                "line {}: -A {} jumps to the built-in chain {name}",
                                rule.line, chain.name
                            )));
                        }
                        Some(i)
                    }
                    _ => None,
                };
                per_rule.push(to);
            }
            resolved.push(per_rule);
        }
        let builtin: Vec<bool> = table.chains.iter().map(|c| c.policy.is_some()).collect();
        check_loops(
            table.name,
            &table.chains.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            &builtin,
            &resolved,
        )?;
        all.push(resolved);
    }
    Ok(all)
}

fn check_target(table: TableName, target: &Target, line: usize, chain: &str) -> Result<()> {
    let t = table_name(table);
    let refuse =
        |what: &str, why: &str| Err(Error::eval(format!("line {line}: -A {chain} -j {what} in table {t}: {why}")));
    match target {
        Target::Dnat { .. } | Target::Snat { .. } | Target::Masquerade { .. } | Target::Redirect { .. }
            if table != TableName::Nat =>
        {
            refuse("DNAT/SNAT/MASQUERADE/REDIRECT", "NAT targets are only valid in the nat table")
        }
        Target::Drop | Target::Reject(_) if table == TableName::Nat => {
            refuse("DROP/REJECT", "the nat table is not intended for filtering")
        }
        Target::Notrack | Target::Ct(_) if table != TableName::Raw => {
            refuse("CT/NOTRACK", "only valid in the raw table")
        }
        _ => Ok(()),
    }
}

/// Depth-first search from the built-in chains for a cycle of jumps/gotos (the kernel answers
/// ELOOP; loops among unreachable user chains are accepted, as by the kernel).
fn check_loops(table: TableName, names: &[&str], builtin: &[bool], edges: &[Vec<Option<usize>>]) -> Result<()> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut marks = vec![Mark::New; names.len()];
    for start in 0..names.len() {
        if marks[start] != Mark::New || !builtin[start] {
            continue;
        }
        // (chain, next rule to look at) — explicit stack, no recursion.
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        marks[start] = Mark::Active;
        while let Some(&mut (c, ref mut i)) = stack.last_mut() {
            if *i >= edges[c].len() {
                marks[c] = Mark::Done;
                stack.pop();
                continue;
            }
            let next = edges[c][*i];
            *i += 1;
            if let Some(n) = next {
                match marks[n] {
                    Mark::Active => {
                        return Err(Error::eval(format!(
                            "chain {} in table {} can reach itself through {} (the kernel refuses loops: ELOOP)",
                            names[n],
                            table_name(table),
                            names[c]
                        )))
                    }
                    Mark::New => {
                        marks[n] = Mark::Active;
                        stack.push((n, 0));
                    }
                    Mark::Done => {}
                }
            }
        }
    }
    Ok(())
}
