//! `-j TARGET` option parsing, normalised to what the kernel stores (`--or-mark X` becomes
//! `--set-xmark X/X`, and so on, following libxt_MARK and libxt_CONNMARK).

use std::net::IpAddr;

use super::ast::{ConnmarkOp, LogOptions, NatRange, Neg, NflogOptions, PortRange, RejectWith, Target};
use super::matches::{NextValue, RuleInfo};
use super::names;
use super::values::{parse_addr, parse_bounded, parse_mark, parse_port, parse_u32, truncate_bytes};
use crate::net::Family;

/// Targets built into iptables (everything else after `-j` is a chain name).
pub(crate) const TARGET_NAMES: &[&str] = &[
    "ACCEPT",
    "DROP",
    "RETURN",
    "REJECT",
    "DNAT",
    "SNAT",
    "MASQUERADE",
    "REDIRECT",
    "MARK",
    "CONNMARK",
    "LOG",
    "NFLOG",
    "NOTRACK",
    "CT",
];

/// A target being read.
#[derive(Debug, Clone)]
pub(crate) enum TargetBuilder {
    /// ACCEPT, DROP, RETURN, NOTRACK, jumps: no options.
    Plain(Target),
    Reject(Option<RejectWith>),
    Nat {
        kind: NatKind,
        range: Option<NatRange>,
        random: bool,
        random_fully: bool,
        persistent: bool,
    },
    Ports {
        masquerade: bool,
        ports: Option<PortRange>,
        random: bool,
        random_fully: bool,
    },
    Mark(Option<(u32, u32)>),
    Connmark {
        op: Option<ConnmarkOp>,
        nfmask: Option<u32>,
        ctmask: Option<u32>,
    },
    Log(LogOptions),
    Nflog(NflogOptions),
    Ct {
        notrack: bool,
        helper: Option<String>,
        zone: Option<u16>,
        timeout: Option<String>,
    },
}

/// DNAT or SNAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NatKind {
    Dnat,
    Snat,
}

impl TargetBuilder {
    /// The builder for `-j NAME` (`goto` for `-g`); `None` when the name is a chain.
    pub(crate) fn new(name: &str) -> Option<TargetBuilder> {
        let nat =
            |kind| TargetBuilder::Nat { kind, range: None, random: false, random_fully: false, persistent: false };
        Some(match name {
            "ACCEPT" => TargetBuilder::Plain(Target::Accept),
            "DROP" => TargetBuilder::Plain(Target::Drop),
            "RETURN" => TargetBuilder::Plain(Target::Return),
            "NOTRACK" => TargetBuilder::Plain(Target::Notrack),
            "REJECT" => TargetBuilder::Reject(None),
            "DNAT" => nat(NatKind::Dnat),
            "SNAT" => nat(NatKind::Snat),
            "MASQUERADE" => TargetBuilder::Ports { masquerade: true, ports: None, random: false, random_fully: false },
            "REDIRECT" => TargetBuilder::Ports { masquerade: false, ports: None, random: false, random_fully: false },
            "MARK" => TargetBuilder::Mark(None),
            "CONNMARK" => TargetBuilder::Connmark { op: None, nfmask: None, ctmask: None },
            "LOG" => TargetBuilder::Log(LogOptions::default()),
            "NFLOG" => TargetBuilder::Nflog(NflogOptions::default()),
            "CT" => TargetBuilder::Ct { notrack: false, helper: None, zone: None, timeout: None },
            _ => return None,
        })
    }

