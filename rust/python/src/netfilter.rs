//! `kubenat.Netfilter`: a node evaluating packets through its ruleset; `Flow`, `Result`,
//! `Outcome`, `TraceStep` and `Connection` are the frozen values it hands back.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};

use kubenat_core::iptables::ast;
use kubenat_core::iptables::chance::Probability;
use kubenat_core::iptables::conntrack::{status, CtEntry};
use kubenat_core::iptables::eval::{Netfilter as CoreNetfilter, Origin};
use kubenat_core::iptables::flow::{proto, proto_name, Flow as CoreFlow, Tuple};
use kubenat_core::iptables::node::{Bridge, BridgePort, IfaceAddr, Interface, Node, Route};
use kubenat_core::iptables::process;
use kubenat_core::iptables::result::{table_name, EvalResult, TraceStep as CoreStep};
use kubenat_core::net::Cidr;
use kubenat_core::packet::{IpPacket, Link};
use kubenat_core::Error;

use crate::errors::{guard, IntoPyResult};
use crate::packet::PyPacket;

fn parse_addr(what: &str, s: &str) -> PyResult<IpAddr> {
    s.trim().parse::<IpAddr>().map_err(|_| Error::invalid(what, format!("{s:?} is not an IP address"))).py()
}

/// Protocol by name (`tcp`, `udp`, `sctp`, `icmp`, `icmpv6`/`ipv6-icmp`) or number.
fn parse_proto(s: &str, v6: bool) -> PyResult<u8> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "tcp" => proto::TCP,
        "udp" => proto::UDP,
        "sctp" => proto::SCTP,
        "icmp" if v6 => proto::ICMPV6,
        "icmp" => proto::ICMP,
        "icmpv6" | "ipv6-icmp" | "icmp6" => proto::ICMPV6,
        "udplite" => proto::UDPLITE,
        other => other
            .parse::<u8>()
            .map_err(|_| Error::invalid("proto", format!("{other:?} is not a protocol name or number")))
            .py()?,
    })
}

fn parse_origin(from: &str) -> Origin {
    match from {
        "auto" => Origin::Auto,
        "local" => Origin::Local,
        iface => Origin::Interface(iface.to_string()),
    }
}

fn tuple_py<'py>(py: Python<'py>, t: &Tuple) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(
        py,
        [
            proto_name(t.proto).into_pyobject(py)?.into_any(),
            t.src.to_string().into_pyobject(py)?.into_any(),
            t.dst.to_string().into_pyobject(py)?.into_any(),
            t.sport.into_pyobject(py)?.into_any(),
            t.dport.into_pyobject(py)?.into_any(),
        ],
    )
}

/// A flow key: what the evaluator reads from a packet (addresses, protocol, ports, TCP flags,
/// ICMP type/code/id, fragment offset, TTL).
#[pyclass(frozen, module = "kubenat._core", name = "Flow")]
pub struct PyFlow {
    pub(crate) inner: CoreFlow,
}

