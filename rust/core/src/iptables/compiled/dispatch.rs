//! An open-addressing hash table from a packed (destination, protocol, port) key to the slice of
//! rules (in chain order) that can match a packet with that key. Flat arrays, a multiplicative
//! mixer and linear probing: one or two cache lines per lookup whatever the number of keys.

/// Key of a packet or rule: `dst << 24 | proto << 16 | port`; `u64::MAX` marks an empty slot
/// (no real key has the top byte set).
pub type Key = u64;

const EMPTY: Key = u64::MAX;

/// Packs a dispatch key.
#[inline]
pub fn key(dst: u32, proto: u8, port: u16) -> Key {
    (u64::from(dst) << 24) | (u64::from(proto) << 16) | u64::from(port)
}

/// One slot: a key and the rule slice `cands[start..start + len]`.
#[derive(Debug, Clone, Copy)]
struct Slot {
    key: Key,
    start: u32,
    len: u32,
}

/// The table.
#[derive(Debug, Clone)]
pub struct Dispatch {
    slots: Vec<Slot>,
    shift: u32,
    /// Rule positions (chain-relative) grouped per key, each group in chain order.
    cands: Vec<u32>,
}

/// The hash of a key (multiplicative; the top bits index a table).
#[inline]
pub fn mix(k: Key) -> u64 {
    (k ^ (k >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

impl Dispatch {
    /// Builds the table from (key, rule position) pairs given in chain order.
    pub fn build(entries: &[(Key, u32)]) -> Dispatch {
        let mut sorted: Vec<(Key, u32)> = entries.to_vec();
        // Stable by key keeps each group in chain order.
        sorted.sort_by_key(|&(k, _)| k);
        let distinct = sorted.windows(2).filter(|w| w[0].0 != w[1].0).count() + usize::from(!sorted.is_empty());
        let cap = (distinct * 2).next_power_of_two().max(8);
        let bits = cap.trailing_zeros();
        let mut d = Dispatch {
            slots: vec![Slot { key: EMPTY, start: 0, len: 0 }; cap],
            shift: 64 - bits,
            cands: Vec::with_capacity(sorted.len()),
        };
        let mut i = 0;
        while i < sorted.len() {
            let k = sorted[i].0;
            let start = d.cands.len();
            while i < sorted.len() && sorted[i].0 == k {
                d.cands.push(sorted[i].1);
                i += 1;
            }
            let mask = cap - 1;
            #[allow(clippy::cast_possible_truncation)]
            let mut s = (mix(k) >> d.shift) as usize;
            while d.slots[s].key != EMPTY {
                s = (s + 1) & mask;
            }
            // Sizes are bounded by the rule count, which fits u32 (checked by the compiler step).
            #[allow(clippy::cast_possible_truncation)]
            {
                d.slots[s] = Slot { key: k, start: start as u32, len: (d.cands.len() - start) as u32 };
            }
        }
        d
    }

    /// The range of [`Dispatch::cand`] indexes holding the rule positions that can match a
    /// packet with this key (empty when none).
    #[inline]
    pub fn lookup(&self, k: Key) -> (u32, u32) {
        let mask = self.slots.len() - 1;
        #[allow(clippy::cast_possible_truncation)]
        let mut s = (mix(k) >> self.shift) as usize;
        loop {
            let slot = &self.slots[s];
            if slot.key == k {
                return (slot.start, slot.start + slot.len);
            }
            if slot.key == EMPTY {
                return (0, 0);
            }
            s = (s + 1) & mask;
        }
    }

    /// The rule position stored at a candidate index.
    #[inline]
    pub fn cand(&self, i: u32) -> u32 {
        self.cands[i as usize]
    }

    /// The rule positions for a key, as a slice (tests and diagnostics).
    pub fn rules_for(&self, k: Key) -> &[u32] {
        let (a, b) = self.lookup(k);
        &self.cands[a as usize..b as usize]
    }

    /// Every key with its rule positions (table order).
    pub fn entries(&self) -> impl Iterator<Item = (Key, &[u32])> + '_ {
        self.slots
            .iter()
            .filter(|s| s.key != EMPTY)
            .map(|s| (s.key, &self.cands[s.start as usize..(s.start + s.len) as usize]))
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<Slot>() + self.cands.len() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_keep_order_and_misses_are_empty() {
        let d = Dispatch::build(&[(key(1, 6, 80), 0), (key(2, 6, 80), 1), (key(1, 6, 80), 2)]);
        assert_eq!(d.rules_for(key(1, 6, 80)), &[0, 2]);
        assert_eq!(d.rules_for(key(2, 6, 80)), &[1]);
        assert!(d.rules_for(key(3, 6, 80)).is_empty());
        let many: Vec<(Key, u32)> = (0..10_000u32).map(|i| (key(i, 17, 53), i)).collect();
        let d = Dispatch::build(&many);
        assert!((0..10_000u32).all(|i| d.rules_for(key(i, 17, 53)) == [i]));
        assert!(Dispatch::build(&[]).rules_for(0).is_empty());
    }
}
