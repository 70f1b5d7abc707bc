//! `kubenat.Classifier`: the compiled classifier from Python — one packet per call, or whole
//! batches from numpy columns or a buffer of frames, with the GIL released and the batch spread
//! over threads. numpy is only imported when a batch call needs to allocate result arrays.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use pyo3::buffer::{Element, PyBuffer};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use kubenat_core::iptables::compile::{packet_seed, Compiled, Decision, Packet4, Scratch};
use kubenat_core::iptables::eval::Origin;
use kubenat_core::iptables::node::{IfaceAddr, Interface, Node, Route};
use kubenat_core::iptables::result::{NatKind, Verdict};
use kubenat_core::iptables::{self, chance::Rng};
use kubenat_core::net::Cidr;
use kubenat_core::packet::{IpPacket, Link};
use kubenat_core::{Error, Result as CoreResult};

use crate::errors::{guard, IntoPyResult};

/// Most packets one batch call accepts.
const MAX_BATCH: usize = 1 << 28;

/// The node description a classifier was built with (kept for pickling).
type NodeSpec = (Vec<String>, Vec<(String, Vec<String>)>, Vec<(String, String)>);

/// A ruleset compiled for a node.
#[pyclass(frozen, module = "kubenat._core", name = "Classifier")]
pub(crate) struct Classifier {
    inner: Arc<Compiled>,
    /// The dump text when built from text (a ruleset object is saved only when pickled).
    text: Option<String>,
    spec: NodeSpec,
    calls: AtomicU64,
    entropy: u64,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

fn node_from(spec: &NodeSpec) -> CoreResult<Node> {
    let (local, interfaces, routes) = spec;
    let local = local
        .iter()
        .map(|a| a.parse::<IpAddr>().map_err(|_| Error::invalid("local", format!("{a:?} is not an IP address"))))
        .collect::<CoreResult<Vec<_>>>()?;
    let interfaces = interfaces
        .iter()
        .map(|(name, addrs)| {
            Ok(Interface {
                name: name.clone(),
                addrs: addrs.iter().map(|a| IfaceAddr::parse(a)).collect::<CoreResult<_>>()?,
            })
        })
        .collect::<CoreResult<Vec<_>>>()?;
    let routes = routes
        .iter()
        .map(|(dest, iface)| {
            let dest: Cidr =
                dest.parse().map_err(|_| Error::invalid("routes", format!("{dest:?} is not an address prefix")))?;
            Ok(Route { dest, iface: iface.clone() })
        })
        .collect::<CoreResult<Vec<_>>>()?;
    Node::new(local, interfaces, routes)
}

fn interfaces_arg(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<(String, Vec<String>)>> {
    let Some(obj) = obj else { return Ok(Vec::new()) };
    let pairs = if let Ok(d) = obj.cast::<PyDict>() { d.items().into_any() } else { obj.clone() };
    pairs.try_iter()?.map(|p| p?.extract::<(String, Vec<String>)>()).collect()
}

fn address(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<u32> {
    if let Ok(v) = obj.extract::<u32>() {
        return Ok(v);
    }
    let s: String = obj.extract()?;
    s.parse::<Ipv4Addr>().map(u32::from).map_err(|_| Error::invalid(what, format!("{s:?} is not an IPv4 address"))).py()
}

fn verdict_code(v: Verdict) -> u8 {
    match v {
        Verdict::Accept => 0,
        Verdict::Drop => 1,
        Verdict::Reject(_) => 2,
    }
}

/// One classification as Python receives it: `(verdict, dst, dport, src, sport, mark, rule)`.
pub(crate) type Row = (u8, u32, u16, u32, u16, u32, i64);

#[inline]
pub(crate) fn row(d: &Decision) -> Row {
    (verdict_code(d.verdict), d.dst, d.dport, d.src, d.sport, d.mark, d.rule.map_or(-1, i64::from))
}

fn nat_bits(nat: &[Option<NatKind>; 2]) -> u8 {
    nat.iter().flatten().fold(0, |acc, k| {
        acc | match k {
            NatKind::Dnat => 1,
            NatKind::Snat => 2,
            NatKind::Masquerade => 4,
            NatKind::Redirect => 8,
        }
    })
}

/// Reads a column as a vector of `T`, converting through numpy when the buffer does not
/// already hold `T` contiguously.
fn column<T: Element + Copy + Default>(
    py: Python<'_>,
    obj: &Bound<'_, PyAny>,
    dtype: &str,
    what: &str,
) -> PyResult<Vec<T>> {
    if let Ok(buf) = PyBuffer::<T>::get(obj) {
        if buf.is_c_contiguous() {
            return buf.to_vec(py);
        }
    }
    let np = py
        .import("numpy")
        .map_err(|_| {
            Error::invalid(
                what,
                format!("not a contiguous {dtype} buffer (and numpy, which would convert it, is not installed)"),
            )
        })
        .py()?;
    let arr = np.call_method1("ascontiguousarray", (obj, dtype))?;
    PyBuffer::<T>::get(&arr)?.to_vec(py)
}

/// Result columns of a batch.
struct Columns {
    verdict: Vec<u8>,
    nat: Vec<u8>,
    dst: Vec<u32>,
    dport: Vec<u16>,
    src: Vec<u32>,
    sport: Vec<u16>,
    mark: Vec<u32>,
    rule: Vec<i32>,
}

impl Columns {
    fn new(n: usize) -> Columns {
        Columns {
            verdict: vec![0; n],
            nat: vec![0; n],
            dst: vec![0; n],
            dport: vec![0; n],
            src: vec![0; n],
            sport: vec![0; n],
            mark: vec![0; n],
            rule: vec![0; n],
        }
    }
}

/// Mutable views of one chunk of the result columns.
struct Chunk<'a> {
    verdict: &'a mut [u8],
    nat: &'a mut [u8],
    dst: &'a mut [u32],
    dport: &'a mut [u16],
    src: &'a mut [u32],
    sport: &'a mut [u16],
    mark: &'a mut [u32],
    rule: &'a mut [i32],
}

impl Chunk<'_> {
    fn put(&mut self, i: usize, d: &Decision) {
        self.verdict[i] = verdict_code(d.verdict);
        self.nat[i] = nat_bits(&d.nat);
        self.dst[i] = d.dst;
        self.dport[i] = d.dport;
        self.src[i] = d.src;
        self.sport[i] = d.sport;
        self.mark[i] = d.mark;
        self.rule[i] = d.rule.and_then(|r| i32::try_from(r).ok()).unwrap_or(-1);
    }
}

fn split(cols: &mut Columns, threads: usize) -> Vec<(usize, Chunk<'_>)> {
    let n = cols.verdict.len();
    let per = n.div_ceil(threads.max(1)).max(1);
    let mut out = Vec::new();
    let mut verdict = cols.verdict.chunks_mut(per);
    let mut nat = cols.nat.chunks_mut(per);
    let mut dst = cols.dst.chunks_mut(per);
    let mut dport = cols.dport.chunks_mut(per);
    let mut src = cols.src.chunks_mut(per);
    let mut sport = cols.sport.chunks_mut(per);
    let mut mark = cols.mark.chunks_mut(per);
    let mut rule = cols.rule.chunks_mut(per);
    let mut start = 0;
    while let (Some(v), Some(na), Some(d), Some(dp), Some(s), Some(sp), Some(m), Some(r)) =
        (verdict.next(), nat.next(), dst.next(), dport.next(), src.next(), sport.next(), mark.next(), rule.next())
    {
        let len = v.len();
        out.push((start, Chunk { verdict: v, nat: na, dst: d, dport: dp, src: s, sport: sp, mark: m, rule: r }));
        start += len;
    }
    out
}

/// Runs `decide(i, scratch)` for every packet, over `threads` threads.
fn run_batch<F>(n: usize, threads: usize, decide: F) -> CoreResult<Columns>
where
    F: Fn(usize, &mut Scratch) -> CoreResult<Decision> + Sync,
{
    let mut cols = Columns::new(n);
    let chunks = split(&mut cols, threads);
    let results: Vec<CoreResult<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|(start, mut chunk)| {
                let decide = &decide;
                s.spawn(move || {
                    let mut scratch = Scratch::default();
                    for i in 0..chunk.verdict.len() {
                        let d = decide(start + i, &mut scratch)?;
                        chunk.put(i, &d);
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(Error::eval("a batch worker panicked")))).collect()
    });
    results.into_iter().collect::<CoreResult<Vec<()>>>()?;
    Ok(cols)
}

/// Packets handed to the core batch call at a time (bounds the per-thread packet buffer).
const SUB_BATCH: usize = 4096;

/// Runs the compiled classifier's batch call over `threads` threads; `make(i)` builds packet `i`.
fn run_compiled<F>(inner: &Compiled, n: usize, threads: usize, seed: u64, make: F) -> CoreResult<Columns>
where
    F: Fn(usize) -> Packet4 + Sync,
{
    let mut cols = Columns::new(n);
    let chunks = split(&mut cols, threads);
    let results: Vec<CoreResult<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|(start, mut chunk)| {
                let make = &make;
                s.spawn(move || {
                    let mut scratch = Scratch::default();
                    let len = chunk.verdict.len();
                    let mut pkts = Vec::with_capacity(SUB_BATCH.min(len));
                    let mut out = vec![Decision::default(); SUB_BATCH.min(len)];
                    let mut at = 0;
                    while at < len {
                        let m = SUB_BATCH.min(len - at);
                        pkts.clear();
                        pkts.extend((start + at..start + at + m).map(make));
                        inner.classify_batch(&pkts, seed, (start + at) as u64, &mut scratch, &mut out[..m])?;
                        for (k, d) in out[..m].iter().enumerate() {
                            chunk.put(at + k, d);
                        }
                        at += m;
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(Error::eval("a batch worker panicked")))).collect()
    });
    results.into_iter().collect::<CoreResult<Vec<()>>>()?;
    Ok(cols)
}

fn write_column<'py, T: Element + Copy>(
    py: Python<'py>,
    out: Option<&Bound<'py, PyDict>>,
    result: &Bound<'py, PyDict>,
    name: &str,
    dtype: &str,
    data: &[T],
) -> PyResult<()> {
    let target = match out.map(|o| o.get_item(name)).transpose()?.flatten() {
        Some(arr) => arr,
        None => py.import("numpy")?.call_method1("empty", (data.len(), dtype))?,
    };
    let buf = PyBuffer::<T>::get(&target)?;
    if buf.item_count() != data.len() {
        return Err(Error::invalid(
            format!("out[{name:?}]"),
            format!("has {} items for {} packets", buf.item_count(), data.len()),
        ))
        .py();
    }
    buf.copy_from_slice(py, data)?;
    result.set_item(name, target)?;
    Ok(())
}

