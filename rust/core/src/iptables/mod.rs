//! iptables: the typed rule model, iptables-save text, and netfilter evaluation.

pub mod ast;
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
