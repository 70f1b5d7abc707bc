//! The node's routing questions for IPv4, precomputed into flat tables so that the compiled
//! classifier answers them without strings or `IpAddr`s. Each function mirrors the
//! [`Node`] method of the same name exactly (the differential test checks them against it).

use std::net::{IpAddr, Ipv4Addr};

use crate::iptables::ast::AddrTypes;
use crate::iptables::node::{Node, LOOPBACK};
use crate::net::Family;

/// Interface index meaning "no device" (an empty name for `-i`/`-o` matches).
pub const NO_IFACE: u8 = u8::MAX;

/// Most interfaces a compiled node can hold (interface sets are 64-bit masks; one bit is "none").
pub const MAX_IFACES: usize = 63;

/// IPv4 view of a [`Node`].
#[derive(Debug, Clone)]
pub struct Node4 {
    /// Interface names by index (the node's order, `lo` included).
    pub names: Vec<String>,
    lo: u8,
    first_external: Option<u8>,
    /// Addresses owned by interfaces: (address, interface), in interface order.
    owned: Vec<(u32, u8)>,
    /// Local addresses given without an interface.
    local: Vec<u32>,
    /// Subnet broadcast addresses: (address, interface), in interface order.
    broadcast: Vec<(u32, u8)>,
    /// Routes (given first, then connected), stably sorted by prefix length, longest first.
    routes: Vec<(u32, u32, u8)>,
    explicit_routes: bool,
    /// Per interface: usable MASQUERADE sources as (network, mask, address), primary first.
    masq: Vec<Vec<(u32, u32, u32)>>,
    /// First usable MASQUERADE source of any interface.
    masq_any: Option<u32>,
    /// Per interface: its primary IPv4 address (REDIRECT).
    redirect: Vec<Option<u32>>,
    route_localnet: bool,
    /// Every local address (owned or given), for [`Node4::is_local`].
    local_all: Vec<u32>,
    /// One bit per [`bloom_bit`] of a local address: most foreign addresses miss it.
    local_bloom: u64,
}

/// The filter bit of an address.
#[inline]
fn bloom_bit(a: u32) -> u64 {
    1u64 << (a.wrapping_mul(0x9e37_79b1) >> 26)
}

