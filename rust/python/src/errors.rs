//! The one conversion from core errors to Python exceptions.
//!
//! The exception classes live in Python (`kubenat/errors.py`) so that the hierarchy is plain
//! Python; every structured field of the core error becomes an attribute of the exception.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use kubenat_core::Error;

pyo3::import_exception!(kubenat.errors, KubenatError);
pyo3::import_exception!(kubenat.errors, PacketError);
pyo3::import_exception!(kubenat.errors, ParseError);
pyo3::import_exception!(kubenat.errors, DecapError);
pyo3::import_exception!(kubenat.errors, EvalError);
pyo3::import_exception!(kubenat.errors, LimitError);
pyo3::import_exception!(kubenat.errors, InvalidArgument);
pyo3::import_exception!(kubenat.errors, InternalError);

/// A core error on its way to Python (a newtype because both `Error` and `PyErr` are foreign here).
pub struct CoreError(pub Error);

impl From<Error> for CoreError {
    fn from(e: Error) -> Self {
        CoreError(e)
    }
}

fn build(py: Python<'_>, e: &Error) -> PyResult<PyErr> {
    let fields = PyDict::new(py);
    let (class, message): (Bound<'_, PyAny>, String) = match e {
        Error::Packet { layer, field, offset, reason } => {
            fields.set_item("layer", layer)?;
            fields.set_item("field", field)?;
            fields.set_item("offset", offset)?;
            fields.set_item("reason", reason)?;
            (py.get_type::<PacketError>().into_any(), e.to_string())
        }
        Error::Parse { line, column, text, message } => {
            fields.set_item("line", line)?;
            fields.set_item("column", column)?;
            fields.set_item("text", text)?;
            fields.set_item("reason", message)?;
            (py.get_type::<ParseError>().into_any(), e.to_string())
        }
        Error::Decap { kind, offset, message } => {
            fields.set_item("kind", kind)?;
            fields.set_item("offset", offset)?;
            fields.set_item("reason", message)?;
            (py.get_type::<DecapError>().into_any(), e.to_string())
        }
        Error::Eval { message } => {
            fields.set_item("reason", message)?;
            (py.get_type::<EvalError>().into_any(), e.to_string())
        }
        Error::Limit { what, limit, actual } => {
            fields.set_item("what", what)?;
            fields.set_item("limit", limit)?;
            fields.set_item("actual", actual)?;
            (py.get_type::<LimitError>().into_any(), e.to_string())
        }
        Error::Invalid { what, message } => {
            fields.set_item("what", what)?;
            fields.set_item("reason", message)?;
            (py.get_type::<InvalidArgument>().into_any(), e.to_string())
        }
    };
    let instance = class.call((message,), Some(&fields))?;
    Ok(PyErr::from_value(instance))
}

impl From<CoreError> for PyErr {
    fn from(e: CoreError) -> PyErr {
        Python::attach(|py| match build(py, &e.0) {
            Ok(err) => err,
            // The exception classes failed to import: still say what went wrong.
            Err(import_failure) => PyRuntimeError::new_err(format!(
                "{} (and building the kubenat exception failed: {import_failure})",
                e.0
            )),
        })
    }
}

/// `Result<T, Error>` → `PyResult<T>` in one call at the boundary.
#[allow(dead_code)] // used by the area modules as they land
pub trait IntoPyResult<T> {
    /// Converts the core error, if any, to its Python exception.
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for Result<T, Error> {
    fn py(self) -> PyResult<T> {
        self.map_err(|e| PyErr::from(CoreError(e)))
    }
}

/// Runs `f`, turning a Rust panic into `kubenat.InternalError` instead of unwinding into Python.
pub fn guard<T>(f: impl FnOnce() -> PyResult<T> + std::panic::UnwindSafe) -> PyResult<T> {
    match std::panic::catch_unwind(f) {
        Ok(r) => r,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(InternalError::new_err(format!("internal error in kubenat's Rust core: {what}")))
        }
    }
}

/// Panics on purpose, inside [`guard`]: proves that a panic reaches Python as `InternalError`.
#[pyfunction]
fn _panic_for_tests() -> PyResult<()> {
    guard(|| panic!("deliberate panic for tests"))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_panic_for_tests, m)?)?;
    Ok(())
}
