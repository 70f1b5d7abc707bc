//! `kubenat._core`: the thin binding layer over kubenat-core. Users import from `kubenat`.
//!
//! Each area registers its classes and functions from its own file, so that the pieces stay
//! small and independent.

use pyo3::prelude::*;

mod errors;
// --- speed ---
mod batch;
mod fastcall; // bench
mod flannel;
mod flannel_buffer; // bench
mod packet;
// --- parser ---
mod ruleset;
// --- evaluator ---
mod netfilter;

#[pymodule(gil_used = false)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    packet::register(m)?;
    flannel::register(m)?;
    ruleset::register(m)?; // parser
    netfilter::register(m)?; // evaluator
    batch::register(m)?; // speed
    fastcall::register(m)?; // bench
    Ok(())
}
