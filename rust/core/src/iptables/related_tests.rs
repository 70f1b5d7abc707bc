//! ICMP errors about tracked connections: RELATED or INVALID, and the bytes `process` writes,
//! compared with packets built independently (the error as the sender of the quoted packet
//! must see it).

use std::net::IpAddr;

use crate::iptables::eval::{Netfilter, Origin};
use crate::iptables::node::{IfaceAddr, Interface, Node, Route};
use crate::iptables::result::{EvalResult, Verdict};
use crate::packet::{build, nat, IpPacket, Link};

const RULES_V4: &str = "*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p icmp -m icmp --icmp-type 3 -j DNAT --to-destination 10.244.0.66
-A PREROUTING -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.244.0.5:8080
-A PREROUTING -d 10.96.0.10/32 -p udp -m udp --dport 80 -j DNAT --to-destination 10.244.0.5:8080
-A PREROUTING -d 10.96.0.10/32 -p sctp -m sctp --dport 80 -j DNAT --to-destination 10.244.0.5:8080
-A PREROUTING -d 10.96.0.10/32 -p icmp -j DNAT --to-destination 10.244.0.5
-A POSTROUTING -s 10.244.0.0/24 -o eth0 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -m conntrack --ctstate NEW -j ACCEPT
COMMIT
";

const RULES_V6: &str = "*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d fd00:96::a/128 -p tcp -m tcp --dport 80 -j DNAT --to-destination [fd00:244::5]:8080
-A PREROUTING -d fd00:96::a/128 -p udp -m udp --dport 80 -j DNAT --to-destination [fd00:244::5]:8080
-A PREROUTING -d fd00:96::a/128 -p sctp -m sctp --dport 80 -j DNAT --to-destination [fd00:244::5]:8080
-A PREROUTING -d fd00:96::a/128 -p ipv6-icmp -j DNAT --to-destination fd00:244::5
-A POSTROUTING -s fd00:244::/64 -o eth0 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m state --state RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -m state --state NEW -j ACCEPT
COMMIT
";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn node() -> Node {
    let iface = |name: &str, addrs: &[&str]| Interface {
        name: name.into(),
        addrs: addrs.iter().map(|a| IfaceAddr::parse(a).unwrap()).collect(),
    };
    Node::new(
        vec![],
        vec![iface("eth0", &["192.168.0.2/24", "fd00::2/64"]), iface("eth1", &["10.244.0.1/24", "fd00:244::1/64"])],
        vec![
            Route { dest: "0.0.0.0/0".parse().unwrap(), iface: "eth0".into() },
            Route { dest: "::/0".parse().unwrap(), iface: "eth0".into() },
        ],
    )
    .unwrap()
}

fn netfilter(v6: bool) -> Netfilter {
    let rs = crate::iptables::parse(if v6 { RULES_V6 } else { RULES_V4 }).unwrap();
    Netfilter::new(rs, node(), false).unwrap()
}

fn send(nf: &mut Netfilter, bytes: Vec<u8>, iface: &str) -> (Option<Vec<u8>>, EvalResult) {
    let pkt = IpPacket::parse(bytes, Link::Ip).unwrap();
    let (out, res) = nf.process(&pkt, &Origin::Interface(iface.into()), Some(1), true).unwrap();
    (out.map(IpPacket::into_bytes), res)
}

type Maker = fn(IpAddr, IpAddr, u16, u16) -> build::Builder;

fn bytes(b: build::Builder) -> Vec<u8> {
    b.to_bytes().unwrap()
}

/// Addresses of one family: client, service, pod, another host.
fn addrs(v6: bool) -> [IpAddr; 4] {
    if v6 {
        [ip("fd00::9"), ip("fd00:96::a"), ip("fd00:244::5"), ip("fd00::10")]
    } else {
        [ip("192.168.0.9"), ip("10.96.0.10"), ip("10.244.0.5"), ip("192.168.0.10")]
    }
}