    /// Whether `option` belongs to this target.
    pub(crate) fn knows(&self, option: &str) -> bool {
        let list: &[&str] = match self {
            TargetBuilder::Plain(_) => &[],
            TargetBuilder::Reject(_) => &["--reject-with"],
            TargetBuilder::Nat { kind: NatKind::Dnat, .. } => &["--to-destination", "--random", "--persistent"],
            TargetBuilder::Nat { kind: NatKind::Snat, .. } => {
                &["--to-source", "--random", "--random-fully", "--persistent"]
            }
            TargetBuilder::Ports { masquerade: true, .. } => &["--to-ports", "--random", "--random-fully"],
            TargetBuilder::Ports { masquerade: false, .. } => &["--to-ports", "--random"],
            TargetBuilder::Mark(_) => &["--set-xmark", "--set-mark", "--and-mark", "--or-mark", "--xor-mark"],
            TargetBuilder::Connmark { .. } => &[
                "--set-xmark",
                "--set-mark",
                "--and-mark",
                "--or-mark",
                "--xor-mark",
                "--save-mark",
                "--restore-mark",
                "--mask",
                "--nfmask",
                "--ctmask",
            ],
            TargetBuilder::Log(_) => &[
                "--log-level",
                "--log-prefix",
                "--log-tcp-sequence",
                "--log-tcp-options",
                "--log-ip-options",
                "--log-uid",
                "--log-macdecode",
            ],
            TargetBuilder::Nflog(_) => &["--nflog-group", "--nflog-prefix", "--nflog-size", "--nflog-threshold"],
            TargetBuilder::Ct { .. } => &["--notrack", "--helper", "--zone", "--timeout"],
        };
        list.contains(&option)
    }

    /// Applies one option.
    pub(crate) fn apply(
        &mut self,
        option: &str,
        negated: bool,
        info: RuleInfo,
        value: NextValue<'_, '_>,
    ) -> Result<(), String> {
        if negated {
            return Err(format!("target option \"{option}\" cannot be inverted"));
        }
        match self {
            TargetBuilder::Plain(_) => unreachable_option(option)?,
            TargetBuilder::Reject(with) => {
                let v = value()?;
                let table = if info.family == Family::V4 { names::REJECT_V4 } else { names::REJECT_V6 };
                *with = Some(
                    table
                        .iter()
                        .find(|(n, _)| *n == v)
                        .map(|(_, w)| *w)
                        .ok_or_else(|| format!("unknown reject type {v:?}"))?,
                );
            }
            TargetBuilder::Nat { range, random, random_fully, persistent, .. } => match option {
                "--to-destination" | "--to-source" => {
                    if range.is_some() {
                        return Err(format!("only one {option} is supported"));
                    }
                    *range = Some(parse_nat_range(value()?, info)?);
                }
                "--random" => *random = true,
                "--random-fully" => *random_fully = true,
                _ => *persistent = true,
            },
            TargetBuilder::Ports { ports, random, random_fully, .. } => match option {
                "--to-ports" => {
                    require_port_proto(info)?;
                    *ports = Some(parse_dash_range(value()?)?);
                }
                "--random" => *random = true,
                _ => *random_fully = true,
            },
            TargetBuilder::Mark(slot) => {
                if slot.is_some() {
                    return Err("MARK: only one of --set-xmark, --{and,or,xor,set}-mark can be given".into());
                }
                *slot = Some(mark_op(option, value()?)?);
            }
            TargetBuilder::Connmark { op, nfmask, ctmask } => match option {
                "--mask" => {
                    let m = parse_u32(value()?)?;
                    *nfmask = Some(m);
                    *ctmask = Some(m);
                }
                "--nfmask" => *nfmask = Some(parse_u32(value()?)?),
                "--ctmask" => *ctmask = Some(parse_u32(value()?)?),
                _ => {
                    if op.is_some() {
                        return Err("CONNMARK target: only one operation can be given".into());
                    }
                    *op = Some(match option {
                        "--save-mark" => ConnmarkOp::Save { nfmask: u32::MAX, ctmask: u32::MAX },
                        "--restore-mark" => ConnmarkOp::Restore { nfmask: u32::MAX, ctmask: u32::MAX },
                        _ => {
                            let (value, mask) = mark_op(option, value()?)?;
                            ConnmarkOp::SetXmark { value, mask }
                        }
                    });
                }
            },
            TargetBuilder::Log(log) => match option {
                "--log-level" => {
                    let v = value()?;
                    let level = match names::LOG_LEVEL_WORDS.iter().find(|(n, _)| *n == v) {
                        Some((_, l)) => *l,
                        None => u8::try_from(parse_bounded(v, 7).map_err(|_| format!("log level {v:?} unknown"))?)
                            .map_err(|e| e.to_string())?,
                    };
                    // Level 4 (warning) is the default the kernel stores when none is given.
                    log.level = (level != 4).then_some(level);
                }
                // The kernel keeps 29 bytes of a LOG prefix and drops the rest.
                "--log-prefix" => log.prefix = Some(truncate_bytes(value()?, 29).to_string()).filter(|p| !p.is_empty()),
                flag => {
                    if !log.flags.iter().any(|f| f == flag) {
                        log.flags.push(flag.to_string());
                        log.flags.sort_by_key(|f| names::LOG_FLAGS.iter().position(|(n, _)| n == f));
                    }
                }
            },
            TargetBuilder::Nflog(n) => match option {
                "--nflog-group" => {
                    let g = u16::try_from(parse_bounded(value()?, 65535)?).map_err(|e| e.to_string())?;
                    n.group = (g != 0).then_some(g);
                }
                "--nflog-prefix" => n.prefix = Some(value()?.to_string()).filter(|p| !p.is_empty()),
                "--nflog-size" => n.size = Some(parse_u32(value()?)?),
                _ => {
                    let t = u16::try_from(parse_bounded(value()?, 65535)?).map_err(|e| e.to_string())?;
                    // The kernel's default threshold is 0; iptables-save prints any other value.
                    n.threshold = (t != 0).then_some(t);
                }
            },
            TargetBuilder::Ct { notrack, helper, zone, timeout } => match option {
                "--notrack" => *notrack = true,
                "--helper" => *helper = Some(value()?.to_string()),
                "--zone" => *zone = Some(u16::try_from(parse_bounded(value()?, 65535)?).map_err(|e| e.to_string())?),
                _ => *timeout = Some(value()?.to_string()),
            },
        }
        Ok(())
    }