fn to_dict<'py>(py: Python<'py>, cols: &Columns, out: Option<&Bound<'py, PyDict>>) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    write_column(py, out, &d, "verdict", "uint8", &cols.verdict)?;
    write_column(py, out, &d, "nat", "uint8", &cols.nat)?;
    write_column(py, out, &d, "dst", "uint32", &cols.dst)?;
    write_column(py, out, &d, "dport", "uint16", &cols.dport)?;
    write_column(py, out, &d, "src", "uint32", &cols.src)?;
    write_column(py, out, &d, "sport", "uint16", &cols.sport)?;
    write_column(py, out, &d, "mark", "uint32", &cols.mark)?;
    write_column(py, out, &d, "rule", "int32", &cols.rule)?;
    Ok(d)
}

fn engine_arg(engine: &str) -> PyResult<bool> {
    match engine {
        "compiled" => Ok(true),
        "plain" => Ok(false),
        other => Err(Error::invalid("engine", format!("{other:?} is not \"compiled\" or \"plain\""))).py(),
    }
}

impl Classifier {
    fn build(
        text: Option<String>,
        spec: NodeSpec,
        ruleset: Option<Arc<iptables::ast::Ruleset>>,
    ) -> PyResult<Classifier> {
        let node = node_from(&spec).py()?;
        let ruleset = match (ruleset, &text) {
            (Some(r), _) => r,
            (None, Some(text)) => Arc::new(iptables::parse(text).py()?),
            (None, None) => return Err(Error::invalid("ruleset", "neither text nor a ruleset")).py(),
        };
        // No `with_source`: the classifier reports rule indexes and lines, never rule text.
        let inner = Compiled::new(ruleset, node).py()?;
        Ok(Classifier {
            inner: Arc::new(inner),
            text,
            spec,
            calls: AtomicU64::new(0),
            entropy: Rng::from_entropy().next_u64(),
        })
    }