#[pymethods]
impl PyFlow {
    /// `Flow("10.0.0.1", "10.96.0.10", 80)`: a TCP SYN by default. For ICMP, `sport` is the
    /// echo identifier and `icmp_type` defaults to echo request.
    #[new]
    #[pyo3(signature = (src, dst, dport = 0, *, sport = 40000, proto = "tcp", tcp_flags = None, icmp_type = None,
        icmp_code = 0, ttl = 64, fragment_offset = 0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        src: &str,
        dst: &str,
        dport: u16,
        sport: u16,
        proto: &str,
        tcp_flags: Option<u8>,
        icmp_type: Option<u8>,
        icmp_code: u8,
        ttl: u8,
        fragment_offset: u16,
    ) -> PyResult<PyFlow> {
        let s = parse_addr("src", src)?;
        let d = parse_addr("dst", dst)?;
        let p = parse_proto(proto, s.is_ipv6())?;
        let mut f = guard(|| CoreFlow::new(s, d, p, sport, dport).py())?;
        if let Some(flags) = tcp_flags {
            f.tcp_flags = flags;
        }
        if let Some(t) = icmp_type {
            f.icmp_type = t;
        }
        f.icmp_code = icmp_code;
        f.ttl = ttl;
        f.fragment_offset = fragment_offset;
        Ok(PyFlow { inner: f })
    }

    /// The flow key of a `Packet`.
    #[staticmethod]
    fn from_packet(packet: PyRef<'_, PyPacket>) -> PyFlow {
        PyFlow { inner: CoreFlow::from_packet(packet.core()) }
    }

    #[getter]
    fn src(&self) -> String {
        self.inner.src.to_string()
    }
    #[getter]
    fn dst(&self) -> String {
        self.inner.dst.to_string()
    }
    #[getter]
    fn sport(&self) -> u16 {
        self.inner.sport
    }
    #[getter]
    fn dport(&self) -> u16 {
        self.inner.dport
    }
    #[getter]
    fn proto(&self) -> String {
        proto_name(self.inner.proto)
    }
    #[getter]
    fn protocol(&self) -> u8 {
        self.inner.proto
    }
    #[getter]
    fn tcp_flags(&self) -> u8 {
        self.inner.tcp_flags
    }
    #[getter]
    fn icmp_type(&self) -> u8 {
        self.inner.icmp_type
    }
    #[getter]
    fn icmp_code(&self) -> u8 {
        self.inner.icmp_code
    }
    #[getter]
    fn icmp_id(&self) -> u16 {
        self.inner.icmp_id
    }
    #[getter]
    fn ttl(&self) -> u8 {
        self.inner.ttl
    }
    /// For an ICMP error: the tuple `(proto, src, dst, sport, dport)` of the packet it quotes,
    /// as conntrack reads it (after NAT in a result's `flow`); None otherwise, or when conntrack
    /// cannot read the quote (the error is then INVALID).
    #[getter]
    fn quoted<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        self.inner.quote.map(|q| tuple_py(py, &q.tuple)).transpose()
    }
    #[getter]
    fn family(&self) -> u8 {
        if self.inner.src.is_ipv6() {
            6
        } else {
            4
        }
    }

    fn __repr__(&self) -> String {
        format!("Flow({})", self.inner)
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<PyFlow>().is_ok_and(|o| o.get().inner == self.inner)
    }

    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.inner.hash(&mut h);
        h.finish()
    }
}

/// One rule (or policy, or note) visited during an evaluation.
#[pyclass(frozen, module = "kubenat._core", name = "TraceStep")]
pub struct PyTraceStep {
    inner: CoreStep,
}

#[pymethods]
impl PyTraceStep {
    /// `PREROUTING`, `INPUT`, `FORWARD`, `OUTPUT` or `POSTROUTING`.
    #[getter]
    fn hook(&self) -> &'static str {
        self.inner.hook.chain()
    }
    /// `raw`, `mangle`, `nat`, `filter` or `security`.
    #[getter]
    fn table(&self) -> &'static str {
        table_name(self.inner.table)
    }
    /// Chain of the rule ("" for a note).
    #[getter]
    fn chain(&self) -> &str {
        &self.inner.chain
    }
    /// 1-based rule number; 0 for a policy or note.
    #[getter]
    fn rule(&self) -> usize {
        self.inner.rule
    }
    /// Line in the dump (0 when unknown).
    #[getter]
    fn line(&self) -> usize {
        self.inner.line
    }
    /// The rule text.
    #[getter]
    fn text(&self) -> &str {
        &self.inner.text
    }
    /// Whether the rule matched.
    #[getter]
    fn matched(&self) -> bool {
        self.inner.matched
    }
    /// What happened.
    #[getter]
    fn action(&self) -> &str {
        &self.inner.action
    }
    /// Nesting depth (0 in the built-in chain).
    #[getter]
    fn depth(&self) -> usize {
        self.inner.depth
    }
    /// `"rule"`, `"policy"` or `"note"`.
    #[getter]
    fn kind(&self) -> &'static str {
        if self.inner.chain.is_empty() {
            "note"
        } else if self.inner.rule == 0 {
            "policy"
        } else {
            "rule"
        }
    }

    fn __repr__(&self) -> String {
        let s = &self.inner;
        format!(
            "TraceStep({} {}:{}:{} matched={} action={:?})",
            s.hook.chain(),
            table_name(s.table),
            s.chain,
            s.rule,
            if s.matched { "True" } else { "False" },
            s.action
        )
    }

    fn __str__(&self) -> String {
        self.inner.to_string()
    }
}