    /// Checks the collected options and builds the target.
    pub(crate) fn finish(self, info: RuleInfo) -> Result<Target, String> {
        Ok(match self {
            TargetBuilder::Plain(t) => t,
            TargetBuilder::Reject(with) => {
                let with = with.unwrap_or(if info.family == Family::V4 {
                    RejectWith::IcmpPortUnreachable
                } else {
                    RejectWith::Icmp6PortUnreachable
                });
                Target::Reject(with)
            }
            TargetBuilder::Nat { kind, range, random, random_fully, persistent } => {
                let what = if kind == NatKind::Dnat {
                    "DNAT: option \"--to-destination\""
                } else {
                    "SNAT: option \"--to-source\""
                };
                let range = range.ok_or_else(|| format!("{what} must be specified"))?;
                match kind {
                    NatKind::Dnat => Target::Dnat { ranges: vec![range], random, persistent },
                    NatKind::Snat => Target::Snat { ranges: vec![range], random, random_fully, persistent },
                }
            }
            TargetBuilder::Ports { masquerade: true, ports, random, random_fully } => {
                Target::Masquerade { ports, random, random_fully }
            }
            TargetBuilder::Ports { ports, random, .. } => Target::Redirect { ports, random },
            TargetBuilder::Mark(m) => {
                let (value, mask) =
                    m.ok_or("MARK: One of the --set-xmark, --{and,or,xor,set}-mark options is required")?;
                Target::Mark { value, mask }
            }
            TargetBuilder::Connmark { op, nfmask, ctmask } => {
                let op = op.ok_or("CONNMARK target: No operation specified")?;
                Target::Connmark(match op {
                    ConnmarkOp::Save { .. } => {
                        ConnmarkOp::Save { nfmask: nfmask.unwrap_or(u32::MAX), ctmask: ctmask.unwrap_or(u32::MAX) }
                    }
                    ConnmarkOp::Restore { .. } => {
                        ConnmarkOp::Restore { nfmask: nfmask.unwrap_or(u32::MAX), ctmask: ctmask.unwrap_or(u32::MAX) }
                    }
                    set => {
                        if nfmask.is_some() || ctmask.is_some() {
                            return Err(
                                "CONNMARK: --mask, --nfmask and --ctmask only work with --save-mark and --restore-mark"
                                    .into(),
                            );
                        }
                        set
                    }
                })
            }
            TargetBuilder::Log(l) => Target::Log(l),
            TargetBuilder::Nflog(n) => Target::Nflog(n),
            TargetBuilder::Ct { notrack, helper, zone, timeout } => {
                let mut words = Vec::new();
                if notrack {
                    words.push("--notrack".to_string());
                }
                if let Some(h) = helper {
                    words.extend(["--helper".to_string(), h]);
                }
                if let Some(z) = zone.filter(|z| *z != 0) {
                    words.extend(["--zone".to_string(), z.to_string()]);
                }
                if let Some(t) = timeout {
                    words.extend(["--timeout".to_string(), t]);
                }
                Target::Ct(words)
            }
        })
    }
}

