//! iptables: the typed rule model, iptables-save text, and netfilter evaluation.

pub mod ast;
pub mod chance;
pub mod conntrack;
pub mod eval;
pub mod flow;
pub mod links;
pub mod matchers;
pub mod nat;
pub mod node;
pub mod process;
pub mod recent;
mod related;
pub mod result;
mod walk;

#[cfg(test)]
mod bridge_tests;
#[cfg(test)]
mod eval_tests;
#[cfg(test)]
mod related_tests;

// --- speed: the compiled classifier ---
pub mod compile;
pub mod compiled;

// --- parser ---
pub mod listing;
mod matches;
mod names;
mod netdb_data;
pub mod parse;
pub mod render;
mod targets;
mod tokenize;
mod validate;
mod values;

pub use parse::{detect_family, parse, parse_family};
#[cfg(test)]
mod parse_tests;
