//! `kubenat.Packet`: one IP packet (optionally behind Ethernet) owning its bytes.
//!
//! Other glue modules take a `Packet` argument as `&Bound<'_, PyPacket>` (or
//! `PyRef<'_, PyPacket>`) and read the core packet with [`PyPacket::core`].

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyMemoryView, PyTuple, PyType};

use kubenat_core::net::Family;
use kubenat_core::packet::build::{self, Builder};
use kubenat_core::packet::nat::{self, Rewrite};
use kubenat_core::packet::{ethernet, proto, tcp, IpPacket, Link};
use kubenat_core::Error;

use crate::errors::{guard, IntoPyResult};

/// The Python `Packet` class.
#[pyclass(frozen, module = "kubenat._core", name = "Packet")]
pub struct PyPacket {
    inner: IpPacket,
}

impl PyPacket {
    /// The core packet, for other glue modules (the evaluator builds its flow key from it).
    #[allow(dead_code)] // used by the other areas' glue as they land
    pub(crate) fn core(&self) -> &IpPacket {
        &self.inner
    }

    /// Wraps a core packet (e.g. the rewritten packet an evaluation returns).
    #[allow(dead_code)]
    pub(crate) fn from_core(inner: IpPacket) -> Self {
        PyPacket { inner }
    }
}

fn addr(what: &str, s: &str) -> PyResult<IpAddr> {
    s.parse::<IpAddr>().map_err(|_| Error::invalid(what, format!("{s:?} is not an IP address"))).py()
}

fn addrs(src: &str, dst: &str) -> PyResult<(IpAddr, IpAddr)> {
    Ok((addr("src", src)?, addr("dst", dst)?))
}

fn parse_link(link: &str) -> PyResult<Option<Link>> {
    match link {
        "auto" => Ok(None),
        "ip" => Ok(Some(Link::Ip)),
        "ethernet" => Ok(Some(Link::Ethernet)),
        other => Err(Error::invalid("link", format!("{other:?} is not one of 'auto', 'ip', 'ethernet'"))).py(),
    }
}

/// The bytes of a `bytes`, `bytearray` or `memoryview` (anything `bytes()` accepts that
/// exposes the buffer protocol).
fn byte_vec(data: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(b) = data.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    if let Ok(b) = data.cast::<PyByteArray>() {
        return Ok(b.to_vec());
    }
    if data.cast::<PyMemoryView>().is_ok() {
        let copy = data.py().get_type::<PyBytes>().call1((data,))?;
        return Ok(copy.cast::<PyBytes>()?.as_bytes().to_vec());
    }
    Err(PyTypeError::new_err(format!(
        "packet data must be bytes, bytearray or memoryview, not {}",
        data.get_type().name()?
    )))
}

/// IP-level options shared by every constructor.
struct IpOpts<'a> {
    ttl: u8,
    tos: u8,
    ident: u16,
    dont_fragment: bool,
    ip_options: &'a [u8],
    payload: &'a [u8],
}

fn finish(b: Builder, o: &IpOpts<'_>) -> PyResult<PyPacket> {
    let b = b
        .ttl(o.ttl)
        .tos(o.tos)
        .ident(o.ident)
        .dont_frag(o.dont_fragment)
        .ip_options(o.ip_options.to_vec())
        .payload(o.payload.to_vec());
    Ok(PyPacket { inner: b.build().py()? })
}

