//! Synthetic kube-proxy rulesets for benchmarks and tests: `S` ClusterIP services with `E`
//! endpoints each, in the shape kube-proxy's iptables mode writes (KUBE-SERVICES dispatch,
//! KUBE-SVC-* statistic ladders, KUBE-SEP-* mark + DNAT, KUBE-POSTROUTING masquerade, the
//! filter chains), with the node they run on.
//!
//! Addresses: services `172.16.0.0/12` (`172.16.0.0 + i + 1`), pods `10.64.0.0/10`
//! (endpoints from `10.64.1.0` up), node `192.168.0.2` on eth0, local pods on cni0
//! `10.64.0.1/24`, other nodes' pods via `flannel.1`.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use crate::iptables::node::{IfaceAddr, Interface, Node, Route};

/// First service address.
pub const SERVICE_BASE: u32 = 0xac10_0000; // 172.16.0.0
/// First endpoint address.
pub const ENDPOINT_BASE: u32 = 0x0a40_0100; // 10.64.1.0
/// The cluster's pod CIDR.
pub const CLUSTER_CIDR: &str = "10.64.0.0/10";
/// Service port.
pub const SERVICE_PORT: u16 = 80;
/// Endpoint port.
pub const TARGET_PORT: u16 = 8080;

/// Address of service `i`.
pub fn service_ip(i: u32) -> u32 {
    SERVICE_BASE + i + 1
}

/// Address of endpoint `j` of service `i`.
pub fn endpoint_ip(i: u32, j: u32, endpoints: u32) -> u32 {
    ENDPOINT_BASE + i * endpoints + j
}

fn ip(a: u32) -> Ipv4Addr {
    Ipv4Addr::from(a)
}

/// The probability kube-proxy writes for endpoint `j` of `n` (`1/(n-j)` with 10 decimals).
pub fn probability(j: u32, n: u32) -> String {
    format!("{:.10}", 1.0 / f64::from(n - j))
}

/// The iptables-save text.
pub fn kube_proxy_text(services: u32, endpoints: u32) -> String {
    let mut s = String::with_capacity(services as usize * (300 + endpoints as usize * 330) + 4096);
    s.push_str(FILTER);
    s.push_str(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n",
    );
    s.push_str(":KUBE-NODEPORTS - [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n:KUBE-POSTROUTING - [0:0]\n");
    for i in 0..services {
        let _ = writeln!(s, ":KUBE-SVC-{i:016X} - [0:0]");
        for j in 0..endpoints {
            let _ = writeln!(s, ":KUBE-SEP-{i:011X}{j:05X} - [0:0]");
        }
    }
    s.push_str("-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n");
    s.push_str("-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n");
    s.push_str("-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n");
    for i in 0..services {
        let _ = writeln!(
            s,
            "-A KUBE-SERVICES -m comment --comment \"ns/svc-{i}:http cluster IP\" -m tcp -p tcp -d {} --dport {SERVICE_PORT} -j KUBE-SVC-{i:016X}",
            ip(service_ip(i))
        );
    }
    s.push_str("-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n");
    s.push_str("-A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000\n");
    s.push_str("-A KUBE-POSTROUTING -m mark ! --mark 0x00004000/0x00004000 -j RETURN\n");
    s.push_str("-A KUBE-POSTROUTING -j MARK --xor-mark 0x00004000\n");
    s.push_str("-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully\n");
    for i in 0..services {
        for j in 0..endpoints {
            let ep = ip(endpoint_ip(i, j, endpoints));
            let _ = writeln!(
                s,
                "-A KUBE-SEP-{i:011X}{j:05X} -m comment --comment ns/svc-{i}:http -s {ep} -j KUBE-MARK-MASQ"
            );
            let _ = writeln!(
                s,
                "-A KUBE-SEP-{i:011X}{j:05X} -m comment --comment ns/svc-{i}:http -m tcp -p tcp -j DNAT --to-destination {ep}:{TARGET_PORT}"
            );
        }
        let _ = writeln!(
            s,
            "-A KUBE-SVC-{i:016X} -m comment --comment \"ns/svc-{i}:http cluster IP\" -m tcp -p tcp -d {} --dport {SERVICE_PORT} ! -s {CLUSTER_CIDR} -j KUBE-MARK-MASQ",
            ip(service_ip(i))
        );
        for j in 0..endpoints {
            let ep = ip(endpoint_ip(i, j, endpoints));
            if j + 1 < endpoints {
                let _ = writeln!(
                    s,
                    "-A KUBE-SVC-{i:016X} -m comment --comment \"ns/svc-{i}:http -> {ep}:{TARGET_PORT}\" -m statistic --mode random --probability {} -j KUBE-SEP-{i:011X}{j:05X}",
                    probability(j, endpoints)
                );
            } else {
                let _ = writeln!(
                    s,
                    "-A KUBE-SVC-{i:016X} -m comment --comment \"ns/svc-{i}:http -> {ep}:{TARGET_PORT}\" -j KUBE-SEP-{i:011X}{j:05X}"
                );
            }
        }
    }
    s.push_str("COMMIT\n");
    s
}