/// A tracked connection: original and reply tuples (`(proto, src, dst, sport, dport)`, the
/// order `conntrack -L` prints).
#[pyclass(frozen, module = "kubenat._core", name = "Connection")]
pub struct PyConnection {
    inner: CtEntry,
}

#[pymethods]
impl PyConnection {
    #[getter]
    fn original<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        tuple_py(py, &self.inner.original)
    }
    #[getter]
    fn reply<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        tuple_py(py, &self.inner.reply)
    }
    /// Connection mark.
    #[getter]
    fn mark(&self) -> u32 {
        self.inner.mark
    }
    /// Status flags set: `SEEN_REPLY`, `ASSURED`, `CONFIRMED`, `SRC_NAT`, `DST_NAT`.
    #[getter]
    fn status(&self) -> Vec<&'static str> {
        let s = self.inner.status;
        [
            (status::SEEN_REPLY, "SEEN_REPLY"),
            (status::ASSURED, "ASSURED"),
            (status::CONFIRMED, "CONFIRMED"),
            (status::SRC_NAT, "SRC_NAT"),
            (status::DST_NAT, "DST_NAT"),
        ]
        .into_iter()
        .filter(|(b, _)| s & b != 0)
        .map(|(_, n)| n)
        .collect()
    }

    fn __repr__(&self) -> String {
        format!("Connection(original={}, reply={})", self.inner.original, self.inner.reply)
    }
}

/// What netfilter did with one packet.
#[pyclass(frozen, module = "kubenat._core", name = "Result")]
pub struct PyResult_ {
    inner: Arc<EvalResult>,
    packet: Option<Py<PyPacket>>,
}

fn mark_hex(m: u32) -> String {
    format!("0x{m:x}")
}

