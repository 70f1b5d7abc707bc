//! `-m MODULE` option parsing: each module collects its options, then checks them and becomes a
//! [`Match`] once the whole rule has been read (some checks need the rule's `-p`).

use super::ast::{
    AddrTypes, ConntrackMatch, CtStates, IcmpType, Match, MultiportSide, Neg, PhysdevMatch, PortRange, Recent,
    RecentCommand, Statistic, TcpFlags,
};
use super::names;
use super::values::{parse_bounded, parse_cidr, parse_iface, parse_mark, parse_port_range, parse_probability};
use crate::net::{Cidr, Family};

/// What a module needs to know about the rule around it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RuleInfo {
    /// Ruleset family.
    pub family: Family,
    /// The rule's `-p`, if given so far.
    pub proto: Option<Neg<u8>>,
}

/// Reads the value of an option from the rule's words (borrowed: most values are only read).
pub(crate) type NextValue<'a, 'v> = &'a mut dyn FnMut() -> Result<&'v str, String>;

/// A module being read.
#[derive(Debug, Clone)]
pub(crate) enum ModuleBuilder {
    Ports {
        kind: PortsKind,
        sport: Option<Neg<PortRange>>,
        dport: Option<Neg<PortRange>>,
        flags: Option<Neg<TcpFlags>>,
    },
    Multiport {
        side: Option<MultiportSide>,
        ports: Vec<PortRange>,
        negated: bool,
    },
    Comment(Option<String>),
    Mark(Option<Neg<(u32, u32)>>),
    Connmark(Option<Neg<(u32, u32)>>),
    AddrType {
        src: Option<Neg<AddrTypes>>,
        dst: Option<Neg<AddrTypes>>,
        limit_in: bool,
        limit_out: bool,
    },
    Statistic {
        mode: Option<String>,
        probability: Option<u32>,
        every: Option<u32>,
        packet: Option<u32>,
        negated: bool,
    },
    Recent {
        command: Option<RecentCommand>,
        negated: bool,
        name: Option<String>,
        seconds: Option<u32>,
        reap: bool,
        hitcount: Option<u32>,
        rttl: bool,
        mask: Option<std::net::IpAddr>,
        side: Option<bool>,
    },
    Conntrack(Box<ConntrackMatch>, bool),
    State(Option<Neg<CtStates>>),
    Icmp {
        v6: bool,
        kind: Option<Neg<IcmpType>>,
    },
    Nfacct(Option<String>),
    Physdev(Box<PhysdevMatch>),
}

/// tcp, udp or sctp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PortsKind {
    Tcp,
    Udp,
    Sctp,
}

impl PortsKind {
    fn proto(self) -> u8 {
        match self {
            PortsKind::Tcp => 6,
            PortsKind::Udp => 17,
            PortsKind::Sctp => 132,
        }
    }

    fn name(self) -> &'static str {
        match self {
            PortsKind::Tcp => "tcp",
            PortsKind::Udp => "udp",
            PortsKind::Sctp => "sctp",
        }
    }
}

fn once<T>(slot: &Option<T>, option: &str) -> Result<(), String> {
    if slot.is_some() {
        return Err(format!("option \"{option}\" can only be given once"));
    }
    Ok(())
}

fn no_invert(negated: bool, option: &str) -> Result<(), String> {
    if negated {
        return Err(format!("option \"{option}\" cannot be inverted"));
    }
    Ok(())
}

fn parse_flag_list<T: Copy + std::ops::BitOr<Output = T> + Default>(
    text: &str,
    table: &[(&str, T)],
    what: &str,
) -> Result<T, String> {
    let mut bits = T::default();
    for word in text.split(',') {
        // `to_ascii_uppercase(word) == name` without allocating (the names are upper-case ASCII).
        match table.iter().find(|(n, _)| n.eq_ignore_ascii_case(word)) {
            Some((_, b)) => bits = bits | *b,
            None => return Err(format!("bad {what} {word:?}")),
        }
    }
    Ok(bits)
}

