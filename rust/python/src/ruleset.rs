//! `kubenat.Ruleset`: a parsed iptables-save dump, and `kubenat.Rule`, one of its rules.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyTuple;

use kubenat_core::iptables::ast::{Policy, TableName};
use kubenat_core::iptables::{self, ast};
use kubenat_core::net::Family;
use kubenat_core::Error;

use crate::errors::{guard, IntoPyResult};

/// A parsed iptables-save dump (immutable; share it freely between threads and evaluators).
#[pyclass(frozen, module = "kubenat._core", name = "Ruleset")]
pub(crate) struct Ruleset {
    /// The core ruleset; other glue modules (the evaluator) use it directly.
    pub(crate) inner: Arc<ast::Ruleset>,
}

/// One rule of a [`Ruleset`], with where it came from.
#[pyclass(frozen, module = "kubenat._core", name = "Rule")]
pub(crate) struct Rule {
    #[pyo3(get)]
    table: String,
    #[pyo3(get)]
    chain: String,
    #[pyo3(get)]
    index: usize,
    #[pyo3(get)]
    line: usize,
    #[pyo3(get)]
    text: String,
    #[pyo3(get)]
    counters: Option<(u64, u64)>,
}

pub(crate) fn family_name(f: Family) -> &'static str {
    match f {
        Family::V4 => "ipv4",
        Family::V6 => "ipv6",
    }
}

pub(crate) fn parse_family_arg(family: &str) -> Result<Family, Error> {
    match family {
        "ipv4" | "4" | "inet" => Ok(Family::V4),
        "ipv6" | "6" | "inet6" => Ok(Family::V6),
        other => Err(Error::invalid("family", format!("{other:?} is not \"ipv4\" or \"ipv6\""))),
    }
}

pub(crate) fn parse_table_arg(table: &str) -> Result<TableName, Error> {
    Ok(match table {
        "raw" => TableName::Raw,
        "mangle" => TableName::Mangle,
        "nat" => TableName::Nat,
        "filter" => TableName::Filter,
        "security" => TableName::Security,
        other => return Err(Error::invalid("table", format!("{other:?} is not an iptables table"))),
    })
}

impl Ruleset {
    fn table(&self, table: &str) -> Result<&ast::Table, Error> {
        let name = parse_table_arg(table)?;
        self.inner.table(name).ok_or_else(|| Error::invalid("table", format!("the ruleset has no {table} table")))
    }

    fn parse_text(py: Python<'_>, text: &str, family: Option<&str>) -> PyResult<Ruleset> {
        let family = family.map(parse_family_arg).transpose().py()?;
        let owned = text.to_owned();
        let parsed = py.detach(move || match family {
            Some(f) => iptables::parse_family(&owned, f),
            None => iptables::parse(&owned),
        });
        Ok(Ruleset { inner: Arc::new(parsed.py()?) })
    }
}

#[pymethods]
impl Ruleset {
    /// Parses iptables-save / ip6tables-save text (or kube-proxy's iptables-restore input).
    #[staticmethod]
    #[pyo3(signature = (text, family = None))]
    fn parse(py: Python<'_>, text: &str, family: Option<&str>) -> PyResult<Ruleset> {
        guard(std::panic::AssertUnwindSafe(|| Ruleset::parse_text(py, text, family)))
    }

    /// iptables-save text, as the kernel's `iptables-save` prints it (without its header comments).
    #[pyo3(signature = (counters = false))]
    fn save(&self, counters: bool) -> PyResult<String> {
        guard(|| Ok(self.inner.save(counters)))
    }

    /// What `iptables -t TABLE -L` prints (`-n` with `numeric`), without counters.
    #[pyo3(signature = (table = "nat", numeric = false))]
    fn listing(&self, table: &str, numeric: bool) -> PyResult<String> {
        let name = parse_table_arg(table).py()?;
        guard(|| Ok(self.inner.listing(name, numeric)))
    }

