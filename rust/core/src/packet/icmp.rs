//! ICMP for IPv4 (RFC 792). The 8-byte header layout (type, code, checksum, 4 bytes of
//! "rest of header") is shared with ICMPv6, whose file reuses this view.

use super::checksum;
use super::{be16, be32, cut_short, put16, put32, Field};
use crate::error::Result;

mod field {
    use super::Field;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const REST: Field = 4..8;
    pub const IDENT: Field = 4..6;
    pub const SEQ: Field = 6..8;
}

/// Header length (type, code, checksum, rest of header).
pub const HEADER_LEN: usize = 8;
/// Offset of the checksum field (for in-place updates).
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;
/// Offset of the echo identifier (for in-place updates).
pub const IDENT_OFFSET: usize = field::IDENT.start;

const FIELDS: &[(&str, Field)] =
    &[("type", 0..1), ("code", 1..2), ("checksum", field::CHECKSUM), ("rest_of_header", field::REST)];

/// ICMPv4 message types kubenat names.
pub mod kind {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable.
    pub const DEST_UNREACHABLE: u8 = 3;
    /// Source quench.
    pub const SOURCE_QUENCH: u8 = 4;
    /// Redirect.
    pub const REDIRECT: u8 = 5;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
    /// Parameter problem.
    pub const PARAM_PROBLEM: u8 = 12;
    /// Timestamp request.
    pub const TIMESTAMP_REQUEST: u8 = 13;
    /// Timestamp reply.
    pub const TIMESTAMP_REPLY: u8 = 14;
    /// Information request.
    pub const INFO_REQUEST: u8 = 15;
    /// Information reply.
    pub const INFO_REPLY: u8 = 16;
}

/// Whether an ICMPv4 type is an error that quotes the offending packet.
pub fn is_error(t: u8) -> bool {
    matches!(
        t,
        kind::DEST_UNREACHABLE | kind::SOURCE_QUENCH | kind::REDIRECT | kind::TIME_EXCEEDED | kind::PARAM_PROBLEM
    )
}

/// Whether an ICMPv4 type carries an identifier and sequence number (queries and replies,
/// which conntrack tracks by identifier).
pub fn has_ident(t: u8) -> bool {
    matches!(
        t,
        kind::ECHO_REPLY
            | kind::ECHO_REQUEST
            | kind::TIMESTAMP_REQUEST
            | kind::TIMESTAMP_REPLY
            | kind::INFO_REQUEST
            | kind::INFO_REPLY
    )
}

/// A read/write view of an ICMP or ICMPv6 message (header and body).
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors may panic on short buffers.
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer after [`Packet::check_len`].
    ///
    /// # Errors
    /// See [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        Self::new_checked_as(buffer, "icmp")
    }

    /// [`Packet::new_checked`] with the layer name used in errors (`"icmpv6"`).
    ///
    /// # Errors
    /// See [`Packet::check_len`].
    pub fn new_checked_as(buffer: T, layer: &'static str) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        if p.buffer.as_ref().len() < HEADER_LEN {
            return Err(cut_short(layer, FIELDS, HEADER_LEN, p.buffer.as_ref().len()));
        }
        Ok(p)
    }

    /// Checks that the 8-byte header fits.
    ///
    /// # Errors
    /// [`crate::Error::Packet`] naming the first field cut off.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(cut_short("icmp", FIELDS, HEADER_LEN, len));
        }
        Ok(())
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// Message code.
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum as stored.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// The four "rest of header" bytes as one word.
    pub fn rest_of_header(&self) -> u32 {
        be32(self.buffer.as_ref(), field::REST.start)
    }

    /// Echo identifier (meaningful for echo and the other query types).
    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT.start)
    }

    /// Echo sequence number.
    pub fn echo_seq(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SEQ.start)
    }

    /// The body after the 8-byte header (echo data, or the quoted packet of an error).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// Whether the ICMPv4 checksum (no pseudo-header) over the whole buffer is valid.
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(checksum::sum(0, self.buffer.as_ref()))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Recomputes the ICMPv4 checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        self.fill_checksum_from(0);
    }

    /// Recomputes the checksum starting from a pseudo-header sum `acc` (0 for ICMPv4).
    pub fn fill_checksum_from(&mut self, acc: u32) {
        let b = self.buffer.as_mut();
        put16(b, field::CHECKSUM.start, 0);
        let c = !checksum::fold(checksum::sum(acc, b));
        put16(b, field::CHECKSUM.start, c);
    }
}

/// An owned ICMP header (the body stays in the buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Message type.
    pub msg_type: u8,
    /// Message code.
    pub code: u8,
    /// Rest of header (identifier << 16 | sequence for echo).
    pub rest: u32,
}

impl Repr {
    /// An echo request or reply header.
    pub fn echo(msg_type: u8, ident: u16, seq: u16) -> Repr {
        Repr { msg_type, code: 0, rest: (u32::from(ident) << 16) | u32::from(seq) }
    }

    /// Reads the header of a checked view.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Repr {
        Repr { msg_type: p.msg_type(), code: p.code(), rest: p.rest_of_header() }
    }

    /// Header length (8).
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header (checksum zero) into the first 8 bytes of `buf`.
    ///
    /// # Panics
    /// When `buf` is shorter than 8 bytes.
    pub fn emit(&self, buf: &mut [u8]) {
        buf[field::TYPE] = self.msg_type;
        buf[field::CODE] = self.code;
        put16(buf, field::CHECKSUM.start, 0);
        put32(buf, field::REST.start, self.rest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Echo request id 0x1234 seq 1, payload "abcd", checksum filled by the test.
    static ECHO: [u8; 12] = [8, 0, 0, 0, 0x12, 0x34, 0x00, 0x01, b'a', b'b', b'c', b'd'];

    #[test]
    fn echo_round_trip() {
        let p = Packet::new_checked(&ECHO[..]).unwrap();
        assert_eq!(p.msg_type(), kind::ECHO_REQUEST);
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq(), 1);
        assert_eq!(p.payload(), b"abcd");
        let r = Repr::parse(&p);
        assert_eq!(r, Repr::echo(8, 0x1234, 1));
        let mut buf = ECHO;
        r.emit(&mut buf);
        let mut v = Packet::new_unchecked(&mut buf[..]);
        v.fill_checksum();
        assert!(v.verify_checksum());
        assert_eq!(v.checksum(), checksum::checksum(&ECHO));
    }

    #[test]
    fn classes() {
        assert!(is_error(kind::DEST_UNREACHABLE));
        assert!(!is_error(kind::ECHO_REQUEST));
        assert!(has_ident(kind::ECHO_REPLY));
        assert!(matches!(
            Packet::new_checked(&ECHO[..3]),
            Err(crate::Error::Packet { field: "checksum", offset: 2, .. })
        ));
    }
}
