//! The CI smoke pass of every fuzz target without libFuzzer: replays the committed seed corpus
//! (`seeds/<target>/`) and a fixed number of deterministic mutations of each seed through the
//! same entry functions that `cargo fuzz` drives. A panic fails the test and names the input.
//!
//! `KUBENAT_FUZZ_MUTATIONS` sets the mutations per seed (default 300).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use kubenat_fuzz::TARGETS;

/// xorshift64*: deterministic, so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Tokens that steer text mutations towards what the parser looks at.
const DICT: &[&[u8]] = &[
    b"\n",
    b" ",
    b"-A ",
    b"-j ",
    b"-g ",
    b":",
    b"*nat\n",
    b"*filter\n",
    b"COMMIT\n",
    b"--dport ",
    b"-m ",
    b"!",
    b"0",
    b"65535",
    b"4294967295",
    b"/",
    b"-",
    b",",
    b"\"",
    b"\x00",
    b"\xff",
    b"KUBE-SVC-X",
    b"RETURN",
    b"DNAT",
];

fn mutate(seed: &[u8], rng: &mut Rng, others: &[Vec<u8>]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(8) {
        let len = v.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = rng.next() as u8;
            }
            2 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below(len - i);
                v.drain(i..i + n.min(16));
            }
            3 => {
                let i = rng.below(len + 1);
                let tok = DICT[rng.below(DICT.len())];
                v.splice(i..i, tok.iter().copied());
            }
            4 => v.truncate(rng.below(len + 1)),
            5 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                let chunk = v[i..i + n].to_vec();
                let at = rng.below(len + 1);
                v.splice(at..at, chunk);
            }
            6 if !others.is_empty() => {
                let o = &others[rng.below(others.len())];
                let cut = rng.below(v.len() + 1);
                v.truncate(cut);
                let from = rng.below(o.len() + 1);
                v.extend_from_slice(&o[from..]);
            }
            7 if len > 1 => {
                let i = rng.below(len - 1);
                let magic = [0u8, 1, 0x7f, 0x80, 0xff][rng.below(5)];
                v[i] = magic;
            }
            _ => {
                let n = rng.below(8);
                let i = rng.below(len + 1);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                v.splice(i..i, bytes);
            }
        }
    }
    v
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {} missing: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.into_iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn run_one(name: &str, f: fn(&[u8]), input: &[u8], what: &str) {
    if catch_unwind(AssertUnwindSafe(|| f(input))).is_err() {
        let dir = std::env::temp_dir().join(format!("kubenat-fuzz-crash-{name}"));
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join(format!("{:016x}", fnv(input)));
        let _ = std::fs::write(&file, input);
        panic!("target {name} panicked on {what}; input saved to {}", file.display());
    }
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3))
}

#[test]
fn every_target_survives_its_seeds_and_their_mutations() {
    let per_seed: usize = std::env::var("KUBENAT_FUZZ_MUTATIONS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    for (name, f) in TARGETS {
        let corpus = seeds(name);
        assert!(!corpus.is_empty(), "target {name} has no seeds");
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ fnv(name.as_bytes()));
        let mut count = 0usize;
        for (i, seed) in corpus.iter().enumerate() {
            run_one(name, *f, seed, &format!("seed #{i}"));
            for m in 0..per_seed {
                let input = mutate(seed, &mut rng, &corpus);
                run_one(name, *f, &input, &format!("mutation {m} of seed #{i}"));
                count += 1;
            }
        }
        eprintln!("fuzz smoke: {name}: {} seeds, {count} mutations, no panic", corpus.len());
    }
}

#[test]
fn empty_and_tiny_inputs() {
    for (name, f) in TARGETS {
        for n in 0..64usize {
            run_one(name, *f, &vec![0u8; n], "zeros");
            run_one(name, *f, &vec![0xffu8; n], "ones");
        }
    }
}
