//! iptables: the typed rule model, iptables-save text, and netfilter evaluation.

pub mod ast;