#[pymethods]
impl PyResult_ {
    /// `ACCEPT`, `DROP` or `REJECT`.
    #[getter]
    fn verdict(&self) -> &'static str {
        self.inner.verdict.name()
    }
    /// For REJECT: the `--reject-with` kind (`icmp-port-unreachable`, `tcp-reset`, ...); else None.
    #[getter]
    fn reject_with(&self) -> Option<&'static str> {
        self.inner.verdict.reject_with()
    }
    /// The packet after NAT (None when evaluated from a Flow, or when not accepted).
    #[getter]
    fn packet(&self, py: Python<'_>) -> Option<Py<PyPacket>> {
        self.packet.as_ref().map(|p| p.clone_ref(py))
    }
    /// The flow key after NAT.
    #[getter]
    fn flow(&self) -> PyFlow {
        PyFlow { inner: self.inner.flow.clone() }
    }
    /// The flow key as it came in.
    #[getter]
    fn original(&self) -> PyFlow {
        PyFlow { inner: self.inner.original.clone() }
    }
    #[getter]
    fn src(&self) -> String {
        self.inner.flow.src.to_string()
    }
    #[getter]
    fn sport(&self) -> u16 {
        self.inner.flow.sport
    }
    #[getter]
    fn dst(&self) -> String {
        self.inner.flow.dst.to_string()
    }
    #[getter]
    fn dport(&self) -> u16 {
        self.inner.flow.dport
    }
    /// NAT targets applied, e.g. `["DNAT", "MASQUERADE"]`.
    #[getter]
    fn nat(&self) -> Vec<&'static str> {
        self.inner.nat.iter().map(|k| k.name()).collect()
    }
    /// `ip:port` the destination was translated to, or None.
    #[getter]
    fn dnat(&self) -> Option<String> {
        self.inner.dnat_text()
    }
    /// `ip:port` the source was translated to, or None.
    #[getter]
    fn snat(&self) -> Option<String> {
        self.inner.snat_text()
    }
    #[getter]
    fn masquerade(&self) -> bool {
        self.inner.masquerade
    }
    /// Whether the kernel picks the translated port at random (`--random`, `--random-fully`);
    /// the reported port is then not a prediction.
    #[getter]
    fn random_port(&self) -> bool {
        self.inner.random_port
    }
    /// Translated fields the kernel chooses itself for this new connection (at random or by a
    /// hash): field (`src`, `dst`, `sport`, `dport`, `icmp_id`) → inclusive (low, high) span.
    /// The reported value of such a field is one of the span, not a prediction.
    #[getter]
    fn chosen<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        chosen_dict(py, &self.inner.chosen)
    }
    /// The packet mark at the end.
    #[getter]
    fn mark(&self) -> u32 {
        self.inner.mark
    }
    /// `NEW`, `ESTABLISHED`, `INVALID` or `UNTRACKED`.
    #[getter]
    fn ct_state(&self) -> &'static str {
        self.inner.ct_state
    }
    /// The connection after this packet, when tracked.
    #[getter]
    fn conntrack(&self) -> Option<PyConnection> {
        self.inner.conntrack.clone().map(|inner| PyConnection { inner })
    }
    #[getter]
    fn in_interface(&self) -> Option<String> {
        self.inner.in_interface.clone()
    }
    #[getter]
    fn out_interface(&self) -> Option<String> {
        self.inner.out_interface.clone()
    }
    #[getter]
    fn local_delivery(&self) -> bool {
        self.inner.local_delivery
    }
    #[getter]
    fn locally_generated(&self) -> bool {
        self.inner.locally_generated
    }
    /// The bridge port it arrived on (`in_interface` is then the bridge), if any.
    #[getter]
    fn physdev_in(&self) -> Option<String> {
        self.inner.physdev_in.clone()
    }
    /// The bridge port it left by when bridged rather than routed, if any.
    #[getter]
    fn physdev_out(&self) -> Option<String> {
        self.inner.physdev_out.clone()
    }
    /// Every rule visited, in order.
    #[getter]
    fn trace(&self) -> Vec<PyTraceStep> {
        self.inner.trace.iter().map(|s| PyTraceStep { inner: s.clone() }).collect()
    }

    /// A JSON-ready dict (the `kubenat trace --json` outcome form, without probability).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        let r = &self.inner;
        d.set_item("verdict", r.verdict.name())?;
        d.set_item("dnat", r.dnat_text())?;
        d.set_item("snat", r.snat_text())?;
        d.set_item("masquerade", r.masquerade)?;
        d.set_item("random_port", r.random_port)?;
        d.set_item("chosen", chosen_dict(py, &r.chosen)?)?;
        d.set_item("mark", mark_hex(r.mark))?;
        d.set_item("nat", r.nat.iter().map(|k| k.name()).collect::<Vec<_>>())?;
        d.set_item("ct_state", r.ct_state)?;
        d.set_item("in_interface", r.in_interface.clone())?;
        d.set_item("out_interface", r.out_interface.clone())?;
        d.set_item("local_delivery", r.local_delivery)?;
        let steps = r
            .trace
            .iter()
            .map(|s| {
                let e = PyDict::new(py);
                e.set_item("hook", s.hook.chain())?;
                e.set_item("table", table_name(s.table))?;
                e.set_item("chain", &s.chain)?;
                e.set_item("rule", s.rule)?;
                e.set_item("line", s.line)?;
                e.set_item("text", &s.text)?;
                e.set_item("matched", s.matched)?;
                e.set_item("action", &s.action)?;
                e.set_item("depth", s.depth)?;
                Ok(e)
            })
            .collect::<PyResult<Vec<_>>>()?;
        d.set_item("trace", steps)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        let r = &self.inner;
        let mut parts = vec![r.verdict.name().to_string(), r.flow.to_string()];
        if let Some(d) = r.dnat_text() {
            parts.push(format!("dnat={d}"));
        }
        if let Some(s) = r.snat_text() {
            parts.push(format!("snat={s}"));
        }
        if r.masquerade {
            parts.push("masquerade".into());
        }
        if r.mark != 0 {
            parts.push(format!("mark={}", mark_hex(r.mark)));
        }
        if let Some(o) = &r.out_interface {
            parts.push(format!("out={o}"));
        }
        if r.local_delivery {
            parts.push("local".into());
        }
        format!("Result({})", parts.join(" "))
    }
}

/// One possible result with its exact probability.
#[pyclass(frozen, module = "kubenat._core", name = "Outcome")]
pub struct PyOutcome {
    probability: Probability,
    result: Py<PyResult_>,
}