fn parse_icmp_type(text: &str, v6: bool) -> Result<IcmpType, String> {
    let table = if v6 { names::ICMP6_TYPES } else { names::ICMP_TYPES };
    if let Some((_, kind, lo, hi)) = table.iter().find(|(n, ..)| n.eq_ignore_ascii_case(text)) {
        let code = if (*lo, *hi) == (0, 0xFF) { None } else { Some((*lo, *hi)) };
        return Ok(IcmpType { kind: *kind, code });
    }
    let (kind_text, code_text) = match text.split_once('/') {
        Some((k, c)) => (k, Some(c)),
        None => (text, None),
    };
    let bad = || format!("invalid ICMP type {text:?}");
    let kind: u8 = kind_text.parse().map_err(|_| bad())?;
    let code = match code_text {
        None => None,
        Some(c) => {
            let c: u8 = c.parse().map_err(|_| bad())?;
            Some((c, c))
        }
    };
    Ok(IcmpType { kind, code })
}

impl ModuleBuilder {
    /// A fresh module by `-m` name, or `None` when kubenat does not know it.
    pub(crate) fn new(name: &str, family: Family) -> Option<ModuleBuilder> {
        let ports = |kind| ModuleBuilder::Ports { kind, sport: None, dport: None, flags: None };
        Some(match name {
            "tcp" => ports(PortsKind::Tcp),
            "udp" => ports(PortsKind::Udp),
            "sctp" => ports(PortsKind::Sctp),
            "multiport" => ModuleBuilder::Multiport { side: None, ports: Vec::new(), negated: false },
            "comment" => ModuleBuilder::Comment(None),
            "mark" => ModuleBuilder::Mark(None),
            "connmark" => ModuleBuilder::Connmark(None),
            "addrtype" => ModuleBuilder::AddrType { src: None, dst: None, limit_in: false, limit_out: false },
            "statistic" => {
                ModuleBuilder::Statistic { mode: None, probability: None, every: None, packet: None, negated: false }
            }
            "recent" => ModuleBuilder::Recent {
                command: None,
                negated: false,
                name: None,
                seconds: None,
                reap: false,
                hitcount: None,
                rttl: false,
                mask: None,
                side: None,
            },
            "conntrack" => ModuleBuilder::Conntrack(Box::default(), false),
            "state" => ModuleBuilder::State(None),
            "icmp" if family == Family::V4 => ModuleBuilder::Icmp { v6: false, kind: None },
            "icmp6" if family == Family::V6 => ModuleBuilder::Icmp { v6: true, kind: None },
            "nfacct" => ModuleBuilder::Nfacct(None),
            "physdev" => ModuleBuilder::Physdev(Box::default()),
            _ => return None,
        })
    }

