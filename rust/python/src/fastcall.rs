//! `kubenat._core.LeanClassifier`: the compiled classifier behind the cheapest call Python can
//! make — six positional integers in (no address strings, no keywords, no optional arguments to
//! resolve), a tuple of integers out — for loops that classify one packet at a time.
//! It shares the compiled structures of the `Classifier` it is made from.

use std::cell::RefCell;
use std::sync::Arc;

use pyo3::prelude::*;

use crate::batch::{row, Classifier, Row};
use crate::errors::{guard, IntoPyResult};
use kubenat_core::iptables::compile::{Compiled, Packet4, Scratch};

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

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
            let pkt = Packet4::first(src, dst, proto, sport, dport, self.iface);
            let d = SCRATCH.with(|s| self.inner.classify(&pkt, seed, &mut s.borrow_mut())).py()?;
            Ok(row(&d))
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
