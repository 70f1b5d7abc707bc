//! The node a ruleset runs on: its own addresses, interfaces and routes.
//!
//! These answer the questions netfilter asks the routing code: is an address local (for
//! `addrtype` and the routing decision), which interface does a packet leave by, and which
//! address MASQUERADE and REDIRECT pick.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::{Error, Result};
use crate::iptables::ast::AddrTypes;
use crate::net::{Cidr, Family};

/// An address configured on an interface, with its prefix length (`10.0.0.1/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IfaceAddr {
    /// The address itself.
    pub addr: IpAddr,
    /// Prefix length of the connected subnet.
    pub prefix: u8,
}

impl IfaceAddr {
    /// Parses `10.0.0.1/24` (a bare address is a host prefix).
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the text.
    pub fn parse(text: &str) -> Result<IfaceAddr> {
        let (a, p) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| Error::invalid("interface address", format!("{text:?} is not an IP address")))?;
        let bits = Family::of(&addr).bits();
        let prefix =
            match p {
                None => bits,
                Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= bits).ok_or_else(|| {
                    Error::invalid("interface address", format!("{text:?} has an invalid prefix length"))
                })?,
            };
        Ok(IfaceAddr { addr, prefix })
    }

    /// The connected subnet.
    pub fn subnet(&self) -> Cidr {
        Cidr::new(self.addr, self.prefix).unwrap_or_else(|_| Cidr::host(self.addr))
    }

    /// The subnet's broadcast address (IPv4 prefixes shorter than /31 only).
    pub fn broadcast(&self) -> Option<IpAddr> {
        match self.addr {
            IpAddr::V4(a) if self.prefix < 31 => {
                let host_mask = u32::MAX >> self.prefix;
                Some(IpAddr::V4(Ipv4Addr::from(u32::from(a) | host_mask)))
            }
            _ => None,
        }
    }

    /// Host-scope addresses (loopback) are never picked as a source for traffic leaving the node.
    pub fn is_host_scope(&self) -> bool {
        self.addr.is_loopback()
    }
}

/// A network interface of the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Name (`eth0`, `flannel.1`, `cni0`, `lo`).
    pub name: String,
    /// Addresses, primary first.
    pub addrs: Vec<IfaceAddr>,
}

/// A route: destination prefix and output interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination prefix.
    pub dest: Cidr,
    /// Output interface.
    pub iface: String,
}

/// A port of a bridge and the hosts behind it (where a bridged packet to them leaves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgePort {
    /// Port device name (`veth1234`); not an interface of its own.
    pub name: String,
    /// Addresses reached through this port.
    pub hosts: Vec<IpAddr>,
}

/// A Linux bridge of the node (one of its interfaces) with its ports. Packets arriving on a
/// port go through iptables with `br_netfilter` (`bridge-nf-call-iptables=1`, as Kubernetes
/// requires): `-i` sees the bridge, `-m physdev` the port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bridge {
    /// The bridge interface (`cni0`).
    pub name: String,
    /// Its ports.
    pub ports: Vec<BridgePort>,
}

/// The node: local addresses, interfaces (lo first), routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    local: Vec<IpAddr>,
    interfaces: Vec<Interface>,
    routes: Vec<Route>,
    /// Whether routes were given; without them, unmatched destinations leave by the first
    /// non-loopback interface (a default route).
    explicit_routes: bool,
    /// `net.ipv4.conf.*.route_localnet`: whether 127.0.0.0/8 may be routed off `lo`.
    route_localnet: bool,
    /// Bridges and their ports.
    bridges: Vec<Bridge>,
}

/// Name of the loopback interface.
pub const LOOPBACK: &str = "lo";

