//! kubenat-core: what Linux netfilter and flannel do to a packet, computed offline.
//!
//! - [`packet`]: checked views over packet bytes plus owned `Repr`s, checksums (RFC 1071/1624).
//! - [`iptables`]: iptables-save parse/render, the netfilter evaluator, conntrack.
//! - [`flannel`]: UDP and VXLAN encapsulation and decapsulation.
//!
//! The crate has no Python in it; `rust/python` is the thin binding layer.

pub mod error;
pub mod flannel;
pub mod iptables;
pub mod net;
pub mod packet;

pub use error::{Error, Result};