    /// A connection's first packet from the arguments of `classify`/`outcomes`.
    fn first_packet(
        &self,
        src: &Bound<'_, PyAny>,
        dst: &Bound<'_, PyAny>,
        proto: u8,
        sport: u16,
        dport: u16,
        iface: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Packet4> {
        let (src, dst) = (address(src, "src")?, address(dst, "dst")?);
        Ok(Packet4::first(src, dst, proto, sport, dport, self.iface_arg(iface)?))
    }

    fn seed_or_entropy(&self, seed: Option<u64>) -> u64 {
        seed.unwrap_or_else(|| packet_seed(self.entropy, self.calls.fetch_add(1, Ordering::Relaxed)))
    }

    fn iface_arg(&self, iface: Option<&Bound<'_, PyAny>>) -> PyResult<u8> {
        match iface {
            None => Ok(self.inner.default_iface()),
            Some(obj) => {
                if let Ok(i) = obj.extract::<u8>() {
                    if usize::from(i) < self.inner.interfaces().len() {
                        return Ok(i);
                    }
                }
                let name: String = obj.extract()?;
                self.inner
                    .iface_index(&name)
                    .ok_or_else(|| Error::invalid("iface", format!("the node has no interface {name:?}")))
                    .py()
            }
        }
    }

    /// Plain-evaluator decision without a trace (the linear-walk baseline; no deciding rule).
    fn plain(&self, pkt: &Packet4, seed: u64, scratch: &mut Scratch) -> CoreResult<Decision> {
        let origin = Origin::Interface(self.inner.interfaces()[usize::from(pkt.iface)].clone());
        let r = scratch.plain_netfilter(&self.inner).evaluate(&pkt.to_flow(), &origin, Some(seed), false)?;
        self.inner.decision_of(&r)
    }
}

#[pymethods]
impl Classifier {
    /// Compiles `ruleset` (a `Ruleset` or iptables-save text) for a node with these local
    /// addresses, interfaces (`{"eth0": ["192.168.0.2/24"], ...}`) and routes (`[(cidr, iface)]`).
    #[new]
    #[pyo3(signature = (ruleset, *, local = Vec::new(), interfaces = None, routes = Vec::new()))]
    fn new(
        ruleset: &Bound<'_, PyAny>,
        local: Vec<String>,
        interfaces: Option<&Bound<'_, PyAny>>,
        routes: Vec<(String, String)>,
    ) -> PyResult<Classifier> {
        guard(std::panic::AssertUnwindSafe(|| {
            let spec = (local, interfaces_arg(interfaces)?, routes);
            if let Ok(text) = ruleset.extract::<String>() {
                return Classifier::build(Some(text), spec, None);
            }
            let parsed = ruleset.cast::<crate::ruleset::Ruleset>().map_err(PyErr::from)?;
            Classifier::build(None, spec, Some(Arc::clone(&parsed.get().inner)))
        }))
    }