impl Node {
    /// Builds a node. `lo` (127.0.0.1/8, ::1/128) is added when missing. Without interfaces the
    /// node gets one, `eth0`, carrying the non-loopback local addresses as host prefixes.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a route through an unknown interface or duplicate interface names.
    pub fn new(local: Vec<IpAddr>, mut interfaces: Vec<Interface>, routes: Vec<Route>) -> Result<Node> {
        for (i, a) in interfaces.iter().enumerate() {
            if interfaces[..i].iter().any(|b| b.name == a.name) {
                return Err(Error::invalid("interfaces", format!("interface {:?} is given twice", a.name)));
            }
        }
        if interfaces.iter().all(|i| i.name == LOOPBACK) {
            let addrs: Vec<IfaceAddr> = local
                .iter()
                .filter(|a| !a.is_loopback())
                .map(|a| IfaceAddr { addr: *a, prefix: Family::of(a).bits() })
                .collect();
            interfaces.push(Interface { name: "eth0".into(), addrs });
        }
        if !interfaces.iter().any(|i| i.name == LOOPBACK) {
            interfaces.insert(
                0,
                Interface {
                    name: LOOPBACK.into(),
                    addrs: vec![
                        IfaceAddr { addr: IpAddr::V4(Ipv4Addr::LOCALHOST), prefix: 8 },
                        IfaceAddr { addr: IpAddr::V6(Ipv6Addr::LOCALHOST), prefix: 128 },
                    ],
                },
            );
        }
        for r in &routes {
            if !interfaces.iter().any(|i| i.name == r.iface) {
                return Err(Error::invalid(
                    "routes",
                    format!("route to {} uses interface {:?}, which the node does not have", r.dest, r.iface),
                ));
            }
        }
        let explicit_routes = !routes.is_empty();
        Ok(Node { local, interfaces, routes, explicit_routes, route_localnet: false, bridges: Vec::new() })
    }

    /// Declares bridges: each must be an interface of the node; a port name must be unique and
    /// not an interface (packets arrive on a port, and leave by one when bridged).
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the bridge or port.
    pub fn with_bridges(mut self, bridges: Vec<Bridge>) -> Result<Node> {
        let mut seen: Vec<&str> = Vec::new();
        for b in &bridges {
            if self.interface(&b.name).is_none() || b.name == LOOPBACK {
                return Err(Error::invalid("bridges", format!("bridge {:?} is not an interface of the node", b.name)));
            }
            for p in &b.ports {
                if self.interface(&p.name).is_some() || seen.contains(&p.name.as_str()) {
                    return Err(Error::invalid(
                        "bridges",
                        format!("port {:?} of bridge {:?} is an interface or another port", p.name, b.name),
                    ));
                }
                seen.push(&p.name);
            }
        }
        self.bridges = bridges;
        Ok(self)
    }

    /// The bridges.
    pub fn bridges(&self) -> &[Bridge] {
        &self.bridges
    }

    /// The bridge a port belongs to.
    pub fn bridge_of_port(&self, port: &str) -> Option<&Bridge> {
        self.bridges.iter().find(|b| b.ports.iter().any(|p| p.name == port))
    }

    /// The port of `bridge` a host is behind.
    pub fn port_for(&self, bridge: &str, host: &IpAddr) -> Option<&str> {
        let b = self.bridges.iter().find(|b| b.name == bridge)?;
        b.ports.iter().find(|p| p.hosts.contains(host)).map(|p| p.name.as_str())
    }

    /// Sets `route_localnet` (kube-proxy turns it on for localhost NodePorts). Off, as by the
    /// kernel's default, packets from or to 127.0.0.0/8 never cross a non-loopback interface.
    pub fn with_route_localnet(mut self, on: bool) -> Node {
        self.route_localnet = on;
        self
    }

    /// Whether `route_localnet` is on.
    pub fn route_localnet(&self) -> bool {
        self.route_localnet
    }