fn unreachable(v6: bool) -> (u8, u8) {
    if v6 {
        (1, 4)
    } else {
        (3, 3)
    }
}

#[test]
fn error_from_a_dnat_endpoint_is_related_and_looks_like_it_came_from_the_service() {
    let makers: [(&str, Maker); 3] = [("tcp", build::tcp), ("udp", build::udp), ("sctp", build::sctp)];
    for v6 in [false, true] {
        let [client, vip, pod, _] = addrs(v6);
        let ip_len = if v6 { 40 } else { 20 };
        let (t, c) = unreachable(v6);
        for (name, make) in makers {
            let full = bytes(make(client, vip, 40000, 80).payload(vec![1; 32])).len();
            // The whole packet, 8 transport bytes (checksums of TCP/SCTP not quoted), and 20.
            let mut cuts = vec![full, ip_len + 8];
            if name != "sctp" {
                cuts.push(ip_len + 20);
            }
            for cut in cuts {
                let mut nf = netfilter(v6);
                let syn = bytes(make(client, vip, 40000, 80).payload(vec![1; 32]));
                let (fwd, res) = send(&mut nf, syn, "eth0");
                assert_eq!(res.ct_state, "NEW");
                let fwd = fwd.unwrap();
                let seen = bytes(make(client, pod, 40000, 8080).payload(vec![1; 32]).ttl(63));
                assert_eq!(fwd, seen, "{name} v6={v6}: the forwarded packet");
                let error = bytes(build::icmp(pod, client, t, c, 0).payload(seen[..cut].to_vec()));
                let (out, res) = send(&mut nf, error, "eth1");
                assert_eq!((res.ct_state, res.verdict), ("RELATED", Verdict::Accept), "{name} v6={v6} cut {cut}");
                let original = bytes(make(client, vip, 40000, 80).payload(vec![1; 32]).ttl(63));
                let want = bytes(build::icmp(vip, client, t, c, 0).ttl(63).payload(original[..cut].to_vec()));
                assert_eq!(out.unwrap(), want, "{name} v6={v6} cut {cut}");
                // The error neither walked the nat table nor changed the connection.
                assert!(res.trace.iter().all(|s| s.rule == 0 || s.table != crate::iptables::ast::TableName::Nat));
                assert_eq!(nf.state().conntrack.len(), 1);
            }
        }
    }
}

#[test]
fn error_about_a_masqueraded_packet_goes_back_to_the_pod() {
    for v6 in [false, true] {
        let (pod, remote, node_ip, router) = if v6 {
            (ip("fd00:244::7"), ip("2001:db8::8"), ip("fd00::2"), ip("fd00::1"))
        } else {
            (ip("10.244.0.7"), ip("8.8.8.8"), ip("192.168.0.2"), ip("192.168.0.1"))
        };
        let mut nf = netfilter(v6);
        let (out, res) = send(&mut nf, bytes(build::udp(pod, remote, 5000, 53).payload(vec![1; 12])), "eth1");
        assert!(res.masquerade);
        assert_eq!(IpPacket::parse(out.unwrap(), Link::Ip).unwrap().src(), node_ip);
        let quoted = bytes(build::udp(node_ip, remote, 5000, 53).payload(vec![1; 12]).ttl(1));
        let t = if v6 { 3 } else { 11 };
        let error = bytes(build::icmp(router, node_ip, t, 0, 0).payload(quoted));
        let (out, res) = send(&mut nf, error, "eth0");
        assert_eq!((res.ct_state, res.verdict, res.local_delivery), ("RELATED", Verdict::Accept, false));
        let inner = bytes(build::udp(pod, remote, 5000, 53).payload(vec![1; 12]).ttl(1));
        let want = bytes(build::icmp(router, pod, t, 0, 0).ttl(63).payload(inner));
        assert_eq!(out.unwrap(), want, "v6={v6}");
    }
}