    /// Whether the ruleset compiled (else every packet goes to the plain evaluator).
    #[getter]
    fn compiled(&self) -> bool {
        self.inner.program().is_some()
    }

    /// Why the plain evaluator is used for every packet, if it is.
    #[getter]
    fn fallback_reason(&self) -> Option<String> {
        self.inner.fallback_reason().map(str::to_string)
    }

    /// Interface names by index (the `iface` column holds these indexes).
    #[getter]
    fn interfaces(&self) -> Vec<String> {
        self.inner.interfaces().to_vec()
    }

    /// Number of rules; the `rule` column indexes them in dump order.
    #[getter]
    fn rule_count(&self) -> usize {
        self.inner.rule_count()
    }

    /// `(table, chain, rule number, line)` of a rule index from the `rule` column.
    fn rule(&self, index: u32) -> PyResult<(&'static str, String, usize, usize)> {
        guard(std::panic::AssertUnwindSafe(|| {
            let (t, chain, n, line) = self
                .inner
                .rule_location(index)
                .ok_or_else(|| Error::invalid("index", format!("no rule {index}")))
                .py()?;
            Ok((iptables::result::table_name(t), chain, n, line))
        }))
    }

    /// Bytes of the compiled structures: `{"total": ..., "dispatch": ..., "fast": ...}` —
    /// `fast` is the fused kube-proxy path (hash slots, per-service records, cached
    /// outcomes): what a first packet to a service touches.
    fn memory(&self) -> std::collections::HashMap<&'static str, usize> {
        let p = self.inner.program();
        [
            ("total", p.map_or(0, |p| p.bytes())),
            ("dispatch", p.map_or(0, |p| p.dispatch_bytes())),
            ("fast", p.map_or(0, |p| p.fast_bytes())),
        ]
        .into_iter()
        .collect()
    }