#[pymethods]
impl PyOutcome {
    /// The probability as a float.
    #[getter]
    fn probability(&self) -> f64 {
        self.probability.to_f64()
    }
    /// The exact probability as a `fractions.Fraction` (a power-of-two denominator).
    #[getter]
    fn exact<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let int = py.import("builtins")?.getattr("int")?;
        let num = int.call_method1("from_bytes", (PyBytes::new(py, &self.probability.numerator_be_bytes()), "big"))?;
        let den = 2u32.into_pyobject(py)?.into_any().pow(self.probability.exponent(), py.None())?;
        py.import("fractions")?.getattr("Fraction")?.call1((num, den))
    }
    #[getter]
    fn result(&self, py: Python<'_>) -> Py<PyResult_> {
        self.result.clone_ref(py)
    }

    fn __repr__(&self) -> String {
        format!("Outcome({:.6}, {})", self.probability.to_f64(), self.result.get().__repr__())
    }
}

/// A node: its ruleset, addresses, interfaces and routes, plus conntrack and `recent` state.
#[pyclass(frozen, module = "kubenat._core", name = "Netfilter")]
pub struct PyNetfilter {
    inner: Mutex<CoreNetfilter>,
}

impl PyNetfilter {
    fn with<T>(&self, f: impl FnOnce(&mut CoreNetfilter) -> Result<T, Error>) -> PyResult<T> {
        let mut g = self.inner.lock().map_err(|_| Error::eval("the Netfilter's state was poisoned by a panic")).py()?;
        f(&mut g).py()
    }
}

enum Input {
    Packet(IpPacket),
    Flow(CoreFlow),
}

fn input(obj: &Bound<'_, PyAny>) -> PyResult<Input> {
    if let Ok(p) = obj.cast::<PyPacket>() {
        return Ok(Input::Packet(p.get().core().clone()));
    }
    if let Ok(f) = obj.cast::<PyFlow>() {
        return Ok(Input::Flow(f.get().inner.clone()));
    }
    Err(Error::invalid("packet", format!("expected a kubenat.Packet or kubenat.Flow, got {}", obj.get_type().name()?)))
        .py()
}

fn wrap(py: Python<'_>, result: EvalResult, packet: Option<IpPacket>) -> PyResult<PyResult_> {
    let packet = match packet {
        Some(p) => Some(Py::new(py, PyPacket::from_core(p))?),
        None => None,
    };
    Ok(PyResult_ { inner: Arc::new(result), packet })
}

/// The core ruleset of a `kubenat.Ruleset`, or of iptables-save text (parsed here).
fn core_ruleset(obj: &Bound<'_, PyAny>) -> PyResult<Arc<ast::Ruleset>> {
    if let Ok(r) = obj.cast::<crate::ruleset::Ruleset>() {
        return Ok(Arc::clone(&r.get().inner));
    }
    if let Ok(text) = obj.extract::<String>() {
        return Ok(Arc::new(kubenat_core::iptables::parse(&text).py()?));
    }
    Err(Error::invalid(
        "ruleset",
        format!("expected a kubenat.Ruleset or iptables-save text, got {}", obj.get_type().name()?),
    ))
    .py()
}

