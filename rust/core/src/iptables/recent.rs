//! The `recent` match's address lists (`/proc/net/xt_recent/NAME`), as `xt_recent.c` keeps them.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::iptables::ast::{Recent, RecentCommand};

/// Time stamps kept per address (`ip_pkt_list_tot` default).
pub const STAMPS_PER_ENTRY: usize = 20;
/// Addresses kept per list (`ip_list_tot` default); the least recently used one is evicted.
pub const ENTRIES_PER_LIST: usize = 200;

/// One address in a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentEntry {
    /// Time stamps in milliseconds, oldest first (at most [`STAMPS_PER_ENTRY`]).
    pub stamps: Vec<i64>,
    /// TTL of the last packet seen (for `--rttl`).
    pub ttl: u8,
    /// Use order, for least-recently-used eviction.
    pub used: u64,
}

/// One named list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecentList {
    /// Entries by (masked) address.
    pub entries: HashMap<IpAddr, RecentEntry>,
    /// Use counter.
    pub clock: u64,
}

impl RecentList {
    fn touch(&mut self, addr: IpAddr, now: i64, ttl: u8) {
        self.clock += 1;
        let used = self.clock;
        if !self.entries.contains_key(&addr) && self.entries.len() >= ENTRIES_PER_LIST {
            if let Some(oldest) = self.entries.iter().min_by_key(|(_, e)| e.used).map(|(a, _)| *a) {
                self.entries.remove(&oldest);
            }
        }
        let e = self.entries.entry(addr).or_insert(RecentEntry { stamps: Vec::new(), ttl, used });
        if e.stamps.len() >= STAMPS_PER_ENTRY {
            e.stamps.remove(0);
        }
        e.stamps.push(now);
        e.ttl = ttl;
        e.used = used;
    }

    /// Runs one `recent` match against this list, as `recent_mt` does; returns whether it matched.
    pub fn check(&mut self, r: &Recent, addr: IpAddr, ttl: u8, now: i64) -> bool {
        let mut ret = r.negated;
        let found = matches!(self.entries.get(&addr), Some(e) if !r.rttl || e.ttl == ttl);
        if !found {
            if r.command == RecentCommand::Set {
                self.touch(addr, now, ttl);
                ret = !ret;
            }
            return ret;
        }
        match r.command {
            RecentCommand::Set => ret = !ret,
            RecentCommand::Remove => {
                self.entries.remove(&addr);
                return !ret;
            }
            RecentCommand::Check | RecentCommand::Update => {
                let window_start = now - i64::from(r.seconds.unwrap_or(0)) * 1000;
                let e = &self.entries[&addr];
                let mut hits = 0u32;
                for &stamp in &e.stamps {
                    if r.seconds.is_some_and(|s| s > 0) && stamp < window_start {
                        continue;
                    }
                    hits += 1;
                    if r.hitcount.map_or(true, |h| h == 0 || hits >= h) {
                        ret = !ret;
                        break;
                    }
                }
                if r.reap && r.seconds.is_some_and(|s| s > 0) {
                    // recent_entry_reap: looks at the least recently used entry of the whole list,
                    // except the one about to be updated, and drops it when it is stale.
                    let keep = r.command == RecentCommand::Update && ret;
                    let oldest = self.entries.iter().min_by_key(|(_, e)| e.used).map(|(a, e)| (*a, e));
                    if let Some((oldest_addr, oldest)) = oldest {
                        let stale = oldest.stamps.last().copied().unwrap_or(i64::MIN) < window_start;
                        if stale && !(keep && oldest_addr == addr) {
                            self.entries.remove(&oldest_addr);
                        }
                    }
                }
            }
        }
        if r.command == RecentCommand::Set || (r.command == RecentCommand::Update && ret) {
            self.touch(addr, now, ttl);
        }
        ret
    }
}

/// Masks an address with the `--mask` of a rule.
pub fn masked(addr: IpAddr, mask: IpAddr) -> IpAddr {
    match (addr, mask) {
        (IpAddr::V4(a), IpAddr::V4(m)) => IpAddr::V4((u32::from(a) & u32::from(m)).into()),
        (IpAddr::V6(a), IpAddr::V6(m)) => IpAddr::V6((u128::from(a) & u128::from(m)).into()),
        (a, _) => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(command: RecentCommand, seconds: Option<u32>, hitcount: Option<u32>) -> Recent {
        Recent {
            command,
            name: "X".into(),
            seconds,
            reap: false,
            hitcount,
            rttl: false,
            mask: "255.255.255.255".parse().unwrap(),
            use_destination: false,
            negated: false,
        }
    }

    #[test]
    fn set_then_check_within_window() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let mut l = RecentList::default();
        assert!(!l.check(&rule(RecentCommand::Check, Some(10), None), a, 64, 0));
        assert!(l.check(&rule(RecentCommand::Set, None, None), a, 64, 0));
        assert!(l.check(&rule(RecentCommand::Check, Some(10), None), a, 64, 10_000));
        assert!(!l.check(&rule(RecentCommand::Check, Some(10), None), a, 64, 10_001));
        assert!(l.check(&rule(RecentCommand::Check, None, None), a, 64, 99_000_000));
    }

    #[test]
    fn hitcount_and_update() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let mut l = RecentList::default();
        l.check(&rule(RecentCommand::Set, None, None), a, 64, 0);
        assert!(!l.check(&rule(RecentCommand::Check, Some(60), Some(2)), a, 64, 1));
        assert!(l.check(&rule(RecentCommand::Update, Some(60), None), a, 64, 2));
        assert!(l.check(&rule(RecentCommand::Check, Some(60), Some(2)), a, 64, 3));
        assert!(l.check(&rule(RecentCommand::Remove, None, None), a, 64, 4));
        assert!(!l.check(&rule(RecentCommand::Check, None, None), a, 64, 5));
    }

    #[test]
    fn negation_and_eviction() {
        let mut l = RecentList::default();
        let mut r = rule(RecentCommand::Check, None, None);
        r.negated = true;
        assert!(l.check(&r, "10.0.0.1".parse().unwrap(), 64, 0));
        for i in 0..=ENTRIES_PER_LIST {
            let a = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i as u32));
            l.check(&rule(RecentCommand::Set, None, None), a, 64, 0);
        }
        assert_eq!(l.entries.len(), ENTRIES_PER_LIST);
        assert!(!l.entries.contains_key(&"10.0.0.0".parse().unwrap()));
    }

    #[test]
    fn mask_applies() {
        assert_eq!(
            masked("10.1.2.3".parse().unwrap(), "255.255.0.0".parse().unwrap()),
            "10.1.0.0".parse::<IpAddr>().unwrap()
        );
    }
}