    /// One packet: `(verdict, dst, dport, src, sport, mark, rule)` — verdict 0 ACCEPT, 1 DROP,
    /// 2 REJECT; addresses as integers; rule -1 when a policy decided.
    #[pyo3(signature = (src, dst, proto = 6, sport = 0, dport = 0, iface = None, seed = None))]
    #[allow(clippy::too_many_arguments)]
    fn classify(
        &self,
        src: &Bound<'_, PyAny>,
        dst: &Bound<'_, PyAny>,
        proto: u8,
        sport: u16,
        dport: u16,
        iface: Option<&Bound<'_, PyAny>>,
        seed: Option<u64>,
    ) -> PyResult<Row> {
        guard(std::panic::AssertUnwindSafe(|| {
            let pkt = self.first_packet(src, dst, proto, sport, dport, iface)?;
            let seed = self.seed_or_entropy(seed);
            let d = SCRATCH.with(|s| self.inner.classify(&pkt, seed, &mut s.borrow_mut())).py()?;
            Ok(row(&d))
        }))
    }

    /// Every possible result of one packet with its probability: `[(p, (verdict, dst, dport,
    /// src, sport, mark, rule)), ...]`.
    #[pyo3(signature = (src, dst, proto = 6, sport = 0, dport = 0, iface = None))]
    #[allow(clippy::type_complexity)]
    fn outcomes(
        &self,
        src: &Bound<'_, PyAny>,
        dst: &Bound<'_, PyAny>,
        proto: u8,
        sport: u16,
        dport: u16,
        iface: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<(f64, Row)>> {
        guard(std::panic::AssertUnwindSafe(|| {
            let pkt = self.first_packet(src, dst, proto, sport, dport, iface)?;
            let list = self.inner.outcomes(&pkt).py()?;
            Ok(list.into_iter().map(|(p, d)| (p.to_f64(), row(&d))).collect())
        }))
    }

    /// A batch from columns (numpy arrays or any buffer; converted through numpy when the
    /// dtype differs): `src`, `dst` (uint32), `proto` (uint8), `sport`, `dport` (uint16),
    /// `iface` (uint8 interface indexes; default: the first non-loopback interface). Returns
    /// `{"verdict", "nat", "dst", "dport", "src", "sport", "mark", "rule"}` numpy arrays, written
    /// into the arrays of `out` when given. `engine="plain"` runs the plain evaluator per packet
    /// (the linear-walk baseline; its `rule` column is -1).
    #[pyo3(signature = (src, dst, proto, sport, dport, iface = None, *, seed = None, threads = 1, engine = "compiled", out = None))]
    #[allow(clippy::too_many_arguments)]
    fn classify_batch<'py>(
        &self,
        py: Python<'py>,
        src: &Bound<'py, PyAny>,
        dst: &Bound<'py, PyAny>,
        proto: &Bound<'py, PyAny>,
        sport: &Bound<'py, PyAny>,
        dport: &Bound<'py, PyAny>,
        iface: Option<&Bound<'py, PyAny>>,
        seed: Option<u64>,
        threads: usize,
        engine: &str,
        out: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        guard(std::panic::AssertUnwindSafe(|| {
            let compiled = engine_arg(engine)?;
            let src: Vec<u32> = column(py, src, "uint32", "src")?;
            let n = src.len();
            if n > MAX_BATCH {
                return Err(Error::Limit { what: "packets in one batch", limit: MAX_BATCH, actual: n }).py();
            }
            let dst: Vec<u32> = column(py, dst, "uint32", "dst")?;
            let proto: Vec<u8> = column(py, proto, "uint8", "proto")?;
            let sport: Vec<u16> = column(py, sport, "uint16", "sport")?;
            let dport: Vec<u16> = column(py, dport, "uint16", "dport")?;
            let iface: Vec<u8> = match iface {
                Some(col) => column(py, col, "uint8", "iface")?,
                None => vec![self.inner.default_iface(); n],
            };
            for (name, len) in [
                ("dst", dst.len()),
                ("proto", proto.len()),
                ("sport", sport.len()),
                ("dport", dport.len()),
                ("iface", iface.len()),
            ] {
                if len != n {
                    return Err(Error::invalid(name, format!("has {len} items, src has {n}"))).py();
                }
            }
            let seed = self.seed_or_entropy(seed);
            let threads = threads.clamp(1, 256).min(n.max(1));
            let make = |i: usize| Packet4::first(src[i], dst[i], proto[i], sport[i], dport[i], iface[i]);
            let cols = py
                .detach(|| {
                    guard_core(|| {
                        if compiled {
                            return run_compiled(&self.inner, n, threads, seed, make);
                        }
                        run_batch(n, threads, |i, scratch| {
                            let pkt = make(i);
                            let s = packet_seed(seed, i as u64);
                            {
                                if usize::from(pkt.iface) >= self.inner.interfaces().len() {
                                    return Err(Error::invalid(
                                        "iface",
                                        format!("interface index {} is out of range", pkt.iface),
                                    ));
                                }
                                self.plain(&pkt, s, scratch)
                            }
                        })
                    })
                })
                .py()?;
            to_dict(py, &cols, out)
        }))
    }