#[pymethods]
impl PyPacket {
    /// A TCP segment; IPv4 or IPv6 follows from the addresses.
    #[classmethod]
    #[pyo3(signature = (*, src, dst, sport, dport, flags = "S", ttl = 64, payload = b"".as_slice(), seq = 0, ack = 0,
        window = 8192, tos = 0, ident = 0, dont_fragment = false, ip_options = b"".as_slice(), tcp_options = b"".as_slice()))]
    #[allow(clippy::too_many_arguments)]
    fn tcp(
        _cls: &Bound<'_, PyType>,
        src: &str,
        dst: &str,
        sport: u16,
        dport: u16,
        flags: &str,
        ttl: u8,
        payload: &[u8],
        seq: u32,
        ack: u32,
        window: u16,
        tos: u8,
        ident: u16,
        dont_fragment: bool,
        ip_options: &[u8],
        tcp_options: &[u8],
    ) -> PyResult<PyPacket> {
        let (s, d) = addrs(src, dst)?;
        let b = build::tcp(s, d, sport, dport)
            .flags(tcp::flags_from_string(flags).py()?)
            .seq_ack(seq, ack)
            .window(window)
            .tcp_options(tcp_options.to_vec());
        guard(AssertUnwindSafe(|| finish(b, &IpOpts { ttl, tos, ident, dont_fragment, ip_options, payload })))
    }

    /// A UDP datagram; `checksum=False` leaves the UDP checksum 0 (IPv4 only).
    #[classmethod]
    #[pyo3(signature = (*, src, dst, sport, dport, ttl = 64, payload = b"".as_slice(), tos = 0, ident = 0,
        dont_fragment = false, ip_options = b"".as_slice(), checksum = true))]
    #[allow(clippy::too_many_arguments)]
    fn udp(
        _cls: &Bound<'_, PyType>,
        src: &str,
        dst: &str,
        sport: u16,
        dport: u16,
        ttl: u8,
        payload: &[u8],
        tos: u8,
        ident: u16,
        dont_fragment: bool,
        ip_options: &[u8],
        checksum: bool,
    ) -> PyResult<PyPacket> {
        let (s, d) = addrs(src, dst)?;
        if !checksum && s.is_ipv6() {
            return Err(Error::invalid("checksum", "the UDP checksum is mandatory over IPv6")).py();
        }
        let b = build::udp(s, d, sport, dport).udp_checksum(checksum);
        guard(AssertUnwindSafe(|| finish(b, &IpOpts { ttl, tos, ident, dont_fragment, ip_options, payload })))
    }

    /// An SCTP packet; `payload` is the chunk bytes.
    #[classmethod]
    #[pyo3(signature = (*, src, dst, sport, dport, ttl = 64, payload = b"".as_slice(), verification_tag = 0, tos = 0,
        ident = 0, dont_fragment = false, ip_options = b"".as_slice()))]
    #[allow(clippy::too_many_arguments)]
    fn sctp(
        _cls: &Bound<'_, PyType>,
        src: &str,
        dst: &str,
        sport: u16,
        dport: u16,
        ttl: u8,
        payload: &[u8],
        verification_tag: u32,
        tos: u8,
        ident: u16,
        dont_fragment: bool,
        ip_options: &[u8],
    ) -> PyResult<PyPacket> {
        let (s, d) = addrs(src, dst)?;
        let b = build::sctp(s, d, sport, dport).verification_tag(verification_tag);
        guard(AssertUnwindSafe(|| finish(b, &IpOpts { ttl, tos, ident, dont_fragment, ip_options, payload })))
    }

    /// An ICMP message (ICMPv6 for IPv6 addresses). `type` defaults to echo request (8, or
    /// 128 for ICMPv6); `id` and `seq` fill the rest of the header.
    #[classmethod]
    #[pyo3(signature = (*, src, dst, r#type = None, code = 0, id = 0, seq = 0, ttl = 64, payload = b"".as_slice(),
        tos = 0, ident = 0, dont_fragment = false, ip_options = b"".as_slice()))]
    #[allow(clippy::too_many_arguments)]
    fn icmp(
        _cls: &Bound<'_, PyType>,
        src: &str,
        dst: &str,
        r#type: Option<u8>,
        code: u8,
        id: u16,
        seq: u16,
        ttl: u8,
        payload: &[u8],
        tos: u8,
        ident: u16,
        dont_fragment: bool,
        ip_options: &[u8],
    ) -> PyResult<PyPacket> {
        let (s, d) = addrs(src, dst)?;
        let t = r#type.unwrap_or(if s.is_ipv6() { 128 } else { 8 });
        let b = build::icmp(s, d, t, code, (u32::from(id) << 16) | u32::from(seq));
        guard(AssertUnwindSafe(|| finish(b, &IpOpts { ttl, tos, ident, dont_fragment, ip_options, payload })))
    }

    /// Dissects bytes: `link="auto"` (IP when the first nibble is 4 or 6, else Ethernet), `"ip"`
    /// or `"ethernet"`. Raises `PacketError` naming the field and byte offset of a problem.
    #[classmethod]
    #[pyo3(signature = (data, *, link = "auto"))]
    fn from_bytes(_cls: &Bound<'_, PyType>, data: &Bound<'_, PyAny>, link: &str) -> PyResult<PyPacket> {
        let link = parse_link(link)?;
        let data = byte_vec(data)?;
        guard(move || {
            let inner = match link {
                None => IpPacket::parse_auto(data),
                Some(l) => IpPacket::parse(data, l),
            };
            Ok(PyPacket { inner: inner.py()? })
        })
    }

    /// Converts a scapy packet (Ether/IP/IPv6 at the top, or containing one). Needs scapy.
    #[classmethod]
    fn from_scapy(_cls: &Bound<'_, PyType>, p: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let f = p.py().import("kubenat.packets")?.getattr("from_scapy")?;
        Ok(f.call1((p,))?.unbind())
    }

    /// This packet as a scapy packet (`Ether` or `IP`/`IPv6` at the top). Needs scapy.
    fn to_scapy(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let f = slf.py().import("kubenat.packets")?.getattr("to_scapy")?;
        Ok(f.call1((slf,))?.unbind())
    }

    /// Rebuilds a pickled packet.
    #[staticmethod]
    fn _unpickle(data: &[u8], link: &str) -> PyResult<PyPacket> {
        let l = parse_link(link)?.unwrap_or(Link::Ip);
        guard(|| Ok(PyPacket { inner: IpPacket::parse(data.to_vec(), l).py()? }))
    }

    /// The packet's bytes (link header included when it has one).
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.inner.bytes())
    }

    fn __bytes__<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.inner.bytes())
    }

    fn __len__(&self) -> usize {
        self.inner.bytes().len()
    }

    /// `"ip"` or `"ethernet"`.
    #[getter]
    fn link(&self) -> &'static str {
        self.inner.link().name()
    }

    /// 4 or 6.
    #[getter]
    fn family(&self) -> u8 {
        match self.inner.family() {
            Family::V4 => 4,
            Family::V6 => 6,
        }
    }

    /// Source address.
    #[getter]
    fn src(&self) -> String {
        self.inner.src().to_string()
    }

    /// Destination address.
    #[getter]
    fn dst(&self) -> String {
        self.inner.dst().to_string()
    }

    /// Upper-layer protocol number.
    #[getter]
    fn protocol(&self) -> u8 {
        self.inner.protocol()
    }

    /// Protocol name as iptables prints it (`"tcp"`, `"ipv6-icmp"`), or the number as text.
    #[getter]
    fn proto(&self) -> String {
        proto::name(self.inner.protocol()).map_or_else(|| self.inner.protocol().to_string(), str::to_string)
    }

    /// Source port (TCP/UDP/SCTP), else None.
    #[getter]
    fn sport(&self) -> Option<u16> {
        self.inner.sport()
    }

    /// Destination port (TCP/UDP/SCTP), else None.
    #[getter]
    fn dport(&self) -> Option<u16> {
        self.inner.dport()
    }

    /// TTL or hop limit.
    #[getter]
    fn ttl(&self) -> u8 {
        self.inner.ttl()
    }

    /// TOS / traffic class.
    #[getter]
    fn tos(&self) -> u8 {
        self.inner.tos()
    }

    /// IP length (IPv4 total length; IPv6 40 + payload length).
    #[getter]
    fn length(&self) -> usize {
        self.inner.len()
    }

    /// IPv4 identification (IPv6: fragment identification or 0).
    #[getter]
    fn ident(&self) -> u32 {
        self.inner.ident()
    }

    /// TCP flags as scapy letters (`"SA"`), else None.
    #[getter]
    fn flags(&self) -> Option<String> {
        self.inner.tcp_flags_full().map(tcp::flags_to_string)
    }

    /// TCP flag byte (FIN=0x01 ... CWR=0x80), else None.
    #[getter]
    fn tcp_flags(&self) -> Option<u8> {
        self.inner.tcp_flags()
    }

    /// TCP sequence number, else None.
    #[getter]
    fn seq(&self) -> Option<u32> {
        self.inner.tcp().map(|t| t.seq())
    }

    /// TCP acknowledgment number, else None.
    #[getter]
    fn ack(&self) -> Option<u32> {
        self.inner.tcp().map(|t| t.ack())
    }

    /// ICMP/ICMPv6 type, else None.
    #[getter]
    fn icmp_type(&self) -> Option<u8> {
        self.inner.icmp_type()
    }

    /// ICMP/ICMPv6 code, else None.
    #[getter]
    fn icmp_code(&self) -> Option<u8> {
        self.inner.icmp_code()
    }

    /// Identifier of an ICMP query/reply, else None.
    #[getter]
    fn icmp_id(&self) -> Option<u16> {
        self.inner.icmp_ident()
    }

    /// Sequence number of an ICMP query/reply, else None.
    #[getter]
    fn icmp_seq(&self) -> Option<u16> {
        self.inner.icmp_seq()
    }

    /// Fragment offset in 8-byte units (scapy's `frag`).
    #[getter]
    fn fragment_offset(&self) -> u16 {
        self.inner.frag_offset()
    }

    /// More Fragments flag.
    #[getter]
    fn more_fragments(&self) -> bool {
        self.inner.more_fragments()
    }

    /// IPv4 Don't Fragment flag.
    #[getter]
    fn dont_fragment(&self) -> bool {
        self.inner.dont_fragment()
    }

    /// Whether the packet is a fragment.
    #[getter]
    fn is_fragment(&self) -> bool {
        self.inner.is_fragment()
    }

    /// IPv4 option bytes.
    #[getter]
    fn ip_options<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.inner.ip_options())
    }

    /// Transport payload (after the TCP/UDP/SCTP/ICMP header).
    #[getter]
    fn payload<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.inner.payload())
    }

    /// The packet an ICMP/ICMPv6 error quotes, as `(src, dst, protocol, sport, dport)`
    /// (`sport` is the identifier of a quoted ICMP query; ports the quote cuts off are None),
    /// or None when this is not an ICMP error. Raises `PacketError` for a malformed quote.
    #[getter]
    #[allow(clippy::type_complexity)]
    fn quoted(&self) -> PyResult<Option<(String, String, u8, Option<u16>, Option<u16>)>> {
        let Some(q) = guard(|| self.inner.quoted().py())? else { return Ok(None) };
        let b = self.inner.bytes();
        let sport = q.sport(b).or_else(|| q.icmp_ident(b));
        Ok(Some((q.src.to_string(), q.dst.to_string(), q.protocol, sport, q.dport(b))))
    }

    /// Source MAC for Ethernet frames, else None.
    #[getter]
    fn src_mac(&self) -> Option<String> {
        self.inner.src_mac().map(|m| ethernet::format_mac(&m))
    }

    /// Destination MAC for Ethernet frames, else None.
    #[getter]
    fn dst_mac(&self) -> Option<String> {
        self.inner.dst_mac().map(|m| ethernet::format_mac(&m))
    }

    /// VLAN tag control information for tagged frames, else None.
    #[getter]
    fn vlan(&self) -> Option<u16> {
        self.inner.vlan_tci()
    }

    /// Whether every checksum the packet carries is valid.
    fn checksums_valid(&self) -> bool {
        self.inner.checksums_valid()
    }

    /// A copy with every checksum recomputed from scratch.
    fn with_checksums(&self) -> PyPacket {
        let mut p = self.inner.clone();
        let (buf, layout) = p.bytes_mut();
        let layout = *layout;
        nat::fill_checksums(buf, &layout);
        PyPacket { inner: p }
    }

    /// A copy with NAT applied: new addresses and/or ports (for ICMP queries `sport` sets the
    /// identifier), checksums updated incrementally as the kernel does.
    #[pyo3(signature = (*, src = None, dst = None, sport = None, dport = None))]
    fn with_nat(
        &self,
        src: Option<&str>,
        dst: Option<&str>,
        sport: Option<u16>,
        dport: Option<u16>,
    ) -> PyResult<PyPacket> {
        let rw = Rewrite {
            src: src.map(|s| addr("src", s)).transpose()?,
            dst: dst.map(|s| addr("dst", s)).transpose()?,
            sport,
            dport,
        };
        let mut p = self.inner.clone();
        let (buf, layout) = p.bytes_mut();
        let layout = *layout;
        guard(AssertUnwindSafe(|| nat::rewrite_nat(buf, &layout, &rw).py()))?;
        Ok(PyPacket { inner: p })
    }

    /// A copy with the TTL / hop limit decremented by one (IPv4 checksum updated
    /// incrementally), or None when it was already 0.
    fn decrement_ttl(&self) -> Option<PyPacket> {
        let mut p = self.inner.clone();
        let (buf, layout) = p.bytes_mut();
        let layout = *layout;
        nat::decrement_ttl(buf, &layout)?;
        Some(PyPacket { inner: p })
    }

    /// The same IP packet behind an Ethernet header (optionally 802.1Q-tagged with `vlan`).
    #[pyo3(signature = (*, src = "02:00:00:00:00:01", dst = "02:00:00:00:00:02", vlan = None))]
    fn with_ethernet(&self, src: &str, dst: &str, vlan: Option<u16>) -> PyResult<PyPacket> {
        let s = ethernet::parse_mac(src).py()?;
        let d = ethernet::parse_mac(dst).py()?;
        if vlan.is_some_and(|v| v > 0x0fff) {
            return Err(Error::invalid("vlan", "a VLAN ID is at most 4095")).py();
        }
        guard(|| Ok(PyPacket { inner: self.inner.with_ethernet(s, d, vlan) }))
    }

    /// The bare IP packet (Ethernet header and padding dropped).
    fn to_ip(&self) -> PyPacket {
        PyPacket { inner: self.inner.to_ip() }
    }

    fn __repr__(&self) -> String {
        format!("Packet({})", self.inner)
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<PyPacket>().is_ok_and(|o| o.get().inner.bytes() == self.inner.bytes())
    }

    fn __hash__(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.inner.bytes().hash(&mut h);
        h.finish()
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let me = slf.get();
        let f = slf.get_type().getattr("_unpickle")?;
        let args =
            PyTuple::new(py, [PyBytes::new(py, me.inner.bytes()).into_any(), me.link().into_pyobject(py)?.into_any()])?;
        Ok((f, args))
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyPacket>()?;
    Ok(())
}
