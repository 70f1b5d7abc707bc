//! Target `eval`: a fuzzed ruleset evaluated on a fuzzed packet.
//!
//! Input: a control byte (bit 0: stateful; bits 1–2: origin — auto, local, eth0, lo; bit 3:
//! Ethernet rather than IP packet), a seed byte, a big-endian u16 packet length, the packet,
//! then the ruleset text. Evaluation must finish (a result or a clean error), be deterministic
//! for a given seed, and agree with the exhaustive `outcomes()`.

use std::net::IpAddr;

use kubenat_core::iptables::eval::{Netfilter, Origin};
use kubenat_core::iptables::flow::Flow;
use kubenat_core::iptables::node::{IfaceAddr, Interface, Node};
use kubenat_core::iptables::parse::parse;
use kubenat_core::packet::{IpPacket, Link};

use crate::input::Input;

/// The node of the kube-proxy test cases: 192.168.0.2 on eth0, a pod bridge, dual stack.
fn node() -> Node {
    let iface = |name: &str, addrs: &[&str]| Interface {
        name: name.into(),
        addrs: addrs.iter().map(|a| IfaceAddr::parse(a).expect("a valid address")).collect(),
    };
    let local: Vec<IpAddr> = vec!["192.168.0.2".parse().expect("v4"), "fd00::2".parse().expect("v6")];
    Node::new(local, vec![iface("eth0", &["192.168.0.2/24", "fd00::2/64"]), iface("cni0", &["10.0.0.1/8"])], vec![])
        .expect("a valid node")
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let control = input.byte();
    let seed = u64::from(input.byte());
    let len = usize::from(input.u16());
    let packet = input.take(len).to_vec();
    let text = String::from_utf8_lossy(input.rest());
    let Ok(ruleset) = parse(&text) else { return };
    let stateless = control & 1 == 0;
    let Ok(mut nf) = Netfilter::new(ruleset, node(), stateless) else { return };
    let link = if control & 8 != 0 { Link::Ethernet } else { Link::Ip };
    let Ok(packet) = IpPacket::parse(packet, link) else { return };
    let origin = match (control >> 1) & 3 {
        0 => Origin::Auto,
        1 => Origin::Local,
        2 => Origin::Interface("eth0".into()),
        _ => Origin::Interface("lo".into()),
    };
    let first = nf.process(&packet, &origin, Some(seed), true);
    if let Ok((out, result)) = &first {
        if let Some(out) = out {
            // What leaves is still a well-formed packet.
            IpPacket::parse(out.bytes().to_vec(), out.link()).expect("a processed packet dissects");
        }
        let flow = Flow::from_packet(&packet);
        if stateless {
            let second = nf.process(&packet, &origin, Some(seed), true).expect("the same packet evaluates again");
            assert_eq!(&second.1, result, "evaluation is not deterministic");
            if let Ok(outcomes) = nf.outcomes(&flow, &origin, false) {
                assert!(!outcomes.is_empty(), "no outcome");
            }
        } else {
            // A second packet of the same connection goes through conntrack.
            let _ = nf.process(&packet, &origin, Some(seed ^ 1), false);
            nf.advance_ms(1000);
            let _ = nf.process(&packet, &origin, None, false);
        }
    }
}