    /// Why routing refuses a packet that arrived on a non-loopback interface
    /// (`ip_route_input_slow`, then `fib_validate_source` with rp_filter and accept_local off):
    /// a loopback destination or source (IPv4 unless `route_localnet`; IPv6 always), or a source
    /// that is exactly one of the node's configured addresses.
    pub fn martian_arriving(&self, src: &IpAddr, dst: &IpAddr) -> Option<&'static str> {
        let blocked = |a: &IpAddr| match a {
            IpAddr::V4(v) => v.is_loopback() && !self.route_localnet,
            IpAddr::V6(v) => v.is_loopback(),
        };
        if blocked(dst) {
            Some("martian destination (loopback address off lo)")
        } else if blocked(src) {
            Some("martian source (loopback address off lo)")
        } else if self.local.contains(src) || self.interfaces.iter().any(|i| i.addrs.iter().any(|a| a.addr == *src)) {
            Some("martian source (one of the node's own addresses, arriving from outside)")
        } else {
            None
        }
    }

    /// Why routing refuses a locally generated packet leaving by a non-loopback interface: a
    /// loopback source (IPv4 unless `route_localnet`; IPv6 always).
    pub fn martian_leaving(&self, src: &IpAddr) -> Option<&'static str> {
        let blocked = match src {
            IpAddr::V4(v) => v.is_loopback() && !self.route_localnet,
            IpAddr::V6(v) => v.is_loopback(),
        };
        blocked.then_some("loopback source address off lo")
    }

    /// The interfaces, `lo` included.
    pub fn interfaces(&self) -> &[Interface] {
        &self.interfaces
    }

    /// The explicitly given local addresses.
    pub fn local_addresses(&self) -> &[IpAddr] {
        &self.local
    }

    /// The routes given.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// An interface by name.
    pub fn interface(&self, name: &str) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.name == name)
    }

    /// The first interface that is not loopback (where `--from auto` packets arrive).
    pub fn first_external(&self) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.name != LOOPBACK)
    }

    /// Whether an address belongs to the node: given as local, on an interface, or loopback
    /// (the kernel's local table always holds 127.0.0.0/8 and ::1).
    pub fn is_local(&self, addr: &IpAddr) -> bool {
        addr.is_loopback() || self.local.contains(addr) || self.owner(addr).is_some()
    }

    /// The interface carrying an address, if any.
    pub fn owner(&self, addr: &IpAddr) -> Option<&Interface> {
        if let IpAddr::V4(a) = addr {
            if a.is_loopback() {
                return self.interface(LOOPBACK);
            }
        }
        self.interfaces.iter().find(|i| i.addrs.iter().any(|x| x.addr == *addr))
    }

    /// The route type (`RTN_*`) of an address, as `addrtype` computes it. With `dev`, a local or
    /// broadcast route only counts when it belongs to that interface (`--limit-iface-in/out`).
    pub fn addr_type(&self, addr: &IpAddr, dev: Option<&str>) -> u16 {
        match addr {
            IpAddr::V4(a) => {
                let v = u32::from(*a);
                // The kernel answers these before looking at any table.
                if v >> 24 == 0 || v == u32::MAX {
                    return AddrTypes::BROADCAST;
                }
                if a.is_multicast() {
                    return AddrTypes::MULTICAST;
                }
                let dev_ok = |iface: &Interface| dev.map_or(true, |d| d == iface.name);
                if a.is_loopback() {
                    return match self.interface(LOOPBACK) {
                        Some(lo) if dev_ok(lo) => AddrTypes::LOCAL,
                        _ => AddrTypes::UNICAST,
                    };
                }
                if let Some(owner) = self.owner(addr) {
                    return if dev_ok(owner) { AddrTypes::LOCAL } else { AddrTypes::UNICAST };
                }
                if self.local.contains(addr) {
                    // A local address not tied to an interface: only known to be local.
                    return AddrTypes::LOCAL;
                }
                for iface in &self.interfaces {
                    if iface.addrs.iter().any(|x| x.broadcast() == Some(*addr)) {
                        return if dev_ok(iface) { AddrTypes::BROADCAST } else { AddrTypes::UNICAST };
                    }
                }
                AddrTypes::UNICAST
            }
            IpAddr::V6(a) => {
                if a.is_multicast() {
                    return AddrTypes::MULTICAST;
                }
                if a.is_unspecified() {
                    return AddrTypes::UNSPEC;
                }
                if self.is_local(addr) {
                    let owner_ok = match self.owner(addr) {
                        Some(o) => dev.map_or(true, |d| d == o.name),
                        None => true,
                    };
                    return if owner_ok { AddrTypes::LOCAL } else { AddrTypes::UNICAST };
                }
                AddrTypes::UNICAST
            }
        }
    }

    /// Whether an IPv6 address has the `addrtype` types of `mask` (`match_type6` in
    /// `xt_addrtype.c`). Unlike IPv4, where an address has one type, an IPv6 address is checked
    /// against each asked-for type: UNICAST, MULTICAST and UNSPEC by the address's format (so
    /// a local address is UNICAST too), LOCAL, ANYCAST and UNREACHABLE by a route lookup (an
    /// address without a route is only UNREACHABLE; with `dev`, LOCAL means owned by `dev`).
    pub fn addr_type6_matches(&self, a: &Ipv6Addr, dev: Option<&str>, mask: u16) -> bool {
        let multicast = a.is_multicast();
        let unspecified = a.is_unspecified();
        let unicast = !multicast && !unspecified && a.to_ipv4_mapped().is_none();
        if (mask & AddrTypes::MULTICAST != 0 && !multicast)
            || (mask & AddrTypes::UNICAST != 0 && !unicast)
            || (mask & AddrTypes::UNSPEC != 0 && !unspecified)
        {
            return false;
        }
        if mask & (AddrTypes::LOCAL | AddrTypes::ANYCAST | AddrTypes::UNREACHABLE) == 0 {
            return true;
        }
        let addr = IpAddr::V6(*a);
        let local = self.is_local(&addr);
        let mut found = 0;
        if let Some(d) = dev {
            if self.owner(&addr).is_some_and(|o| o.name == d) {
                found = AddrTypes::LOCAL;
            }
        }
        if !local && self.route(&addr).is_none() {
            return mask & AddrTypes::UNREACHABLE != 0;
        }
        if dev.is_none() && local {
            found |= AddrTypes::LOCAL;
        }
        // The subnet-router anycast address of a connected prefix (all host bits zero).
        let anycast = self.interfaces.iter().flat_map(|i| &i.addrs).any(|x| match x.addr {
            IpAddr::V6(own) if x.prefix < 127 => {
                let host_bits = 128 - u32::from(x.prefix);
                let net = u128::from(own).checked_shr(host_bits).unwrap_or(0).checked_shl(host_bits).unwrap_or(0);
                net == u128::from(*a)
            }
            _ => false,
        });
        if anycast {
            found |= AddrTypes::ANYCAST;
        }
        mask & found != 0
    }

    /// Whether a destination is delivered locally (local, broadcast or multicast).
    pub fn delivers_locally(&self, dst: &IpAddr) -> bool {
        self.is_local(dst) || self.addr_type(dst, None) & (AddrTypes::BROADCAST | AddrTypes::MULTICAST) != 0
    }

    /// The output interface for a destination that is not local: the longest matching route
    /// (given routes first among equals, then connected subnets), else the first non-loopback
    /// interface when no routes were given. `None`: no route to host.
    pub fn route(&self, dst: &IpAddr) -> Option<&str> {
        let given = self.routes.iter().map(|r| (r.dest, r.iface.as_str()));
        let connected = self
            .interfaces
            .iter()
            .flat_map(|i| i.addrs.iter().filter(|a| !a.is_host_scope()).map(move |a| (a.subnet(), i.name.as_str())));
        let mut best: Option<(u8, &str)> = None;
        for (cidr, name) in given.chain(connected) {
            let longer = match best {
                None => true,
                Some((p, _)) => cidr.prefix() > p,
            };
            if longer && cidr.contains(dst) {
                best = Some((cidr.prefix(), name));
            }
        }
        match best {
            Some((_, name)) => Some(name),
            None if !self.explicit_routes => self.first_external().map(|i| i.name.as_str()),
            None => None,
        }
    }

    /// The source address MASQUERADE picks on `out` for a packet to `dst`: an address of `out` in
    /// the same subnet as `dst`, else its first (primary) universe-scope address, else — like
    /// the kernel's `inet_select_addr` — the first universe-scope address of any interface.
    pub fn masquerade_source(&self, out: &str, dst: &IpAddr) -> Option<IpAddr> {
        let family = Family::of(dst);
        if family == Family::V6 && self.is_local(dst) {
            // IPv6 source address selection (RFC 6724 rule 1, "prefer same address"): traffic
            // to one of the node's own addresses is sent from that very address.
            return Some(*dst);
        }
        let usable = |a: &&IfaceAddr| Family::of(&a.addr) == family && !a.is_host_scope() && !is_link_local(&a.addr);
        if let Some(iface) = self.interface(out) {
            let mut candidates = iface.addrs.iter().filter(usable);
            if let Some(a) = iface.addrs.iter().filter(usable).find(|a| a.subnet().contains(dst)) {
                return Some(a.addr);
            }
            if let Some(a) = candidates.next() {
                return Some(a.addr);
            }
        }
        self.interfaces.iter().flat_map(|i| i.addrs.iter()).find(usable).map(|a| a.addr)
    }

    /// The address REDIRECT sends an arriving packet to: the primary address of the input
    /// interface of the packet's family (`None`: the kernel drops the packet).
    pub fn redirect_address(&self, in_iface: &str, family: Family) -> Option<IpAddr> {
        self.interface(in_iface)?.addrs.iter().find(|a| Family::of(&a.addr) == family).map(|a| a.addr)
    }
}

