//! Fuzz entry functions of kubenat-core, one per target. Each takes arbitrary bytes and must
//! return without panicking, whatever the bytes are; the libFuzzer binaries in `fuzz_targets/`
//! and the seed-replay smoke test (`tests/smoke.rs`) both call them.
//!
//! Beyond "no panic", the entry functions check cheap invariants (a parsed packet re-parses to
//! the same layout, a rewritten packet keeps valid checksums) with `assert!`, so that a lie is
//! a crash too.

pub mod decap;
pub mod eval;
pub mod input;
pub mod packet;
pub mod parse;

/// A fuzz entry function.
pub type Target = fn(&[u8]);

/// The fuzz targets by name, for the smoke test and `scripts/fuzz-smoke`.
pub const TARGETS: &[(&str, Target)] =
    &[("decap", decap::run), ("eval", eval::run), ("packet", packet::run), ("parse", parse::run)];
