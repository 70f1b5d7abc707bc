//! Packets through a bridge of the node (`br_netfilter`): `-m physdev` options, bridged versus
//! routed, DNAT to a host on the same bridge (bridged, hairpin), no TTL decrement when bridged.

use std::net::IpAddr;

use crate::iptables::eval::{Netfilter, Origin};
use crate::iptables::flow::Flow;
use crate::iptables::node::{Bridge, BridgePort, IfaceAddr, Interface, Node, Route};
use crate::iptables::result::{EvalResult, Verdict};
use crate::packet::{build, IpPacket, Link};

/// Each FORWARD rule only counts; the marks say which physdev options held.
const RULES: &str = "*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.244.0.6:8080
-A PREROUTING -d 10.96.0.11/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.244.0.5:8080
-A POSTROUTING -s 10.244.0.5/32 -d 10.244.0.5/32 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m physdev --physdev-is-in -j MARK --set-xmark 0x1/0x1
-A FORWARD -m physdev --physdev-is-out -j MARK --set-xmark 0x2/0x2
-A FORWARD -m physdev --physdev-is-bridged -j MARK --set-xmark 0x4/0x4
-A FORWARD -m physdev --physdev-in vethA -j MARK --set-xmark 0x8/0x8
-A FORWARD -m physdev --physdev-out vethB -j MARK --set-xmark 0x10/0x10
-A FORWARD -m physdev ! --physdev-out vethB -j MARK --set-xmark 0x20/0x20
-A FORWARD -m physdev --physdev-in veth+ ! --physdev-is-bridged -j MARK --set-xmark 0x40/0x40
-A FORWARD -i cni0 -o cni0 -j MARK --set-xmark 0x80/0x80
COMMIT
";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn netfilter() -> Netfilter {
    let iface = |name: &str, a: &str| Interface { name: name.into(), addrs: vec![IfaceAddr::parse(a).unwrap()] };
    let port = |name: &str, host: &str| BridgePort { name: name.into(), hosts: vec![ip(host)] };
    let node = Node::new(
        vec![],
        vec![iface("eth0", "192.168.0.2/24"), iface("cni0", "10.244.0.1/24")],
        vec![Route { dest: "0.0.0.0/0".parse().unwrap(), iface: "eth0".into() }],
    )
    .unwrap()
    .with_bridges(vec![Bridge {
        name: "cni0".into(),
        ports: vec![port("vethA", "10.244.0.5"), port("vethB", "10.244.0.6")],
    }])
    .unwrap();
    Netfilter::new(crate::iptables::parse(RULES).unwrap(), node, false).unwrap()
}

fn go(nf: &mut Netfilter, src: &str, dst: &str, dport: u16, from: &str) -> EvalResult {
    let flow = Flow::tcp(ip(src), ip(dst), 40000, dport).unwrap();
    nf.evaluate(&flow, &Origin::Interface(from.into()), None, false).unwrap()
}

#[test]
fn bridged_between_two_ports() {
    let r = go(&mut netfilter(), "10.244.0.5", "10.244.0.6", 80, "vethA");
    assert_eq!(r.verdict, Verdict::Accept);
    assert_eq!(r.mark, 0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x80);
    assert_eq!((r.in_interface.as_deref(), r.out_interface.as_deref()), (Some("cni0"), Some("cni0")));
    assert_eq!((r.physdev_in.as_deref(), r.physdev_out.as_deref()), (Some("vethA"), Some("vethB")));
    assert_eq!(r.flow.ttl, 64, "bridged packets are not routed");
}

#[test]
fn routed_from_a_port() {
    let r = go(&mut netfilter(), "10.244.0.5", "8.8.8.8", 80, "vethA");
    // --physdev-out fails without an output port, inverted or not.
    assert_eq!(r.mark, 0x1 | 0x8 | 0x40);
    assert_eq!((r.physdev_in.as_deref(), r.physdev_out), (Some("vethA"), None));
    assert_eq!(r.out_interface.as_deref(), Some("eth0"));
    assert_eq!(r.flow.ttl, 63);
}

#[test]
fn not_from_a_bridge_port_only_inverted_options_hold() {
    let r = go(&mut netfilter(), "192.168.0.9", "10.244.0.6", 80, "eth0");
    assert_eq!(r.mark, 0x20);
    assert_eq!((r.physdev_in, r.physdev_out), (None, None));
}

#[test]
fn dnat_to_a_host_on_the_same_bridge_is_bridged_and_hairpin_is_masqueraded() {
    let mut nf = netfilter();
    let r = go(&mut nf, "10.244.0.5", "10.96.0.10", 80, "vethA");
    assert_eq!(r.dnat_text().as_deref(), Some("10.244.0.6:8080"));
    assert_eq!(r.physdev_out.as_deref(), Some("vethB"));
    assert_eq!(r.flow.ttl, 64);
    let r = go(&mut nf, "10.244.0.5", "10.96.0.11", 80, "vethA");
    assert_eq!(r.physdev_out.as_deref(), Some("vethA"));
    assert!(r.masquerade);
    assert_eq!(r.snat_text().as_deref(), Some("10.244.0.1:40000"));
    assert_eq!(r.mark, 0x1 | 0x2 | 0x4 | 0x8 | 0x20 | 0x80);
}

#[test]
fn process_keeps_the_ttl_of_a_bridged_packet() {
    let mut nf = netfilter();
    let bytes = build::tcp(ip("10.244.0.5"), ip("10.96.0.10"), 40000, 80).to_bytes().unwrap();
    let pkt = IpPacket::parse(bytes, Link::Ip).unwrap();
    let (out, _) = nf.process(&pkt, &Origin::Interface("vethA".into()), None, false).unwrap();
    let want = build::tcp(ip("10.244.0.5"), ip("10.244.0.6"), 40000, 8080).to_bytes().unwrap();
    assert_eq!(out.unwrap().into_bytes(), want);
}

#[test]
fn bad_bridges_are_refused_and_unknown_hosts_named() {
    let node = || Node::new(vec![], vec![Interface { name: "cni0".into(), addrs: vec![] }], vec![]).unwrap();
    let bridge = |name: &str, port: &str| Bridge {
        name: name.into(),
        ports: vec![BridgePort { name: port.into(), hosts: vec![] }],
    };
    assert!(node().with_bridges(vec![bridge("br9", "veth1")]).is_err());
    assert!(node().with_bridges(vec![bridge("cni0", "cni0")]).is_err());
    let mut nf = netfilter();
    let flow = Flow::tcp(ip("10.244.0.5"), ip("10.244.0.9"), 1, 80).unwrap();
    let err = nf.evaluate(&flow, &Origin::Interface("vethA".into()), None, false).unwrap_err();
    assert!(err.to_string().contains("10.244.0.9"), "{err}");
    let err = nf.evaluate(&flow, &Origin::Interface("vethZ".into()), None, false).unwrap_err();
    assert!(err.to_string().contains("vethZ"), "{err}");
}