#[pymethods]
impl PyNetfilter {
    /// `Netfilter(ruleset, local_addresses=[...], interfaces={"eth0": ["10.0.0.1/24"]},
    /// routes=[("10.244.0.0/16", "flannel.1")], stateless=False)`.
    #[new]
    /// `bridges={"cni0": {"veth1": ["10.244.0.5"]}}`: bridge interface → port → hosts behind it.
    #[pyo3(signature = (ruleset, *, local_addresses = Vec::new(), interfaces = None, routes = Vec::new(), stateless = false,
        route_localnet = false, bridges = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        ruleset: &Bound<'_, PyAny>,
        local_addresses: Vec<String>,
        interfaces: Option<&Bound<'_, PyDict>>,
        routes: Vec<(String, String)>,
        stateless: bool,
        route_localnet: bool,
        bridges: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyNetfilter> {
        let rs = core_ruleset(ruleset)?;
        let local = local_addresses.iter().map(|a| parse_addr("local_addresses", a)).collect::<PyResult<Vec<_>>>()?;
        let mut ifaces = Vec::new();
        if let Some(d) = interfaces {
            for (k, v) in d.iter() {
                let name: String = k.extract()?;
                let addrs: Vec<String> = v.extract()?;
                let addrs = addrs.iter().map(|a| IfaceAddr::parse(a)).collect::<Result<Vec<_>, _>>().py()?;
                ifaces.push(Interface { name, addrs });
            }
        }
        let routes = routes
            .iter()
            .map(|(dest, iface)| {
                let dest: Cidr =
                    dest.parse().map_err(|_| Error::invalid("routes", format!("{dest:?} is not a prefix")))?;
                Ok(Route { dest, iface: iface.clone() })
            })
            .collect::<Result<Vec<_>, Error>>()
            .py()?;
        let mut bridge_list = Vec::new();
        if let Some(d) = bridges {
            for (k, v) in d.iter() {
                let name: String = k.extract()?;
                let mut ports = Vec::new();
                for (port, hosts) in v.cast::<PyDict>()?.iter() {
                    let hosts: Vec<String> = hosts.extract()?;
                    let hosts = hosts.iter().map(|h| parse_addr("bridges", h)).collect::<PyResult<Vec<_>>>()?;
                    ports.push(BridgePort { name: port.extract()?, hosts });
                }
                bridge_list.push(Bridge { name, ports });
            }
        }
        let node = Node::new(local, ifaces, routes)
            .py()?
            .with_route_localnet(route_localnet)
            .with_bridges(bridge_list)
            .py()?;
        let nf = guard(|| CoreNetfilter::new(rs, node, stateless).py())?;
        Ok(PyNetfilter { inner: Mutex::new(nf) })
    }

    /// Evaluates one packet (a `Packet` or a `Flow`), keeping conntrack/`recent` state (unless
    /// stateless). `from_`: `"auto"`, `"local"` or an interface name. `seed` makes statistic
    /// draws reproducible.
    /// `origin` is an alias of `from_`.
    #[pyo3(signature = (packet, *, from_ = "auto", seed = None, trace = true, origin = None))]
    fn evaluate(
        &self,
        py: Python<'_>,
        packet: &Bound<'_, PyAny>,
        from_: &str,
        seed: Option<u64>,
        trace: bool,
        origin: Option<&str>,
    ) -> PyResult<PyResult_> {
        let origin = parse_origin(origin.unwrap_or(from_));
        match input(packet)? {
            Input::Flow(f) => {
                let r = py.detach(|| guard(|| self.with(|nf| nf.evaluate(&f, &origin, seed, trace))))?;
                wrap(py, r, None)
            }
            Input::Packet(p) => {
                let (out, r) = py.detach(|| guard(|| self.with(|nf| nf.process(&p, &origin, seed, trace))))?;
                wrap(py, r, out)
            }
        }
    }

    /// Every possible result with its exact probability (both sides of every statistic draw);
    /// probabilities sum to 1. State is read, not changed.
    /// `origin` is an alias of `from_`.
    #[pyo3(signature = (packet, *, from_ = "auto", trace = true, origin = None))]
    fn outcomes(
        &self,
        py: Python<'_>,
        packet: &Bound<'_, PyAny>,
        from_: &str,
        trace: bool,
        origin: Option<&str>,
    ) -> PyResult<Vec<PyOutcome>> {
        let origin = parse_origin(origin.unwrap_or(from_));
        let (flow, pkt) = match input(packet)? {
            Input::Flow(f) => (f, None),
            Input::Packet(p) => (CoreFlow::from_packet(&p), Some(p)),
        };
        let outs = py.detach(|| guard(|| self.with(|nf| nf.outcomes(&flow, &origin, trace))))?;
        outs.into_iter()
            .map(|o| {
                let rewritten = match (&pkt, o.result.verdict) {
                    (Some(p), kubenat_core::iptables::result::Verdict::Accept) => {
                        Some(process::rewrite(p, &o.result).py()?)
                    }
                    _ => None,
                };
                let result = Py::new(py, wrap(py, o.result, rewritten)?)?;
                Ok(PyOutcome { probability: o.probability, result })
            })
            .collect()
    }

