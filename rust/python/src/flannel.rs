//! Bindings for flannel encapsulation: `kubenat._core.Encapsulator` and the UDP proxy's ICMP.
//!
//! Users normally reach this through `kubenat.flannel.Overlay`, which derives every argument
//! from flannel's configuration and leases.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::panic::AssertUnwindSafe;

use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::PyBytes;

use kubenat_core::flannel::{self, udp, vxlan, Backend, Lease, Link, Local, Mac};
use kubenat_core::net::Cidr;
use kubenat_core::Error;

use crate::errors::{guard, CoreError, IntoPyResult};

fn parse_mac(what: &str, s: &str) -> Result<Mac, Error> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    let mut out = [0u8; 6];
    let bad = || Error::invalid(what, format!("{s:?} is not a MAC address (aa:bb:cc:dd:ee:ff)"));
    if parts.len() != 6 {
        return Err(bad());
    }
    for (o, p) in out.iter_mut().zip(parts) {
        if p.is_empty() || p.len() > 2 {
            return Err(bad());
        }
        *o = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

fn opt_mac(what: &str, s: Option<&str>) -> Result<Option<Mac>, Error> {
    s.map(|s| parse_mac(what, s)).transpose()
}

fn parse_ip(what: &str, s: &str) -> Result<IpAddr, Error> {
    s.parse().map_err(|_| Error::invalid(what, format!("{s:?} is not an IP address")))
}

fn parse_link(s: &str) -> Result<Link, Error> {
    match s {
        "ethernet" | "ether" | "eth" => Ok(Link::Ethernet),
        "ip" | "raw" => Ok(Link::Ip),
        _ => Err(Error::invalid("link", format!("{s:?} is neither \"ethernet\" nor \"ip\""))),
    }
}

fn port_or(what: &str, port: u32, default: u16) -> Result<u16, Error> {
    match port {
        0 => Ok(default),
        p => u16::try_from(p).map_err(|_| Error::invalid(what, format!("{p} is not a UDP port"))),
    }
}

/// One node's overlay: encapsulates inner IP packets into the frames it sends, and decapsulates
/// received frames, refusing what its receive path would drop (`DecapError` with `kind`/`offset`).
#[pyclass(frozen, module = "kubenat._core", name = "Encapsulator")]
pub struct PyEncapsulator {
    inner: flannel::Encapsulator,
    backend: &'static str,
    /// Buffer-call templates for mark 0, per link (Ethernet, IP), built on first use (bench).
    fast: [std::sync::OnceLock<kubenat_core::flannel::fast::FastPath>; 2],
}

type LeaseTuple = (String, String, Option<String>, Option<String>);

#[allow(clippy::too_many_arguments)]
fn build(
    backend: &str,
    public_ip: Option<&str>,
    public_ipv6: Option<&str>,
    underlay_mac: Option<&str>,
    vtep_mac: Option<&str>,
    vtep_mac_v6: Option<&str>,
    leases: Vec<LeaseTuple>,
    gateway_mac: Option<&str>,
    vni: u32,
    port: u32,
    udp_checksum: bool,
    gbp: bool,
    port_range: (u16, u16),
    mtu: usize,
    tun_addr: Option<&str>,
    ttl: u8,
    decrement_ttl: bool,
    hash_seed: u32,
) -> Result<(flannel::Encapsulator, &'static str), Error> {
    let ipv4 = match public_ip.map(|s| parse_ip("public_ip", s)).transpose()? {
        None => None,
        Some(IpAddr::V4(a)) => Some(a),
        Some(IpAddr::V6(_)) => return Err(Error::invalid("public_ip", "must be an IPv4 address")),
    };
    let ipv6: Option<Ipv6Addr> = match public_ipv6.map(|s| parse_ip("public_ipv6", s)).transpose()? {
        None => None,
        Some(IpAddr::V6(a)) => Some(a),
        Some(IpAddr::V4(_)) => return Err(Error::invalid("public_ipv6", "must be an IPv6 address")),
    };
    let local = Local {
        ipv4,
        ipv6,
        underlay_mac: opt_mac("underlay_mac", underlay_mac)?,
        vtep_mac: opt_mac("vtep_mac", vtep_mac)?,
        vtep_mac_v6: opt_mac("vtep_mac_v6", vtep_mac_v6)?,
    };
    let mut table = Vec::with_capacity(leases.len());
    for (i, (subnet, ip, vtep, nic)) in leases.into_iter().enumerate() {
        let what = format!("leases[{i}]");
        let subnet: Cidr =
            subnet.parse().map_err(|e: Error| Error::invalid(format!("{what}.subnet"), e.to_string()))?;
        table.push(Lease {
            subnet,
            public_ip: parse_ip(&format!("{what}.public_ip"), &ip)?,
            vtep_mac: opt_mac(&format!("{what}.vtep_mac"), vtep.as_deref())?,
            underlay_mac: opt_mac(&format!("{what}.underlay_mac"), nic.as_deref())?,
        });
    }
    let (backend, name) = match backend {
        "vxlan" => {
            let config = vxlan::Config {
                vni,
                port: port_or("port", port, vxlan::DEFAULT_PORT)?,
                udp_checksum,
                gbp,
                port_range,
                ttl,
                hash_seed,
            };
            (Backend::Vxlan { config, mtu }, "vxlan")
        }
        "udp" => {
            let tun_addr = match tun_addr.map(|s| parse_ip("tun_addr", s)).transpose()? {
                Some(IpAddr::V4(a)) => a,
                None => Ipv4Addr::UNSPECIFIED,
                Some(IpAddr::V6(_)) => return Err(Error::invalid("tun_addr", "must be an IPv4 address")),
            };
            let config = udp::Config {
                port: port_or("port", port, udp::DEFAULT_PORT)?,
                tun_mtu: if mtu == 0 { usize::MAX } else { mtu },
                tun_addr,
                ttl,
                decrement_ttl,
            };
            (Backend::Udp(config), "udp")
        }
        "host-gw" => (Backend::HostGw { mtu }, "host-gw"),
        other => {
            return Err(Error::invalid("backend", format!("{other:?} is not one of \"vxlan\", \"udp\", \"host-gw\"")));
        }
    };
    let gateway_mac = opt_mac("gateway_mac", gateway_mac)?;
    Ok((flannel::Encapsulator::new(backend, local, table, gateway_mac)?, name))
}

impl PyEncapsulator {
    /// The cached buffer-call templates for `link` (mark 0).
    fn fast_path(&self, link: Link) -> &kubenat_core::flannel::fast::FastPath {
        let slot = usize::from(link == Link::Ip);
        self.fast[slot].get_or_init(|| kubenat_core::flannel::fast::FastPath::new(&self.inner, link, 0))
    }
}

fn results_to_py(py: Python<'_>, results: Vec<Result<Vec<u8>, Error>>) -> Vec<Py<PyAny>> {
    results
        .into_iter()
        .map(|r| match r {
            Ok(bytes) => PyBytes::new(py, &bytes).into_any().unbind(),
            Err(e) => PyErr::from(CoreError(e)).into_value(py).into_any(),
        })
        .collect()
}

#[pymethods]
impl PyEncapsulator {
    #[new]
    #[pyo3(signature = (
        backend, *, public_ip=None, public_ipv6=None, underlay_mac=None, vtep_mac=None, vtep_mac_v6=None,
        leases=Vec::new(), gateway_mac=None, vni=1, port=0, udp_checksum=true, gbp=false,
        port_range=(32768, 60999), mtu=0, tun_addr=None, ttl=64, decrement_ttl=true, hash_seed=0
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        backend: &str,
        public_ip: Option<&str>,
        public_ipv6: Option<&str>,
        underlay_mac: Option<&str>,
        vtep_mac: Option<&str>,
        vtep_mac_v6: Option<&str>,
        leases: Vec<LeaseTuple>,
        gateway_mac: Option<&str>,
        vni: u32,
        port: u32,
        udp_checksum: bool,
        gbp: bool,
        port_range: (u16, u16),
        mtu: usize,
        tun_addr: Option<&str>,
        ttl: u8,
        decrement_ttl: bool,
        hash_seed: u32,
    ) -> PyResult<Self> {
        let (inner, backend) = guard(AssertUnwindSafe(|| {
            build(
                backend,
                public_ip,
                public_ipv6,
                underlay_mac,
                vtep_mac,
                vtep_mac_v6,
                leases,
                gateway_mac,
                vni,
                port,
                udp_checksum,
                gbp,
                port_range,
                mtu,
                tun_addr,
                ttl,
                decrement_ttl,
                hash_seed,
            )
            .py()
        }))?;
        Ok(PyEncapsulator { inner, backend, fast: Default::default() })
    }

    /// The backend: "vxlan", "udp" or "host-gw".
    #[getter]
    fn backend(&self) -> &'static str {
        self.backend
    }

    /// The frame this node sends for the inner IP packet `packet`.
    #[pyo3(signature = (packet, *, ip_id=0, mark=0, link="ethernet"))]
    fn encap<'py>(
        &self,
        py: Python<'py>,
        packet: PyBackedBytes,
        ip_id: u16,
        mark: u32,
        link: &str,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let link = parse_link(link).py()?;
        let out = guard(AssertUnwindSafe(|| self.inner.encap(&packet, ip_id, mark, link).py()))?;
        Ok(PyBytes::new(py, &out))
    }

    /// The inner IP packet of a received frame.
    #[pyo3(signature = (frame, *, link="ethernet"))]
    fn decap<'py>(&self, py: Python<'py>, frame: PyBackedBytes, link: &str) -> PyResult<Bound<'py, PyBytes>> {
        let link = parse_link(link).py()?;
        let out = guard(AssertUnwindSafe(|| self.inner.decap(&frame, link).py()))?;
        Ok(PyBytes::new(py, &out))
    }

    /// Encapsulates many packets without holding the GIL; each result is bytes or the error.
    #[pyo3(signature = (packets, *, ip_id=0, mark=0, link="ethernet"))]
    fn encap_batch(
        &self,
        py: Python<'_>,
        packets: Vec<PyBackedBytes>,
        ip_id: u16,
        mark: u32,
        link: &str,
    ) -> PyResult<Vec<Py<PyAny>>> {
        let link = parse_link(link).py()?;
        let results =
            guard(AssertUnwindSafe(|| Ok(py.detach(|| self.inner.encap_batch(&packets, ip_id, mark, link)))))?;
        Ok(results_to_py(py, results))
    }

    /// Decapsulates many frames without holding the GIL; each result is bytes or the error.
    #[pyo3(signature = (frames, *, link="ethernet"))]
    fn decap_batch(&self, py: Python<'_>, frames: Vec<PyBackedBytes>, link: &str) -> PyResult<Vec<Py<PyAny>>> {
        let link = parse_link(link).py()?;
        let results = guard(AssertUnwindSafe(|| Ok(py.detach(|| self.inner.decap_batch(&frames, link)))))?;
        Ok(results_to_py(py, results))
    }

    // --- bench: buffer calls (flannel_buffer.rs) ---
    /// Encapsulates the packets `data[offsets[i]:offsets[i] + lengths[i]]` without the GIL;
    /// returns `(frames, offsets, lengths, errors)`: the frames one after the other in a
    /// bytearray, their offsets (`array('Q')`) and lengths (`array('I')`, 0 for a failed packet),
    /// and `{index: exception}` for the packets that failed.
    #[pyo3(signature = (data, offsets, lengths, *, ip_id=0, mark=0, link="ethernet"))]
    #[allow(clippy::too_many_arguments)]
    fn encap_buffer<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
        offsets: &Bound<'py, PyAny>,
        lengths: &Bound<'py, PyAny>,
        ip_id: u16,
        mark: u32,
        link: &str,
    ) -> PyResult<Bound<'py, pyo3::types::PyTuple>> {
        let link = parse_link(link).py()?;
        let dir = crate::flannel_buffer::Direction::Encap { ip_id, mark };
        guard(AssertUnwindSafe(|| {
            let built;
            let fast = if mark == 0 {
                self.fast_path(link)
            } else {
                built = kubenat_core::flannel::fast::FastPath::new(&self.inner, link, mark);
                &built
            };
            crate::flannel_buffer::run(py, fast, data, offsets, lengths, dir)
        }))
    }

    /// Decapsulates the frames `data[offsets[i]:offsets[i] + lengths[i]]` without the GIL;
    /// returns `(packets, offsets, lengths, errors)` as `encap_buffer` does.
    #[pyo3(signature = (data, offsets, lengths, *, link="ethernet"))]
    fn decap_buffer<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
        offsets: &Bound<'py, PyAny>,
        lengths: &Bound<'py, PyAny>,
        link: &str,
    ) -> PyResult<Bound<'py, pyo3::types::PyTuple>> {
        let link = parse_link(link).py()?;
        let dir = crate::flannel_buffer::Direction::Decap;
        guard(AssertUnwindSafe(|| crate::flannel_buffer::run(py, self.fast_path(link), data, offsets, lengths, dir)))
    }
    // --- end bench ---

    /// The ICMP net-unreachable flannel's UDP proxy writes back for `packet`, or None.
    fn net_unreachable<'py>(&self, py: Python<'py>, packet: PyBackedBytes) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let reply = guard(AssertUnwindSafe(|| Ok(self.inner.net_unreachable(&packet))))?;
        Ok(reply.map(|b| PyBytes::new(py, &b)))
    }

    fn __repr__(&self) -> String {
        format!("Encapsulator(backend={:?}, leases={})", self.backend, self.inner.leases().len())
    }
}