    /// `"ipv4"` or `"ipv6"`.
    #[getter]
    fn family(&self) -> &'static str {
        family_name(self.inner.family)
    }

    /// Table names in iptables-save order.
    #[getter]
    fn tables(&self) -> Vec<&'static str> {
        self.inner.tables.iter().map(|t| iptables::parse::table_name(t.name)).collect()
    }

    /// Chain names of a table in iptables-save order (built-in chains first).
    fn chains(&self, table: &str) -> PyResult<Vec<String>> {
        Ok(self.table(table).py()?.chains.iter().map(|c| c.name.clone()).collect())
    }

    /// The policy of a built-in chain (`"ACCEPT"`/`"DROP"`), `None` for a user chain.
    fn policy(&self, table: &str, chain: &str) -> PyResult<Option<&'static str>> {
        let t = self.table(table).py()?;
        let c = t.chain(chain).ok_or_else(|| Error::invalid("chain", format!("no chain {chain:?} in {table}"))).py()?;
        Ok(c.policy.map(|p| match p {
            Policy::Accept => "ACCEPT",
            Policy::Drop => "DROP",
        }))
    }

    /// The rules of a chain, in order.
    fn rules(&self, table: &str, chain: &str) -> PyResult<Vec<Rule>> {
        let t = self.table(table).py()?;
        let c = t.chain(chain).ok_or_else(|| Error::invalid("chain", format!("no chain {chain:?} in {table}"))).py()?;
        guard(std::panic::AssertUnwindSafe(|| {
            Ok(c.rules
                .iter()
                .enumerate()
                .map(|(i, r)| Rule {
                    table: table.to_string(),
                    chain: chain.to_string(),
                    index: i + 1,
                    line: r.line,
                    text: iptables::render::rule_text(c, r),
                    counters: r.counters.map(|k| (k.packets, k.bytes)),
                })
                .collect())
        }))
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        match other.cast::<Ruleset>() {
            Ok(o) => *self.inner == *o.get().inner,
            Err(_) => false,
        }
    }

    fn __str__(&self) -> String {
        self.inner.save(false)
    }

    /// Equal rulesets save to the same text, so the text's hash is consistent with `==`.
    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        family_name(self.inner.family).hash(&mut h);
        self.inner.save(false).hash(&mut h);
        h.finish()
    }

    fn __repr__(&self) -> String {
        let tables: Vec<String> = self
            .inner
            .tables
            .iter()
            .map(|t| {
                let rules: usize = t.chains.iter().map(|c| c.rules.len()).sum();
                format!("{}: {} chains, {} rules", iptables::parse::table_name(t.name), t.chains.len(), rules)
            })
            .collect();
        format!("<Ruleset {} {{{}}}>", family_name(self.inner.family), tables.join("; "))
    }

    /// Pickles as the saved text (with counters) and the family.
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let rebuild = py.import("kubenat._core")?.getattr("_ruleset_from_text")?;
        let args = PyTuple::new(py, [self.inner.save(true), family_name(self.inner.family).to_string()])?;
        Ok((rebuild, args))
    }
}

#[pymethods]
impl Rule {
    fn __repr__(&self) -> String {
        format!("<Rule {}/{}#{} line {}: {}>", self.table, self.chain, self.index, self.line, self.text)
    }

    fn __str__(&self) -> String {
        self.text.clone()
    }
}

/// Rebuilds a pickled [`Ruleset`].
#[pyfunction]
fn _ruleset_from_text(py: Python<'_>, text: &str, family: &str) -> PyResult<Ruleset> {
    guard(std::panic::AssertUnwindSafe(|| Ruleset::parse_text(py, text, Some(family))))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Ruleset>()?;
    m.add_class::<Rule>()?;
    m.add_function(wrap_pyfunction!(_ruleset_from_text, m)?)?;
    Ok(())
}