    /// Evaluates packet bytes (`link`: `"auto"`, `"ip"`, `"ethernet"`) and returns the bytes
    /// as they leave (NAT applied, checksums updated incrementally; TTL decremented when
    /// forwarded), or None when the packet is dropped or rejected.
    #[pyo3(signature = (data, *, link = "auto", from_ = "auto", seed = None))]
    fn process<'py>(
        &self,
        py: Python<'py>,
        data: &[u8],
        link: &str,
        from_: &str,
        seed: Option<u64>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let origin = parse_origin(from_);
        let bytes = data.to_vec();
        let link = match link {
            "auto" => None,
            "ip" => Some(Link::Ip),
            "ethernet" => Some(Link::Ethernet),
            other => {
                return Err(Error::invalid("link", format!("{other:?} is not one of 'auto', 'ip', 'ethernet'"))).py()
            }
        };
        let out = py.detach(|| {
            guard(|| {
                let p = match link {
                    None => IpPacket::parse_auto(bytes),
                    Some(l) => IpPacket::parse(bytes, l),
                }
                .py()?;
                self.with(|nf| nf.process(&p, &origin, seed, false))
            })
        })?;
        Ok(out.0.map(|p| PyBytes::new(py, p.bytes())))
    }

    /// Advances the node's clock (for `recent --seconds`).
    fn advance(&self, seconds: f64) -> PyResult<()> {
        if !seconds.is_finite() || seconds < 0.0 {
            return Err(Error::invalid("seconds", format!("{seconds} is not a non-negative number"))).py();
        }
        #[allow(clippy::cast_possible_truncation)]
        let ms = (seconds * 1000.0).round() as i64;
        self.with(|nf| {
            nf.advance_ms(ms);
            Ok(())
        })
    }

    /// Forgets connections, `recent` lists and `nth` counters.
    fn reset(&self) -> PyResult<()> {
        self.with(|nf| {
            nf.reset();
            Ok(())
        })
    }

    /// The tracked connections, oldest first.
    #[getter]
    fn connections(&self) -> PyResult<Vec<PyConnection>> {
        self.with(|nf| Ok(nf.state().conntrack.entries().iter().map(|e| PyConnection { inner: e.clone() }).collect()))
    }

    /// `recent` lists: name → addresses currently in the list.
    #[getter]
    fn recent(&self) -> PyResult<Vec<(String, Vec<String>)>> {
        self.with(|nf| {
            let mut v: Vec<(String, Vec<String>)> = nf
                .state()
                .recent
                .iter()
                .map(|(k, l)| {
                    let mut a: Vec<String> = l.entries.keys().map(ToString::to_string).collect();
                    a.sort();
                    (k.clone(), a)
                })
                .collect();
            v.sort();
            Ok(v)
        })
    }

    #[getter]
    fn stateless(&self) -> PyResult<bool> {
        self.with(|nf| Ok(nf.stateless()))
    }

    fn __repr__(&self) -> PyResult<String> {
        self.with(|nf| {
            let ifaces: Vec<String> = nf.node().interfaces().iter().map(|i| i.name.clone()).collect();
            Ok(format!(
                "Netfilter({} tables, interfaces=[{}], {} connections{})",
                nf.ruleset().tables.len(),
                ifaces.join(", "),
                nf.state().conntrack.len(),
                if nf.stateless() { ", stateless" } else { "" }
            ))
        })
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyFlow>()?;
    m.add_class::<PyTraceStep>()?;
    m.add_class::<PyConnection>()?;
    m.add_class::<PyResult_>()?;
    m.add_class::<PyOutcome>()?;
    m.add_class::<PyNetfilter>()?;
    Ok(())
}

/// `Result.chosen`: field → (low, high), ports as ints, addresses as strings.
fn chosen_dict<'py>(
    py: Python<'py>,
    chosen: &[(&'static str, kubenat_core::iptables::nat::Chosen)],
) -> PyResult<Bound<'py, PyDict>> {
    use kubenat_core::iptables::nat::Chosen;
    let d = PyDict::new(py);
    for (field, span) in chosen {
        match span {
            Chosen::Port(lo, hi) => d.set_item(*field, (*lo, *hi))?,
            Chosen::Addr(lo, hi) => d.set_item(*field, (lo.to_string(), hi.to_string()))?,
        }
    }
    Ok(d)
}