fn v4(a: &IpAddr) -> Option<u32> {
    match a {
        IpAddr::V4(a) => Some(u32::from(*a)),
        IpAddr::V6(_) => None,
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl Node4 {
    /// Precomputes; `None` when the node has more than [`MAX_IFACES`] interfaces.
    pub fn new(node: &Node) -> Option<Node4> {
        let ifaces = node.interfaces();
        if ifaces.len() > MAX_IFACES {
            return None;
        }
        let idx = |name: &str| ifaces.iter().position(|i| i.name == name).and_then(|i| u8::try_from(i).ok());
        let mut owned = Vec::new();
        let mut broadcast = Vec::new();
        let mut connected = Vec::new();
        let mut masq = Vec::new();
        let mut redirect = Vec::new();
        let mut masq_any = None;
        for (i, iface) in ifaces.iter().enumerate() {
            let i = u8::try_from(i).ok()?;
            let mut usable = Vec::new();
            for a in &iface.addrs {
                let Some(addr) = v4(&a.addr) else { continue };
                owned.push((addr, i));
                if let Some(b) = a.broadcast().as_ref().and_then(v4) {
                    broadcast.push((b, i));
                }
                let m = mask(a.prefix);
                if !a.is_host_scope() {
                    connected.push((addr & m, m, i));
                    usable.push((addr & m, m, addr));
                    masq_any = masq_any.or(Some(addr));
                }
            }
            redirect.push(iface.addrs.iter().find_map(|a| {
                if Family::of(&a.addr) == Family::V4 {
                    v4(&a.addr)
                } else {
                    None
                }
            }));
            masq.push(usable);
        }
        let mut routes: Vec<(u32, u32, u8)> = node
            .routes()
            .iter()
            .filter_map(|r| {
                let net = v4(&r.dest.addr())?;
                let m = mask(r.dest.prefix());
                Some((net & m, m, idx(&r.iface)?))
            })
            .collect();
        routes.extend(connected);
        // Stable: among equal prefixes the earlier (given before connected) wins, as in `Node::route`.
        routes.sort_by_key(|&(_, m, _)| std::cmp::Reverse(m.count_ones()));
        let local: Vec<u32> = node.local_addresses().iter().filter_map(v4).collect();
        let mut local_all: Vec<u32> = local.iter().copied().chain(owned.iter().map(|&(a, _)| a)).collect();
        local_all.sort_unstable();
        local_all.dedup();
        let local_bloom = local_all.iter().fold(0, |acc, &a| acc | bloom_bit(a));
        Some(Node4 {
            local_all,
            local_bloom,
            names: ifaces.iter().map(|i| i.name.clone()).collect(),
            lo: idx(LOOPBACK)?,
            first_external: node.first_external().and_then(|i| idx(&i.name)),
            owned,
            local,
            broadcast,
            routes,
            explicit_routes: !node.routes().is_empty(),
            masq,
            masq_any,
            redirect,
            route_localnet: node.route_localnet(),
        })
    }

    /// Index of an interface by name.
    pub fn index(&self, name: &str) -> Option<u8> {
        self.names.iter().position(|n| n == name).and_then(|i| u8::try_from(i).ok())
    }

    /// The first non-loopback interface.
    pub fn first_external(&self) -> Option<u8> {
        self.first_external
    }

    fn owner(&self, a: u32) -> Option<u8> {
        if a >> 24 == 127 {
            return Some(self.lo);
        }
        self.owned.iter().find(|&&(x, _)| x == a).map(|&(_, i)| i)
    }

    /// [`Node::is_local`].
    #[inline]
    pub fn is_local(&self, a: u32) -> bool {
        a >> 24 == 127 || (self.local_bloom & bloom_bit(a) != 0 && self.local_all.contains(&a))
    }

    /// [`Node::addr_type`] with the device given by index ([`NO_IFACE`]: any device).
    pub fn addr_type(&self, a: u32, dev: Option<u8>) -> u16 {
        if a >> 24 == 0 || a == u32::MAX {
            return AddrTypes::BROADCAST;
        }
        if Ipv4Addr::from(a).is_multicast() {
            return AddrTypes::MULTICAST;
        }
        let dev_ok = |i: u8| dev.map_or(true, |d| d == i);
        if let Some(owner) = self.owner(a) {
            return if dev_ok(owner) { AddrTypes::LOCAL } else { AddrTypes::UNICAST };
        }
        if self.local.contains(&a) {
            return AddrTypes::LOCAL;
        }
        if let Some(&(_, i)) = self.broadcast.iter().find(|&&(b, _)| b == a) {
            return if dev_ok(i) { AddrTypes::BROADCAST } else { AddrTypes::UNICAST };
        }
        AddrTypes::UNICAST
    }

    /// [`Node::delivers_locally`].
    pub fn delivers_locally(&self, a: u32) -> bool {
        self.is_local(a) || self.addr_type(a, None) & (AddrTypes::BROADCAST | AddrTypes::MULTICAST) != 0
    }

    /// [`Node::martian_arriving`]: whether routing drops a packet arriving off `lo`.
    pub fn martian_arriving(&self, src: u32, dst: u32) -> bool {
        (dst >> 24 == 127 && !self.route_localnet) || self.is_local(src)
    }

    /// Index of `lo`.
    pub fn lo(&self) -> u8 {
        self.lo
    }

    /// [`Node::route`].
    pub fn route(&self, a: u32) -> Option<u8> {
        match self.routes.iter().find(|&&(net, m, _)| a & m == net) {
            Some(&(_, _, i)) => Some(i),
            None if !self.explicit_routes => self.first_external,
            None => None,
        }
    }

    /// [`Node::masquerade_source`].
    pub fn masquerade_source(&self, out: u8, dst: u32) -> Option<u32> {
        if let Some(list) = self.masq.get(usize::from(out)) {
            if let Some(&(_, _, a)) = list.iter().find(|&&(net, m, _)| dst & m == net) {
                return Some(a);
            }
            if let Some(&(_, _, a)) = list.first() {
                return Some(a);
            }
        }
        self.masq_any
    }

    /// [`Node::redirect_address`] for IPv4.
    pub fn redirect_address(&self, iface: u8) -> Option<u32> {
        self.redirect.get(usize::from(iface)).copied().flatten()
    }
}