    /// The implicit module `-p NAME` loads for an unknown option (`-p tcp --dport 80`).
    pub(crate) fn implicit_for(proto: u8, family: Family) -> Option<&'static str> {
        match (proto, family) {
            (6, _) => Some("tcp"),
            (17, _) => Some("udp"),
            (132, _) => Some("sctp"),
            (1, Family::V4) => Some("icmp"),
            (58, Family::V6) => Some("icmp6"),
            _ => None,
        }
    }

    /// The `-m` name of the module.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            ModuleBuilder::Ports { kind, .. } => kind.name(),
            ModuleBuilder::Multiport { .. } => "multiport",
            ModuleBuilder::Comment(_) => "comment",
            ModuleBuilder::Mark(_) => "mark",
            ModuleBuilder::Connmark(_) => "connmark",
            ModuleBuilder::AddrType { .. } => "addrtype",
            ModuleBuilder::Statistic { .. } => "statistic",
            ModuleBuilder::Recent { .. } => "recent",
            ModuleBuilder::Conntrack(..) => "conntrack",
            ModuleBuilder::State(_) => "state",
            ModuleBuilder::Icmp { v6: false, .. } => "icmp",
            ModuleBuilder::Icmp { v6: true, .. } => "icmp6",
            ModuleBuilder::Nfacct(_) => "nfacct",
            ModuleBuilder::Physdev(_) => "physdev",
        }
    }

    /// Whether `option` belongs to this module.
    pub(crate) fn knows(&self, option: &str) -> bool {
        let list: &[&str] = match self {
            ModuleBuilder::Ports { kind: PortsKind::Tcp, .. } => {
                &["--sport", "--source-port", "--dport", "--destination-port", "--tcp-flags", "--syn"]
            }
            ModuleBuilder::Ports { .. } => &["--sport", "--source-port", "--dport", "--destination-port"],
            ModuleBuilder::Multiport { .. } => {
                &["--sports", "--source-ports", "--dports", "--destination-ports", "--ports"]
            }
            ModuleBuilder::Comment(_) => &["--comment"],
            ModuleBuilder::Mark(_) | ModuleBuilder::Connmark(_) => &["--mark"],
            ModuleBuilder::AddrType { .. } => &["--src-type", "--dst-type", "--limit-iface-in", "--limit-iface-out"],
            ModuleBuilder::Statistic { .. } => &["--mode", "--probability", "--every", "--packet"],
            ModuleBuilder::Recent { .. } => &[
                "--set",
                "--rcheck",
                "--update",
                "--remove",
                "--seconds",
                "--reap",
                "--hitcount",
                "--rttl",
                "--name",
                "--mask",
                "--rsource",
                "--rdest",
            ],
            ModuleBuilder::Conntrack(..) => &[
                "--ctstate",
                "--ctproto",
                "--ctorigsrc",
                "--ctorigdst",
                "--ctreplsrc",
                "--ctrepldst",
                "--ctorigsrcport",
                "--ctorigdstport",
                "--ctreplsrcport",
                "--ctrepldstport",
                "--ctstatus",
                "--ctdir",
            ],
            ModuleBuilder::State(_) => &["--state"],
            ModuleBuilder::Icmp { v6: false, .. } => &["--icmp-type"],
            ModuleBuilder::Icmp { v6: true, .. } => &["--icmpv6-type"],
            ModuleBuilder::Nfacct(_) => &["--nfacct-name"],
            ModuleBuilder::Physdev(_) => {
                &["--physdev-in", "--physdev-out", "--physdev-is-in", "--physdev-is-out", "--physdev-is-bridged"]
            }
        };
        list.contains(&option)
    }

    /// Applies one option (already known to belong here).
    pub(crate) fn apply(
        &mut self,
        option: &str,
        negated: bool,
        info: RuleInfo,
        value: NextValue<'_, '_>,
    ) -> Result<(), String> {
        let family = info.family;
        match self {
            ModuleBuilder::Ports { kind, sport, dport, flags } => {
                let proto = Some(kind.name());
                match option {
                    "--sport" | "--source-port" => {
                        if sport.is_some() {
                            return Err("Only one `--source-port' allowed".into());
                        }
                        *sport = Some(Neg { value: parse_port_range(value()?, proto, ':')?, negated });
                    }
                    "--dport" | "--destination-port" => {
                        if dport.is_some() {
                            return Err("Only one `--destination-port' allowed".into());
                        }
                        *dport = Some(Neg { value: parse_port_range(value()?, proto, ':')?, negated });
                    }
                    "--syn" => {
                        once(flags, "--tcp-flags")?;
                        *flags = Some(Neg { value: TcpFlags { mask: 0x17, comp: 0x02 }, negated });
                    }
                    _ => {
                        once(flags, "--tcp-flags")?;
                        let mask = parse_flag_list(value()?, names::TCP_FLAGS, "TCP flag")?;
                        let comp = parse_flag_list(value()?, names::TCP_FLAGS, "TCP flag")?;
                        *flags = Some(Neg { value: TcpFlags { mask, comp }, negated });
                    }
                }
            }
            ModuleBuilder::Multiport { side, ports, negated: neg } => {
                if side.is_some() {
                    return Err("multiport can only have one option".into());
                }
                let proto = match info.proto {
                    Some(Neg { value, negated: false }) => names::port_proto_name(value),
                    _ => None,
                }
                .ok_or("multiport needs `-p tcp', `-p udp', `-p udplite', `-p sctp' or `-p dccp'")?;
                *side = Some(match option {
                    "--sports" | "--source-ports" => MultiportSide::Source,
                    "--dports" | "--destination-ports" => MultiportSide::Destination,
                    _ => MultiportSide::Either,
                });
                *neg = negated;
                let mut slots = 0;
                for item in value()?.split(',') {
                    let range = parse_port_range(item, Some(proto), ':')?;
                    slots += if item.contains(':') { 2 } else { 1 };
                    if slots > 15 {
                        return Err("too many ports specified".into());
                    }
                    ports.push(range);
                }
            }
            ModuleBuilder::Comment(slot) => {
                no_invert(negated, option)?;
                once(slot, option)?;
                // The kernel keeps 255 bytes of a comment and drops the rest.
                *slot = Some(super::values::truncate_bytes(value()?, 255).to_string());
            }
            ModuleBuilder::Mark(slot) | ModuleBuilder::Connmark(slot) => {
                once(slot, option)?;
                *slot = Some(Neg { value: parse_mark(value()?)?, negated });
            }
            ModuleBuilder::AddrType { src, dst, limit_in, limit_out } => match option {
                "--src-type" | "--dst-type" => {
                    let slot = if option == "--src-type" { src } else { dst };
                    once(slot, option)?;
                    let types = parse_flag_list(value()?, names::ADDR_TYPES, "address type")?;
                    *slot = Some(Neg { value: AddrTypes(types), negated });
                }
                _ => {
                    no_invert(negated, option)?;
                    if *limit_in || *limit_out {
                        return Err(
                            "option \"--limit-iface-in\" cannot be used together with \"--limit-iface-out\"".into()
                        );
                    }
                    if option == "--limit-iface-in" {
                        *limit_in = true;
                    } else {
                        *limit_out = true;
                    }
                }
            },
            ModuleBuilder::Statistic { mode, probability, every, packet, negated: neg } => match option {
                "--mode" => {
                    no_invert(negated, option)?;
                    once(mode, option)?;
                    let m = value()?;
                    if m != "random" && m != "nth" {
                        return Err(format!("Bad mode {m:?}"));
                    }
                    *mode = Some(m.to_string());
                }
                "--probability" => {
                    once(probability, option)?;
                    *probability = Some(parse_probability(value()?)?);
                    *neg |= negated;
                }
                "--every" => {
                    once(every, option)?;
                    let n = parse_bounded(value()?, u32::MAX)?;
                    if n == 0 {
                        return Err("--every must be at least 1".into());
                    }
                    *every = Some(n);
                    *neg |= negated;
                }
                _ => {
                    no_invert(negated, option)?;
                    once(packet, option)?;
                    *packet = Some(parse_bounded(value()?, u32::MAX)?);
                }
            },
            ModuleBuilder::Recent { command, negated: neg, name, seconds, reap, hitcount, rttl, mask, side } => {
                match option {
                    "--set" | "--rcheck" | "--update" | "--remove" => {
                        if let Some(c) = command {
                            return Err(format!(
                                "option \"{}\" cannot be used together with \"{option}\"",
                                recent_command_option(*c)
                            ));
                        }
                        *command = Some(match option {
                            "--set" => RecentCommand::Set,
                            "--rcheck" => RecentCommand::Check,
                            "--update" => RecentCommand::Update,
                            _ => RecentCommand::Remove,
                        });
                        *neg = negated;
                    }
                    "--seconds" => {
                        no_invert(negated, option)?;
                        *seconds = Some(parse_bounded(value()?, u32::MAX)?);
                    }
                    "--hitcount" => {
                        no_invert(negated, option)?;
                        *hitcount = Some(parse_bounded(value()?, u32::MAX)?);
                    }
                    "--reap" => *reap = true,
                    "--rttl" => *rttl = true,
                    "--name" => {
                        no_invert(negated, option)?;
                        let n = value()?;
                        if n.is_empty() || n.len() > 199 {
                            return Err("--name must be 1 to 199 characters".into());
                        }
                        *name = Some(n.to_string());
                    }
                    "--mask" => {
                        no_invert(negated, option)?;
                        *mask = Some(super::values::parse_addr(value()?, family)?);
                    }
                    "--rsource" => *side = Some(false),
                    _ => *side = Some(true),
                }
            }
            ModuleBuilder::Conntrack(ct, any) => {
                *any = true;
                apply_conntrack(ct, option, negated, family, value)?;
            }
            ModuleBuilder::State(slot) => {
                once(slot, option)?;
                let states = parse_flag_list(value()?, &names::CT_STATES[..5], "state")?;
                *slot = Some(Neg { value: CtStates(states), negated });
            }
            ModuleBuilder::Icmp { v6, kind } => {
                once(kind, option)?;
                *kind = Some(Neg { value: parse_icmp_type(value()?, *v6)?, negated });
            }
            ModuleBuilder::Nfacct(slot) => {
                no_invert(negated, option)?;
                once(slot, option)?;
                *slot = Some(value()?.to_string());
            }
            ModuleBuilder::Physdev(p) => match option {
                "--physdev-in" => p.physdev_in = Some(Neg { value: parse_iface(value()?)?, negated }),
                "--physdev-out" => p.physdev_out = Some(Neg { value: parse_iface(value()?)?, negated }),
                "--physdev-is-in" => p.is_in = Some(!negated),
                "--physdev-is-out" => p.is_out = Some(!negated),
                _ => p.is_bridged = Some(!negated),
            },
        }
        Ok(())
    }

    /// Checks the collected options and builds the match.
    pub(crate) fn finish(self, info: RuleInfo) -> Result<Match, String> {
        let proto_is = |want: u8| matches!(info.proto, Some(Neg { value, negated: false }) if value == want);
        Ok(match self {
            ModuleBuilder::Ports { kind, sport, dport, flags } => {
                if !proto_is(kind.proto()) {
                    let upper = kind.name().to_ascii_uppercase();
                    return Err(format!("{upper} match requires '-p {}'", kind.name()));
                }
                // The full range is what the kernel stores for "no port given".
                let full = |r: Option<Neg<PortRange>>| {
                    r.filter(|n| n.negated || n.value != PortRange { first: 0, last: u16::MAX })
                };
                let (sport, dport) = (full(sport), full(dport));
                match kind {
                    PortsKind::Tcp => Match::Tcp { sport, dport, flags },
                    PortsKind::Udp => Match::Udp { sport, dport },
                    PortsKind::Sctp => Match::Sctp { sport, dport },
                }
            }
            ModuleBuilder::Multiport { side, ports, negated } => {
                let side = side.ok_or("multiport expects an option (--sports, --dports or --ports)")?;
                Match::Multiport { side, ports, negated }
            }
            ModuleBuilder::Comment(c) => Match::Comment(c.ok_or("comment: option \"--comment\" must be specified")?),
            ModuleBuilder::Mark(m) => Match::Mark(m.ok_or("mark: option \"--mark\" must be specified")?),
            ModuleBuilder::Connmark(m) => Match::Connmark(m.ok_or("connmark: option \"--mark\" must be specified")?),
            ModuleBuilder::AddrType { src, dst, limit_in, limit_out } => {
                if src.is_none() && dst.is_none() {
                    return Err("addrtype: you must specify --src-type or --dst-type".into());
                }
                if info.family == Family::V6 {
                    // xt_addrtype's checkentry refuses these for IPv6 (EINVAL; iptables-restore
                    // says only "RULE_APPEND failed (Invalid argument)"); the kernel's log line,
                    // checked in the kernel's order, says which.
                    let used = src.map_or(0, |t| t.value.0) | dst.map_or(0, |t| t.value.0);
                    let why = if used & AddrTypes::BLACKHOLE != 0 {
                        Some("ipv6 BLACKHOLE matching not supported")
                    } else if used >= AddrTypes::PROHIBIT {
                        Some("ipv6 PROHIBIT (THROW, NAT ..) matching not supported")
                    } else if used & AddrTypes::BROADCAST != 0 {
                        Some("ipv6 does not support BROADCAST matching")
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        return Err(format!("addrtype: {why} (the kernel refuses the rule: Invalid argument)"));
                    }
                }
                Match::AddrType { src, dst, limit_iface_in: limit_in, limit_iface_out: limit_out }
            }
            ModuleBuilder::Statistic { mode, probability, every, packet, negated } => {
                let value = match mode.as_deref().unwrap_or("random") {
                    "random" => {
                        if every.is_some() || packet.is_some() {
                            return Err("--every and --packet only work with nth mode".into());
                        }
                        Statistic::Random {
                            probability: probability.ok_or("--probability must be specified when using random mode")?,
                        }
                    }
                    _ => {
                        if probability.is_some() {
                            return Err("--probability only works with random mode".into());
                        }
                        let every = every.ok_or("--every must be specified when using nth mode")?;
                        let packet = packet.ok_or("statistic: option \"--every\" also requires \"--packet\".")?;
                        if packet >= every {
                            return Err("the --packet p must be 0 <= p <= n-1".into());
                        }
                        Statistic::Nth { every, packet }
                    }
                };
                Match::Statistic(Neg { value, negated })
            }
            ModuleBuilder::Recent { command, negated, name, seconds, reap, hitcount, rttl, mask, side } => {
                let command =
                    command.ok_or("recent: you must specify one of `--set', `--rcheck' `--update' or `--remove'")?;
                let seconds = seconds.filter(|s| *s != 0);
                let hitcount = hitcount.filter(|h| *h != 0);
                let modifies = matches!(command, RecentCommand::Set | RecentCommand::Remove);
                if modifies && (seconds.is_some() || hitcount.is_some() || reap || rttl) {
                    return Err(
                        "recent: --seconds, --hitcount, --reap and --rttl only work with --rcheck or --update".into()
                    );
                }
                if reap && seconds.is_none() {
                    return Err("recent: --reap needs --seconds".into());
                }
                if hitcount.is_some_and(|h| h > 65535) {
                    return Err(
                        "recent: --hitcount must be at most 65535 (the kernel refuses it: Invalid argument)".into()
                    );
                }
                Match::Recent(Box::new(Recent {
                    command,
                    name: name.unwrap_or_else(|| "DEFAULT".into()),
                    seconds,
                    reap,
                    hitcount,
                    rttl,
                    mask: mask.unwrap_or_else(|| Cidr::any(info.family).netmask_all_ones()),
                    use_destination: side.unwrap_or(false),
                    negated,
                }))
            }
            ModuleBuilder::Conntrack(ct, any) => {
                if !any {
                    return Err("conntrack: At least one option is required".into());
                }
                Match::Conntrack(ct)
            }
            ModuleBuilder::State(s) => Match::State(s.ok_or("state: option \"--state\" must be specified")?),
            ModuleBuilder::Icmp { v6, kind } => {
                let (want, name) = if v6 { (58, "ipv6-icmp") } else { (1, "icmp") };
                if !proto_is(want) {
                    return Err(format!("{name} match requires '-p {name}'"));
                }
                let kind = kind.unwrap_or(Neg::plain(IcmpType { kind: 0xFF, code: None }));
                if v6 {
                    Match::Icmp6(kind)
                } else {
                    Match::Icmp(kind)
                }
            }
            ModuleBuilder::Nfacct(n) => Match::Nfacct(n.ok_or("nfacct: option \"--nfacct-name\" must be specified")?),
            ModuleBuilder::Physdev(p) => {
                if *p == PhysdevMatch::default() {
                    return Err("PHYSDEV: no physdev option specified".into());
                }
                Match::Physdev(p)
            }
        })
    }
}

