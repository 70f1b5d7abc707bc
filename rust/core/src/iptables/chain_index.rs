//! The chain-name index of a table being parsed: chain name to position in the table.
//!
//! A kube-proxy dump of 10k services has 50k chains and 100k jumps, and every `-A` and every
//! jump looks a name up, so the hash function shows in the parse time. Chain names are short
//! (at most 28 bytes), which SipHash handles slowly; a folded multiply over 8-byte words with
//! per-process random keys (the construction of foldhash and aHash's fallback) is several times
//! faster and still keeps an attacker who writes the dump from choosing colliding names.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::OnceLock;

/// Chain name to position in `Table::chains`; names borrow from the parsed text where they can.
pub(crate) type ChainIndex<'a> = HashMap<Cow<'a, str>, usize, NameHashState>;

/// Random keys drawn once per process.
fn keys() -> [u64; 2] {
    static KEYS: OnceLock<[u64; 2]> = OnceLock::new();
    *KEYS.get_or_init(|| {
        let random = RandomState::new();
        [random.hash_one(0x243f_6a88_85a3_08d3_u64), random.hash_one(0x1319_8a2e_0370_7344_u64)]
    })
}

/// Builds [`NameHasher`]s with the process keys.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NameHashState([u64; 2]);

impl Default for NameHashState {
    fn default() -> Self {
        NameHashState(keys())
    }
}

impl BuildHasher for NameHashState {
    type Hasher = NameHasher;

    fn build_hasher(&self) -> NameHasher {
        NameHasher { state: self.0[0], key: self.0[1] }
    }
}

/// Multiply-and-fold hasher for short names.
pub(crate) struct NameHasher {
    state: u64,
    key: u64,
}

/// The 128-bit product of two words folded to 64 bits: every input bit reaches every output bit.
fn folded_multiply(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    // Truncation is the point: the high and low halves are folded together.
    #[allow(clippy::cast_possible_truncation)]
    let (low, high) = (full as u64, (full >> 64) as u64);
    low ^ high
}

impl Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.state = folded_multiply(self.state ^ u64::from_le_bytes(word), self.key);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            // The last byte of a partial word is padding: the remainder's length goes there, so
            // that "a" and "a\0" differ.
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            word[7] = rest.len() as u8;
            self.state = folded_multiply(self.state ^ u64::from_le_bytes(word), self.key);
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.state = folded_multiply(self.state ^ u64::from(byte), self.key);
    }

    fn finish(&self) -> u64 {
        folded_multiply(self.state, self.key.rotate_left(29))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(name: &str) -> u64 {
        NameHashState::default().hash_one(name)
    }

    #[test]
    fn equal_names_hash_alike_and_near_names_apart() {
        assert_eq!(hash("KUBE-SVC-ABCDEF0123456789"), hash("KUBE-SVC-ABCDEF0123456789"));
        let names = ["", "a", "a\0", "KUBE-SEP-00000000000000000", "KUBE-SEP-00000000000000001", "KUBE-SEP-1"];
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                assert_ne!(hash(a), hash(b), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn index_finds_borrowed_and_owned_names() {
        let mut index = ChainIndex::default();
        index.insert(Cow::Borrowed("INPUT"), 0);
        index.insert(Cow::Owned("my chain".to_string()), 1);
        assert_eq!(index.get("INPUT"), Some(&0));
        assert_eq!(index.get("my chain"), Some(&1));
        assert_eq!(index.get("OUTPUT"), None);
    }
}