fn unreachable_option(option: &str) -> Result<(), String> {
    Err(format!("unknown option \"{option}\""))
}

/// `--set-xmark` and friends as `(value, mask)` in `--set-xmark` terms (libxt_MARK rev 2).
fn mark_op(option: &str, text: &str) -> Result<(u32, u32), String> {
    Ok(match option {
        "--set-xmark" => parse_mark(text)?,
        "--set-mark" => {
            let (v, m) = parse_mark(text)?;
            (v, v | m)
        }
        "--and-mark" => (0, !parse_u32(text)?),
        "--or-mark" => {
            let v = parse_u32(text)?;
            (v, v)
        }
        _ => (parse_u32(text)?, 0),
    })
}

fn require_port_proto(info: RuleInfo) -> Result<(), String> {
    match info.proto {
        Some(Neg { value: 6 | 17 | 132 | 33, .. }) => Ok(()),
        _ => Err("Need TCP, UDP, SCTP or DCCP with port specification".into()),
    }
}

/// `p[-q]` as the NAT targets write port ranges.
fn parse_dash_range(text: &str) -> Result<PortRange, String> {
    let (a, b) = text.split_once('-').unwrap_or((text, text));
    let first = parse_port(a, None)?;
    let last = parse_port(b, None)?;
    if last < first {
        return Err(format!("Port range `{b}' funky"));
    }
    Ok(PortRange { first, last })
}

/// `[ip[-ip]][:port[-port]]`, IPv6 addresses in brackets when ports follow.
fn parse_nat_range(text: &str, info: RuleInfo) -> Result<NatRange, String> {
    let (addr_part, port_part) = match info.family {
        Family::V4 => match text.split_once(':') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        },
        Family::V6 => {
            if let Some(rest) = text.strip_prefix('[') {
                let (a, tail) = rest.split_once(']').ok_or_else(|| format!("invalid address range {text:?}"))?;
                match tail.strip_prefix(':') {
                    Some(p) => (a, Some(p)),
                    None if tail.is_empty() => (a, None),
                    None => return Err(format!("invalid address range {text:?}")),
                }
            } else if let Some(p) = text.strip_prefix(':') {
                ("", Some(p))
            } else {
                (text, None)
            }
        }
    };
    let addrs = if addr_part.is_empty() {
        None
    } else {
        let (a, b) = addr_part.split_once('-').unwrap_or((addr_part, addr_part));
        let first: IpAddr = parse_addr(a, info.family)?;
        let last: IpAddr = parse_addr(b, info.family)?;
        Some((first, last))
    };
    let ports = match port_part {
        None => None,
        Some(p) => {
            require_port_proto(info)?;
            Some(parse_dash_range(p)?)
        }
    };
    if addrs.is_none() && ports.is_none() {
        return Err(format!("invalid NAT range {text:?}"));
    }
    Ok(NatRange { addrs, ports })
}