#[test]
fn error_from_the_client_about_a_reply_reaches_the_endpoint() {
    let [client, vip, pod, _] = addrs(false);
    let mut nf = netfilter(false);
    send(&mut nf, bytes(build::tcp(client, vip, 40000, 80)), "eth0");
    let synack = bytes(build::tcp(pod, client, 8080, 40000).flags(0x12));
    let (out, res) = send(&mut nf, synack, "eth1");
    assert_eq!(res.ct_state, "ESTABLISHED");
    let seen = out.unwrap();
    assert_eq!(seen, bytes(build::tcp(vip, client, 80, 40000).flags(0x12).ttl(63)));
    let error = bytes(build::icmp(client, vip, 3, 3, 0).payload(seen));
    let (out, res) = send(&mut nf, error, "eth0");
    assert_eq!((res.ct_state, res.verdict), ("RELATED", Verdict::Accept));
    let inner = bytes(build::tcp(pod, client, 8080, 40000).flags(0x12).ttl(63));
    assert_eq!(out.unwrap(), bytes(build::icmp(client, pod, 3, 3, 0).ttl(63).payload(inner)));
}

#[test]
fn error_about_a_ping_rewrites_the_quoted_echo() {
    for v6 in [false, true] {
        let [client, vip, pod, _] = addrs(v6);
        let mut nf = netfilter(v6);
        let (out, _) = send(&mut nf, bytes(build::echo_request(client, vip, 77, 1)), "eth0");
        let seen = out.unwrap();
        assert_eq!(seen, bytes(build::echo_request(client, pod, 77, 1).ttl(63)));
        let (t, c) = unreachable(v6);
        let (out, res) = send(&mut nf, bytes(build::icmp(pod, client, t, c, 0).payload(seen)), "eth1");
        assert_eq!(res.ct_state, "RELATED");
        let inner = bytes(build::echo_request(client, vip, 77, 1).ttl(63));
        assert_eq!(out.unwrap(), bytes(build::icmp(vip, client, t, c, 0).ttl(63).payload(inner)));
    }
}

#[test]
fn errors_conntrack_cannot_relate_are_invalid() {
    let [client, vip, pod, other] = addrs(false);
    let quote = bytes(build::tcp(client, pod, 40000, 8080).ttl(63));
    // No connection yet.
    let mut nf = netfilter(false);
    let (out, res) = send(&mut nf, bytes(build::icmp(pod, client, 3, 3, 0).payload(quote.clone())), "eth1");
    assert_eq!((res.ct_state, res.verdict, out), ("INVALID", Verdict::Drop, None));
    send(&mut nf, bytes(build::tcp(client, vip, 40000, 80)), "eth0");
    // The outer destination is not the quoted packet's source.
    let (_, res) = send(&mut nf, bytes(build::icmp(pod, other, 3, 3, 0).payload(quote.clone())), "eth1");
    assert_eq!(res.ct_state, "INVALID");
    // A bad ICMP checksum (nf_conntrack_checksum=1 checks it in PREROUTING).
    let mut bad = bytes(build::icmp(pod, client, 3, 3, 0).payload(quote.clone()));
    bad[22] ^= 0x55;
    let (_, res) = send(&mut nf, bad, "eth1");
    assert_eq!(res.ct_state, "INVALID");
    // A quote too short for the ports, and a quoted later fragment.
    let (_, res) = send(&mut nf, bytes(build::icmp(pod, client, 3, 3, 0).payload(quote[..22].to_vec())), "eth1");
    assert_eq!(res.ct_state, "INVALID");
    let mut frag = quote.clone();
    frag[7] = 0x10;
    let (_, res) = send(&mut nf, bytes(build::icmp(pod, client, 3, 3, 0).payload(frag)), "eth1");
    assert_eq!(res.ct_state, "INVALID");
    // An error quoting an error has no invertible tuple.
    let inner_err = bytes(build::icmp(client, pod, 3, 1, 0).payload(quote[..28].to_vec()));
    let (_, res) = send(&mut nf, bytes(build::icmp(pod, client, 3, 3, 0).payload(inner_err)), "eth1");
    assert_eq!(res.ct_state, "INVALID");
    // Still related with the full quote.
    let (_, res) = send(&mut nf, bytes(build::icmp(pod, client, 3, 3, 0).payload(quote)), "eth1");
    assert_eq!(res.ct_state, "RELATED");
}

