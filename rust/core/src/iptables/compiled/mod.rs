//! Building blocks of the compiled classifier ([`crate::iptables::compile`]).

pub mod dispatch;
pub mod fused;
pub mod node4;
pub mod program;
pub mod synth;
pub mod walk;

#[cfg(test)]
mod diff_tests;
