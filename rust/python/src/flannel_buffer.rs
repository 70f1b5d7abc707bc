//! `Encapsulator.encap_buffer` / `decap_buffer`: many packets in one buffer, described by
//! offsets and lengths, encapsulated or decapsulated into one new buffer without the GIL
//! (`kubenat_core::flannel::fast`). The methods themselves are declared in `flannel.rs`.

use pyo3::buffer::{Element, PyBuffer};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyTuple};

use kubenat_core::flannel::fast::{Failures, FastPath};
use kubenat_core::Error;

use crate::errors::{CoreError, IntoPyResult};

/// Most packets one buffer call accepts.
const MAX_PACKETS: usize = 1 << 28;

/// The packet bytes: `bytes`/`bytearray` directly, any other buffer (memoryview, numpy uint8)
/// copied.
pub(crate) enum Data {
    Backed(PyBackedBytes),
    Copied(Vec<u8>),
}

impl Data {
    pub(crate) fn extract(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<Data> {
        if let Ok(b) = obj.extract::<PyBackedBytes>() {
            return Ok(Data::Backed(b));
        }
        match PyBuffer::<u8>::get(obj) {
            Ok(buf) => Ok(Data::Copied(buf.to_vec(py)?)),
            Err(_) => Err(Error::invalid("data", "expected bytes, bytearray or a buffer of uint8")).py(),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Data::Backed(b) => b,
            Data::Copied(v) => v,
        }
    }
}

/// An integer column: a buffer of the exact type, a buffer of signed 64-bit integers (numpy's
/// default), or any sequence of ints.
fn ints<T>(py: Python<'_>, obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<T>>
where
    T: Element + Copy + TryFrom<i64> + for<'a, 'py> FromPyObject<'a, 'py>,
{
    if let Ok(buf) = PyBuffer::<T>::get(obj) {
        return buf.to_vec(py);
    }
    if let Ok(buf) = PyBuffer::<i64>::get(obj) {
        return buf
            .to_vec(py)?
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                T::try_from(v).map_err(|_| Error::invalid(format!("{what}[{i}]"), format!("{v} is out of range")))
            })
            .collect::<Result<Vec<T>, Error>>()
            .py();
    }
    obj.extract::<Vec<T>>()
        .map_err(|_| Error::invalid(what, "expected a sequence or buffer of non-negative integers"))
        .py()
}

/// An `array.array` of `typecode` from the native-endian bytes of its items (no numpy
/// needed; numpy reads it as is).
fn array<'py>(py: Python<'py>, typecode: &str, raw: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    py.import("array")?.getattr("array")?.call1((typecode, PyBytes::new(py, raw)))
}

/// Which way a buffer call goes.
#[derive(Clone, Copy)]
pub(crate) enum Direction {
    Encap { ip_id: u16, mark: u32 },
    Decap,
}

/// Runs a buffer call: `(frames: bytearray, offsets: array('Q'), lengths: array('I'),
/// errors: {index: exception})`.
pub(crate) fn run<'py>(
    py: Python<'py>,
    fast: &FastPath,
    data: &Bound<'py, PyAny>,
    offsets: &Bound<'py, PyAny>,
    lengths: &Bound<'py, PyAny>,
    direction: Direction,
) -> PyResult<Bound<'py, PyTuple>> {
    let data = Data::extract(py, data)?;
    let offsets: Vec<u64> = ints(py, offsets, "offsets")?;
    let lengths: Vec<u32> = ints(py, lengths, "lengths")?;
    let n = offsets.len();
    if n > MAX_PACKETS {
        return Err(Error::Limit { what: "packets per buffer call", limit: MAX_PACKETS, actual: n }).py();
    }
    if lengths.len() != n {
        return Err(Error::invalid("lengths", format!("{} lengths for {n} offsets", lengths.len()))).py();
    }
    let sum: usize = lengths.iter().map(|&l| l as usize).sum();
    let capacity = match direction {
        Direction::Encap { .. } => FastPath::encap_capacity(n, sum),
        Direction::Decap => sum,
    };
    let mut out_offsets = vec![0u64; n];
    let mut out_lengths = vec![0u32; n];
    let mut failures: Failures = Vec::new();
    let bytes = data.bytes();
    // The bytearray is not visible to any other thread until it is returned, so writing it
    // without the GIL is safe.
    let frames = PyByteArray::new_with(py, capacity, |out| {
        let result = py.detach(|| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match direction {
                Direction::Encap { ip_id, mark } => {
                    fast.encap_buffer(bytes, &offsets, &lengths, ip_id, mark, out, &mut out_offsets, &mut out_lengths)
                }
                Direction::Decap => {
                    fast.decap_buffer(bytes, &offsets, &lengths, out, &mut out_offsets, &mut out_lengths)
                }
            }))
            .unwrap_or_else(|_| Err(Error::eval("internal error during a flannel buffer call")))
        });
        failures = result.py()?;
        Ok(())
    })?;
    let used: usize = out_lengths.iter().map(|&l| l as usize).sum();
    frames.resize(used)?;
    let errors = PyDict::new(py);
    for (i, e) in failures {
        errors.set_item(i, PyErr::from(CoreError(e)).into_value(py))?;
    }
    let offsets = array(py, "Q", &out_offsets.iter().flat_map(|v| v.to_ne_bytes()).collect::<Vec<u8>>())?;
    let lengths = array(py, "I", &out_lengths.iter().flat_map(|v| v.to_ne_bytes()).collect::<Vec<u8>>())?;
    PyTuple::new(py, [frames.into_any(), offsets, lengths, errors.into_any()])
}