fn recent_command_option(c: RecentCommand) -> &'static str {
    match c {
        RecentCommand::Set => "--set",
        RecentCommand::Check => "--rcheck",
        RecentCommand::Update => "--update",
        RecentCommand::Remove => "--remove",
    }
}

fn apply_conntrack(
    ct: &mut ConntrackMatch,
    option: &str,
    negated: bool,
    family: Family,
    value: NextValue<'_, '_>,
) -> Result<(), String> {
    let addr = |slot: &mut Option<Neg<Cidr>>, written: &mut Option<std::net::IpAddr>, v: &str| {
        once(slot, option)?;
        let cidr = parse_cidr(v, family)?;
        // Keep the address as written when it has host bits: the kernel prints it back so.
        let as_written = super::values::parse_addr(v.split('/').next().unwrap_or(""), family)?;
        *written = (as_written != cidr.addr()).then_some(as_written);
        *slot = Some(Neg { value: cidr, negated });
        Ok::<(), String>(())
    };
    let port = |slot: &mut Option<Neg<PortRange>>, v: &str| -> Result<(), String> {
        once(slot, option)?;
        *slot = Some(Neg { value: parse_port_range(v, None, ':')?, negated });
        Ok(())
    };
    match option {
        "--ctstate" => {
            once(&ct.state, option)?;
            let states = parse_flag_list(value()?, names::CT_STATES, "ctstate")?;
            ct.state = Some(Neg { value: CtStates(states), negated });
        }
        "--ctproto" => {
            once(&ct.proto, option)?;
            let v = value()?;
            let p = names::protocol_number(v).ok_or_else(|| format!("unknown protocol {v:?}"))?;
            if p == 0 {
                return Err("conntrack: --ctproto 0 (all) is not allowed".into());
            }
            ct.proto = Some(Neg { value: p, negated });
        }
        "--ctorigsrc" => addr(&mut ct.orig_src, &mut ct.written_addrs[0], value()?)?,
        "--ctorigdst" => addr(&mut ct.orig_dst, &mut ct.written_addrs[1], value()?)?,
        "--ctreplsrc" => addr(&mut ct.repl_src, &mut ct.written_addrs[2], value()?)?,
        "--ctrepldst" => addr(&mut ct.repl_dst, &mut ct.written_addrs[3], value()?)?,
        "--ctorigsrcport" => port(&mut ct.orig_src_port, value()?)?,
        "--ctorigdstport" => port(&mut ct.orig_dst_port, value()?)?,
        "--ctreplsrcport" => port(&mut ct.repl_src_port, value()?)?,
        "--ctrepldstport" => port(&mut ct.repl_dst_port, value()?)?,
        "--ctstatus" => {
            once(&ct.status, option)?;
            let v = value()?;
            let bits =
                if v.eq_ignore_ascii_case("NONE") { 0 } else { parse_flag_list(v, names::CT_STATUS, "ctstatus")? };
            ct.status = Some(Neg { value: bits, negated });
        }
        _ => {
            no_invert(negated, option)?;
            once(&ct.direction_reply, option)?;
            let v = value()?;
            ct.direction_reply = Some(match v.to_ascii_uppercase().as_str() {
                "ORIGINAL" => false,
                "REPLY" => true,
                _ => return Err(format!("Unknown --ctdir {v:?}")),
            });
        }
    }
    Ok(())
}

/// The all-ones mask of a family, the default of `recent --mask`.
trait AllOnes {
    fn netmask_all_ones(&self) -> std::net::IpAddr;
}

impl AllOnes for Cidr {
    fn netmask_all_ones(&self) -> std::net::IpAddr {
        Cidr::host(self.addr()).netmask()
    }
}
