//! The one error type of the core. Every variant carries where the problem is
//! (a line and column of a dump, a byte offset of a packet, a field of a frame),
//! because a user holding a 1.4M-line dump or a pcap needs to find it.

use std::fmt;

/// Result alias used across the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in kubenat-core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Packet bytes that cannot be read: a field of a layer at a byte offset.
    Packet {
        /// Protocol layer, e.g. `"ipv4"`.
        layer: &'static str,
        /// Field name within the layer, e.g. `"ihl"` or `"total_length"`.
        field: &'static str,
        /// Byte offset of the field from the start of the buffer handed in.
        offset: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// iptables-save text that cannot be read or that the kernel would refuse.
    Parse {
        /// 1-based line number in the input (0 when the problem is not tied to a line).
        line: usize,
        /// 1-based column of the offending token (0 when unknown).
        column: usize,
        /// The offending line, verbatim (empty when not tied to a line).
        text: String,
        /// What is wrong.
        message: String,
    },
    /// A frame that the flannel or kernel receive path would drop.
    Decap {
        /// Short machine-readable reason, e.g. `"vxlan_flags"`, `"vni"`, `"truncated"`.
        kind: &'static str,
        /// Byte offset of the offending field in the frame.
        offset: usize,
        /// Human explanation.
        message: String,
    },
    /// Evaluation could not proceed (e.g. a packet of the wrong family for the ruleset).
    Eval {
        /// Human explanation.
        message: String,
    },
    /// An input exceeded a resource bound checked before allocating.
    Limit {
        /// What was counted (e.g. `"line length"`).
        what: &'static str,
        /// The bound.
        limit: usize,
        /// The value seen.
        actual: usize,
    },
    /// An argument handed to an API is invalid (e.g. an unknown table name).
    Invalid {
        /// Which argument.
        what: String,
        /// What is wrong.
        message: String,
    },
}

impl Error {
    /// Shorthand for a [`Error::Packet`].
    pub fn packet(layer: &'static str, field: &'static str, offset: usize, reason: impl Into<String>) -> Self {
        Error::Packet { layer, field, offset, reason: reason.into() }
    }

    /// Shorthand for a [`Error::Parse`] tied to a line.
    pub fn parse(line: usize, column: usize, text: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Parse { line, column, text: text.into(), message: message.into() }
    }

    /// Shorthand for a [`Error::Decap`].
    pub fn decap(kind: &'static str, offset: usize, message: impl Into<String>) -> Self {
        Error::Decap { kind, offset, message: message.into() }
    }

    /// Shorthand for a [`Error::Eval`].
    pub fn eval(message: impl Into<String>) -> Self {
        Error::Eval { message: message.into() }
    }

    /// Shorthand for a [`Error::Invalid`].
    pub fn invalid(what: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid { what: what.into(), message: message.into() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Packet { layer, field, offset, reason } => {
                write!(f, "{layer}.{field} at byte {offset}: {reason}")
            }
            Error::Parse { line, column, text, message } => {
                if *line == 0 {
                    write!(f, "{message}")
                } else {
                    write!(f, "line {line}, column {column}: {message}\n    {text}")
                }
            }
            Error::Decap { kind, offset, message } => write!(f, "{kind} at byte {offset}: {message}"),
            Error::Eval { message } => write!(f, "{message}"),
            Error::Limit { what, limit, actual } => write!(f, "{what} {actual} exceeds the limit of {limit}"),
            Error::Invalid { what, message } => write!(f, "{what}: {message}"),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_error_quotes_the_line() {
        let e = Error::parse(3, 12, "-A KUBE-SERVICES -m bogus", "unknown match module \"bogus\"");
        let text = e.to_string();
        assert!(text.contains("line 3, column 12"));
        assert!(text.contains("-A KUBE-SERVICES -m bogus"));
    }

    #[test]
    fn packet_error_names_field_and_offset() {
        let e = Error::packet("ipv4", "ihl", 14, "header length 4 words is below the minimum of 5");
        assert_eq!(e.to_string(), "ipv4.ihl at byte 14: header length 4 words is below the minimum of 5");
    }
}
