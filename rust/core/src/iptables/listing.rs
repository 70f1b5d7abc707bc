//! The `iptables -L [-n]` view of a table.

use crate::net::Cidr;

use super::names;

/// An address as `iptables -L` prints it in conntrack options: `anywhere` for the zero address,
/// a host or network name when one is known, and the prefix unless it is a single host.
pub(crate) fn conntrack_addr_name(c: &Cidr) -> String {
    if c.addr().is_unspecified() {
        return "anywhere".into();
    }
    let name = names::host_name(&c.addr())
        .or_else(|| names::network_name(&c.addr()))
        .map_or_else(|| c.addr().to_string(), str::to_string);
    if c.is_host() {
        name
    } else {
        format!("{name}/{}", c.prefix())
    }
}
