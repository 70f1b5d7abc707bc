//! Target `parse`: the iptables-save parser on arbitrary text, and the render round trip.
//!
//! Input: the dump (invalid UTF-8 is replaced, so every byte string is a text). A ruleset that
//! parses must render to text that parses back to the same ruleset (counters included), and
//! must be accepted or refused cleanly by the evaluator's load checks.

use kubenat_core::iptables::eval::Netfilter;
use kubenat_core::iptables::node::Node;
use kubenat_core::iptables::parse::{parse, parse_family};

/// Runs one input.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(ruleset) = parse(&text) else { return };
    for counters in [false, true] {
        let saved = ruleset.save(counters);
        let again = parse_family(&saved, ruleset.family).unwrap_or_else(|e| {
            panic!("rendered ruleset does not parse: {e}\n--- input\n{text}\n--- rendered\n{saved}")
        });
        assert!(again == ruleset, "round trip changed the ruleset\n--- input\n{text}\n--- rendered\n{saved}");
        // Rendering is a fixed point.
        assert_eq!(again.save(counters), saved);
    }
    let node = Node::new(vec![], vec![], vec![]).expect("an empty node");
    let _ = Netfilter::new(ruleset, node, true);
}