/// The ICMP net-unreachable flannel's UDP proxy builds for `offender`, or None when it sends none.
#[pyfunction]
fn flannel_net_unreachable<'py>(
    py: Python<'py>,
    offender: PyBackedBytes,
    tun_addr: &str,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let addr = match parse_ip("tun_addr", tun_addr).py()? {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => return Err(Error::invalid("tun_addr", "must be an IPv4 address")).py(),
    };
    let reply = guard(AssertUnwindSafe(|| Ok(udp::net_unreachable(&offender, addr))))?;
    Ok(reply.map(|b| PyBytes::new(py, &b)))
}

/// flannel's UDP-proxy TTL decrement with its checksum patch; returns the new packet, or None
/// when the TTL reaches 0 (the proxy drops it).
#[pyfunction]
fn flannel_decrement_ttl<'py>(py: Python<'py>, packet: PyBackedBytes) -> PyResult<Option<Bound<'py, PyBytes>>> {
    if packet.len() < 20 {
        return Err(Error::packet("ipv4", "header", 0, format!("truncated: need 20 bytes, only {}", packet.len())))
            .py();
    }
    let mut p = packet.to_vec();
    let alive = guard(AssertUnwindSafe(|| Ok(udp::decrement_ttl(&mut p))))?;
    Ok(alive.then(|| PyBytes::new(py, &p)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyEncapsulator>()?;
    m.add_function(wrap_pyfunction!(flannel_net_unreachable, m)?)?;
    m.add_function(wrap_pyfunction!(flannel_decrement_ttl, m)?)?;
    Ok(())
}
