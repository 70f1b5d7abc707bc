//! `kubenat._core.LeanClassifier`: the compiled classifier behind the cheapest call Python can
//! make — six positional integers in (no address strings, no keywords, no optional arguments to
//! resolve), a tuple of integers out — for loops that classify one packet at a time.
//! It shares the compiled structures of the `Classifier` it is made from.

use std::cell::RefCell;
use std::sync::Arc;

use pyo3::prelude::*;

use kubenat_core::iptables::compile::{Compiled, Packet4, Scratch};
use kubenat_core::iptables::result::Verdict;

use crate::batch::Classifier;
use crate::errors::{guard, IntoPyResult};

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// The result tuple of `Classifier.classify`.
type Row = (u8, u32, u16, u32, u16, u32, i64);

/// A `Classifier` reduced to one fast method.
#[pyclass(frozen, module = "kubenat._core", name = "LeanClassifier")]
pub struct LeanClassifier {
    inner: Arc<Compiled>,
    iface: u8,
}

#[pymethods]
impl LeanClassifier {
    /// Shares `classifier`'s compiled ruleset; packets arrive on its default interface.
    #[new]
    fn new(classifier: &Bound<'_, Classifier>) -> PyResult<LeanClassifier> {
        guard(std::panic::AssertUnwindSafe(|| {
            let inner = Arc::clone(classifier.get().compiled_arc());
            let iface = inner.default_iface();
            Ok(LeanClassifier { inner, iface })
        }))
    }

    /// `Classifier.classify(src, dst, proto, sport, dport, seed=seed)` with integer addresses:
    /// `(verdict, dst, dport, src, sport, mark, rule)`.
    #[pyo3(signature = (src, dst, proto, sport, dport, seed, /))]
    #[allow(clippy::too_many_arguments)]
    fn classify(&self, src: u32, dst: u32, proto: u8, sport: u16, dport: u16, seed: u64) -> PyResult<Row> {
        guard(std::panic::AssertUnwindSafe(|| {
            let pkt = Packet4 { src, dst, proto, sport, dport, tcp_flags: 0x02, ttl: 64, iface: self.iface };
            let d = SCRATCH.with(|s| self.inner.classify(&pkt, seed, &mut s.borrow_mut())).py()?;
            let verdict = match d.verdict {
                Verdict::Accept => 0,
                Verdict::Drop => 1,
                Verdict::Reject(_) => 2,
            };
            Ok((verdict, d.dst, d.dport, d.src, d.sport, d.mark, d.rule.map_or(-1, i64::from)))
        }))
    }

    fn __repr__(&self) -> String {
        format!(
            "LeanClassifier(rules={}, iface={:?})",
            self.inner.rule_count(),
            self.inner.interfaces()[usize::from(self.iface)]
        )
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<LeanClassifier>()
}