    /// A batch of frames: `data` holds the frames back to back, `lengths` (uint32) their sizes;
    /// `link` is `"ip"` or `"ethernet"`. Results as for `classify_batch`.
    #[pyo3(signature = (data, lengths, *, link = "ip", iface = None, seed = None, threads = 1, out = None))]
    #[allow(clippy::too_many_arguments)]
    fn classify_frames<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
        lengths: &Bound<'py, PyAny>,
        link: &str,
        iface: Option<&Bound<'py, PyAny>>,
        seed: Option<u64>,
        threads: usize,
        out: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        guard(std::panic::AssertUnwindSafe(|| {
            let link = match link {
                "ip" => Link::Ip,
                "ethernet" => Link::Ethernet,
                other => return Err(Error::invalid("link", format!("{other:?} is not \"ip\" or \"ethernet\""))).py(),
            };
            let bytes: Vec<u8> = column(py, data, "uint8", "data")?;
            let lengths: Vec<u32> = column(py, lengths, "uint32", "lengths")?;
            let n = lengths.len();
            if n > MAX_BATCH {
                return Err(Error::Limit { what: "frames in one batch", limit: MAX_BATCH, actual: n }).py();
            }
            let mut offsets = Vec::with_capacity(n + 1);
            let mut at = 0usize;
            offsets.push(0);
            for &l in &lengths {
                at += l as usize;
                offsets.push(at);
            }
            if at != bytes.len() {
                return Err(Error::invalid("lengths", format!("add up to {at} bytes, data has {}", bytes.len()))).py();
            }
            let iface = self.iface_arg(iface)?;
            let seed = self.seed_or_entropy(seed);
            let threads = threads.clamp(1, 256).min(n.max(1));
            let inner = &self.inner;
            let cols = py
                .detach(|| {
                    guard_core(|| {
                        run_batch(n, threads, |i, scratch| {
                            let frame = bytes[offsets[i]..offsets[i + 1]].to_vec();
                            let parsed = IpPacket::parse(frame, link).map_err(|e| match e {
                                Error::Packet { layer, field, offset, reason } => Error::Packet {
                                    layer,
                                    field,
                                    offset: offsets[i] + offset,
                                    reason: format!("frame {i}: {reason}"),
                                },
                                other => other,
                            })?;
                            let flow = iptables::flow::Flow::from_packet(&parsed);
                            let origin = Origin::Interface(inner.interfaces()[usize::from(iface)].clone());
                            inner.classify_flow(&flow, &origin, packet_seed(seed, i as u64), scratch)
                        })
                    })
                })
                .py()?;
            to_dict(py, &cols, out)
        }))
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let f = py.import("kubenat._core")?.getattr("_classifier_from_state")?;
        let (local, interfaces, routes) = self.spec.clone();
        let args = PyTuple::new(
            py,
            [
                self.text
                    .clone()
                    .unwrap_or_else(|| self.inner.netfilter().ruleset().save(false))
                    .into_pyobject(py)?
                    .into_any(),
                local.into_pyobject(py)?,
                interfaces.into_pyobject(py)?,
                routes.into_pyobject(py)?,
            ],
        )?;
        Ok((f, args))
    }

    fn __repr__(&self) -> String {
        let mode = match self.inner.fallback_reason() {
            None => "compiled".to_string(),
            Some(why) => format!("plain evaluator: {why}"),
        };
        format!("<Classifier {} rules, {} interfaces, {mode}>", self.inner.rule_count(), self.inner.interfaces().len())
    }
}