#[test]
fn related_errors_nat_cannot_rewrite_are_dropped() {
    let [client, vip, pod, _] = addrs(false);
    let mut nf = netfilter(false);
    send(&mut nf, bytes(build::tcp(client, vip, 40000, 80)), "eth0");
    let quote = bytes(build::tcp(client, pod, 40000, 8080).ttl(63));
    // Four quoted transport bytes are enough for conntrack, not for NAT (it needs 8).
    let (out, res) = send(&mut nf, bytes(build::icmp(pod, client, 3, 3, 0).payload(quote[..24].to_vec())), "eth1");
    assert_eq!((res.ct_state, res.verdict, out), ("RELATED", Verdict::Drop, None));
    // An ICMP redirect about a translated connection.
    let (_, res) = send(&mut nf, bytes(build::icmp(pod, client, 5, 1, 0).payload(quote)), "eth1");
    assert_eq!((res.ct_state, res.verdict), ("RELATED", Verdict::Drop));
}

#[test]
fn error_about_an_untranslated_connection_is_related_and_unchanged() {
    let [client, ..] = addrs(false);
    let mut nf = netfilter(false);
    let (out, _) = send(&mut nf, bytes(build::udp(client, ip("10.244.0.8"), 4000, 53)), "eth0");
    let seen = out.unwrap();
    let error = bytes(build::icmp(ip("10.244.0.8"), client, 3, 3, 0).payload(seen));
    let (out, res) = send(&mut nf, error.clone(), "eth1");
    assert_eq!(res.ct_state, "RELATED");
    let mut want = error;
    let layout = *IpPacket::parse(want.clone(), Link::Ip).unwrap().layout();
    nat::decrement_ttl(&mut want, &layout);
    assert_eq!(out.unwrap(), want);
}

#[test]
fn error_the_node_sends_about_a_forwarded_connection() {
    let [client, vip, pod, _] = addrs(false);
    let mut nf = netfilter(false);
    send(&mut nf, bytes(build::tcp(client, vip, 40000, 80)), "eth0");
    let quote = bytes(build::tcp(client, pod, 40000, 8080).ttl(63));
    let node_ip = ip("192.168.0.2");
    let local = |nf: &mut Netfilter, b: Vec<u8>| {
        let pkt = IpPacket::parse(b, Link::Ip).unwrap();
        let (out, res) = nf.process(&pkt, &Origin::Local, None, true).unwrap();
        (out.map(IpPacket::into_bytes), res)
    };
    // Sent by the node: no TTL decrement; POSTROUTING gives it the service as its source.
    let (out, res) = local(&mut nf, bytes(build::icmp(node_ip, client, 3, 4, 1400).payload(quote.clone())));
    assert_eq!(res.ct_state, "RELATED");
    let inner = bytes(build::tcp(client, vip, 40000, 80).ttl(63));
    assert_eq!(out.unwrap(), bytes(build::icmp(vip, client, 3, 4, 1400).payload(inner)));
    // NAT verifies the checksum of a related error at every nat hook: a bad one is dropped.
    let mut bad = bytes(build::icmp(node_ip, client, 3, 4, 1400).payload(quote));
    bad[23] ^= 1;
    let (out, res) = local(&mut nf, bad);
    assert_eq!((res.ct_state, res.verdict, out), ("RELATED", Verdict::Drop, None));
}
