//! iptables: the typed rule model, iptables-save text, and netfilter evaluation.

pub mod ast;
pub mod chance;
pub mod conntrack;
pub mod eval;
pub mod flow;
pub mod matchers;
pub mod nat;
pub mod node;
pub mod recent;
pub mod result;
pub mod validate;

#[cfg(test)]
mod eval_tests;