/// Turns a panic inside batch work into an error instead of unwinding into Python.
fn guard_core<T>(f: impl FnOnce() -> CoreResult<T>) -> CoreResult<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(Error::eval("internal error during batch classification")))
}

#[pyfunction]
fn _classifier_from_state(
    text: String,
    local: Vec<String>,
    interfaces: Vec<(String, Vec<String>)>,
    routes: Vec<(String, String)>,
) -> PyResult<Classifier> {
    guard(|| Classifier::build(Some(text), (local, interfaces, routes), None))
}

/// The synthetic kube-proxy ruleset of the benchmarks: `services` ClusterIP services with
/// `endpoints` endpoints each, as iptables-save text.
#[pyfunction]
#[pyo3(signature = (services, endpoints = 4))]
fn _synthetic_kube_proxy(services: u32, endpoints: u32) -> PyResult<String> {
    guard(std::panic::AssertUnwindSafe(|| {
        if services > 1_000_000 || endpoints == 0 || endpoints > 64 {
            return Err(Error::invalid("services", "1..1,000,000 services with 1..64 endpoints")).py();
        }
        Ok(iptables::compiled::synth::kube_proxy_text(services, endpoints))
    }))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Classifier>()?;
    m.add_function(wrap_pyfunction!(_classifier_from_state, m)?)?;
    m.add_function(wrap_pyfunction!(_synthetic_kube_proxy, m)?)?;
    Ok(())
}

// --- bench: read access for the lean entry point (fastcall.rs) ---
impl Classifier {
    /// The compiled classifier, shared.
    pub(crate) fn compiled_arc(&self) -> &Arc<Compiled> {
        &self.inner
    }
}