fn is_link_local(a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(_) => false,
        IpAddr::V6(v) => v.segments()[0] & 0xffc0 == 0xfe80,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn node() -> Node {
        Node::new(
            vec![ip("192.168.0.2")],
            vec![
                Interface { name: "eth0".into(), addrs: vec![IfaceAddr::parse("192.168.0.2/24").unwrap()] },
                Interface { name: "flannel.1".into(), addrs: vec![IfaceAddr::parse("10.244.0.0/32").unwrap()] },
                Interface { name: "cni0".into(), addrs: vec![IfaceAddr::parse("10.244.0.1/24").unwrap()] },
            ],
            vec![Route { dest: "10.244.0.0/16".parse().unwrap(), iface: "flannel.1".into() }],
        )
        .unwrap()
    }

    #[test]
    fn lo_is_added_and_local() {
        let n = node();
        assert_eq!(n.interfaces()[0].name, "lo");
        assert!(n.is_local(&ip("127.0.0.5")));
        assert!(n.is_local(&ip("10.244.0.1")));
        assert!(!n.is_local(&ip("10.244.1.1")));
    }

    #[test]
    fn longest_prefix_route() {
        let n = node();
        assert_eq!(n.route(&ip("10.244.0.7")), Some("cni0"));
        assert_eq!(n.route(&ip("10.244.3.7")), Some("flannel.1"));
        assert_eq!(n.route(&ip("192.168.0.9")), Some("eth0"));
        assert_eq!(n.route(&ip("8.8.8.8")), None);
        let bare = Node::new(vec![ip("192.168.0.2")], vec![], vec![]).unwrap();
        assert_eq!(bare.route(&ip("8.8.8.8")), Some("eth0"));
    }

    #[test]
    fn addr_types() {
        let n = node();
        assert_eq!(n.addr_type(&ip("192.168.0.2"), None), AddrTypes::LOCAL);
        assert_eq!(n.addr_type(&ip("192.168.0.2"), Some("cni0")), AddrTypes::UNICAST);
        assert_eq!(n.addr_type(&ip("192.168.0.255"), None), AddrTypes::BROADCAST);
        assert_eq!(n.addr_type(&ip("255.255.255.255"), None), AddrTypes::BROADCAST);
        assert_eq!(n.addr_type(&ip("0.0.0.0"), None), AddrTypes::BROADCAST);
        assert_eq!(n.addr_type(&ip("224.0.0.1"), None), AddrTypes::MULTICAST);
        assert_eq!(n.addr_type(&ip("8.8.8.8"), None), AddrTypes::UNICAST);
        assert_eq!(n.addr_type(&ip("127.0.0.1"), Some("lo")), AddrTypes::LOCAL);
    }

    #[test]
    fn ipv6_addr_types_are_checked_one_by_one() {
        let eth0 = Interface { name: "eth0".into(), addrs: vec![IfaceAddr::parse("fd00:1::1/64").unwrap()] };
        let n = Node::new(vec![], vec![eth0], vec![]).unwrap();
        let m = |a: &str, mask: u16| n.addr_type6_matches(&a.parse().unwrap(), None, mask);
        // MASQUERADE to one of our own addresses (over lo) takes that address as the source.
        assert_eq!(n.masquerade_source("lo", &ip("fd00:1::1")), Some(ip("fd00:1::1")));
        // A local address is UNICAST and LOCAL at once (IPv4 would say only LOCAL).
        assert!(m("fd00:1::1", AddrTypes::UNICAST));
        assert!(m("fd00:1::1", AddrTypes::LOCAL));
        assert!(m("fd00:1::1", AddrTypes::UNICAST | AddrTypes::LOCAL));
        assert!(!m("fd00:1::5", AddrTypes::LOCAL));
        assert!(!m("ff02::1", AddrTypes::UNICAST));
        assert!(m("ff02::1", AddrTypes::MULTICAST));
        // Types of the format are all required: nothing is UNICAST and MULTICAST.
        assert!(!m("ff02::1", AddrTypes::UNICAST | AddrTypes::MULTICAST));
        assert!(m("::", AddrTypes::UNSPEC));
        assert!(!m("::ffff:10.0.0.1", AddrTypes::UNICAST));
        assert!(m("fd00:1::", AddrTypes::ANYCAST));
    }

    #[test]
    fn masquerade_picks_the_interface_address() {
        let n = node();
        assert_eq!(n.masquerade_source("flannel.1", &ip("10.244.3.7")), Some(ip("10.244.0.0")));
        assert_eq!(n.masquerade_source("eth0", &ip("8.8.8.8")), Some(ip("192.168.0.2")));
        // loopback has only host-scope addresses: the first universe address anywhere
        assert_eq!(n.masquerade_source("lo", &ip("127.0.0.1")), Some(ip("192.168.0.2")));
        assert_eq!(n.redirect_address("cni0", Family::V4), Some(ip("10.244.0.1")));
    }

    #[test]
    fn bad_route_interface() {
        let e = Node::new(vec![], vec![], vec![Route { dest: "10.0.0.0/8".parse().unwrap(), iface: "nope".into() }]);
        assert!(e.is_err());
    }
}