const FILTER: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
-A INPUT -j KUBE-FIREWALL
-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL
-A INPUT -m comment --comment \"kubernetes health check service ports\" -j KUBE-NODEPORTS
-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES
-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL
-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD
-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES
-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES
-A OUTPUT -j KUBE-FIREWALL
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES
-A KUBE-FIREWALL -m comment --comment \"block incoming localnet connections\" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark 0x00004000/0x00004000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
";

/// The node the synthetic ruleset runs on.
pub fn kube_proxy_node() -> Node {
    let a = |s: &str| IfaceAddr::parse(s).unwrap_or_else(|_| unreachable!("constant address"));
    let local = IpAddr::V4(Ipv4Addr::new(192, 168, 0, 2));
    Node::new(
        vec![local],
        vec![
            Interface { name: "eth0".into(), addrs: vec![a("192.168.0.2/24")] },
            Interface { name: "cni0".into(), addrs: vec![a("10.64.0.1/24")] },
            Interface { name: "flannel.1".into(), addrs: vec![a("10.64.0.0/32")] },
        ],
        vec![
            Route {
                dest: CLUSTER_CIDR.parse().unwrap_or_else(|_| unreachable!("constant")),
                iface: "flannel.1".into(),
            },
            Route { dest: "0.0.0.0/0".parse().unwrap_or_else(|_| unreachable!("constant")), iface: "eth0".into() },
        ],
    )
    .unwrap_or_else(|_| unreachable!("constant node"))
}

/// A small deterministic generator for packet streams (SplitMix64).
#[derive(Debug, Clone)]
pub struct Gen(pub u64);

impl Gen {
    /// Next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// The benchmark packet mix: TCP SYNs from pods (a quarter from outside the cluster), 15 of 16
/// to a random service, 1 of 16 to an address no service has. Returns
/// (src, dst, sport, dport) columns.
pub fn packets(services: u32, n: usize, seed: u64) -> Vec<(u32, u32, u16, u16)> {
    let mut g = Gen(seed);
    (0..n)
        .map(|_| {
            let r = g.next_u64();
            let src = if r & 3 == 0 {
                0xc0a8_0000 | ((r >> 8) as u32 & 0xfff)
            } else {
                0x0a40_0000 | ((r >> 8) as u32 & 0xffff)
            };
            #[allow(clippy::cast_possible_truncation)]
            let sport = 1024 + ((r >> 32) as u16 & 0x7fff);
            let (dst, dport) = if (r >> 60) == 0 {
                (0x0808_0000 | ((r >> 24) as u32 & 0xffff), SERVICE_PORT)
            } else {
                #[allow(clippy::cast_possible_truncation)]
                (service_ip(g.below(u64::from(services.max(1))) as u32), SERVICE_PORT)
            };
            (src, dst, sport, dport)
        })
        .collect()
}
