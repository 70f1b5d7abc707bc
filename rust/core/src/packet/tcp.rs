//! TCP headers (RFC 9293), options kept as bytes.

use std::net::IpAddr;

use super::checksum;
use super::{be16, be32, cut_short, proto, put16, put32, Field};
use crate::error::{Error, Result};

mod field {
    use super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ: Field = 4..8;
    pub const ACK: Field = 8..12;
    pub const OFF_FLAGS: Field = 12..14;
    pub const WINDOW: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
}

/// Fixed header length.
pub const HEADER_LEN: usize = 20;
/// Offset of the checksum field (for in-place updates).
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

const FIELDS: &[(&str, Field)] = &[
    ("src_port", field::SRC_PORT),
    ("dst_port", field::DST_PORT),
    ("seq", field::SEQ),
    ("ack", field::ACK),
    ("data_offset", field::OFF_FLAGS),
    ("window", field::WINDOW),
    ("checksum", field::CHECKSUM),
    ("urgent", field::URGENT),
];

/// TCP flag bits as they sit in byte 13 (bit 8, NS, lives in byte 12).
pub mod flags {
    /// FIN.
    pub const FIN: u16 = 0x001;
    /// SYN.
    pub const SYN: u16 = 0x002;
    /// RST.
    pub const RST: u16 = 0x004;
    /// PSH.
    pub const PSH: u16 = 0x008;
    /// ACK.
    pub const ACK: u16 = 0x010;
    /// URG.
    pub const URG: u16 = 0x020;
    /// ECE.
    pub const ECE: u16 = 0x040;
    /// CWR.
    pub const CWR: u16 = 0x080;
    /// NS (historic ECN nonce).
    pub const NS: u16 = 0x100;
    /// Letters in scapy's order, one per bit from FIN upwards.
    pub const LETTERS: &str = "FSRPAUECN";
}

/// A read/write view of a TCP segment (header and payload).
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
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the fixed header and the options announced by the data offset fit.
    ///
    /// # Errors
    /// [`Error::Packet`] for a truncated header, a data offset below 5 words, or options past
    /// the buffer.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(cut_short("tcp", FIELDS, HEADER_LEN, b.len()));
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(Error::packet(
                "tcp",
                "data_offset",
                field::OFF_FLAGS.start,
                format!("data offset {} words is below the minimum of 5", hl / 4),
            ));
        }
        if hl > b.len() {
            return Err(Error::packet(
                "tcp",
                "options",
                HEADER_LEN,
                format!("truncated: data offset says {hl} header bytes, only {} available", b.len()),
            ));
        }
        Ok(())
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT.start)
    }

    /// Sequence number.
    pub fn seq(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQ.start)
    }

    /// Acknowledgment number.
    pub fn ack(&self) -> u32 {
        be32(self.buffer.as_ref(), field::ACK.start)
    }

    /// Header length in bytes (data offset × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::OFF_FLAGS.start] >> 4) * 4
    }

    /// The nine flag bits (see [`flags`]).
    pub fn flags(&self) -> u16 {
        be16(self.buffer.as_ref(), field::OFF_FLAGS.start) & 0x01ff
    }

    /// Window.
    pub fn window(&self) -> u16 {
        be16(self.buffer.as_ref(), field::WINDOW.start)
    }

    /// Checksum as stored.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Urgent pointer.
    pub fn urgent(&self) -> u16 {
        be16(self.buffer.as_ref(), field::URGENT.start)
    }

    /// Option bytes.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// Payload after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// Whether the checksum over the whole buffer with the pseudo-header is valid.
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        let b = self.buffer.as_ref();
        u32::try_from(b.len())
            .ok()
            .and_then(|len| checksum::pseudo_header(src, dst, proto::TCP, len))
            .is_some_and(|acc| checksum::verify(checksum::sum(acc, b)))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Recomputes the checksum over the whole buffer (header and payload) with the pseudo-header.
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) {
        let b = self.buffer.as_mut();
        put16(b, field::CHECKSUM.start, 0);
        let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
        let acc = checksum::pseudo_header(src, dst, proto::TCP, len).unwrap_or(0);
        let c = !checksum::fold(checksum::sum(acc, b));
        put16(b, field::CHECKSUM.start, c);
    }
}

/// An owned TCP header (the payload stays in the buffer).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Flag bits (see [`flags`]).
    pub flags: u16,
    /// Window.
    pub window: u16,
    /// Urgent pointer.
    pub urgent: u16,
    /// Option bytes, emitted padded with zeros (end of options) to a multiple of 4, at most 40.
    pub options: Vec<u8>,
}

impl Repr {
    /// Reads the header of a checked view.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Repr {
        Repr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq: p.seq(),
            ack: p.ack(),
            flags: p.flags(),
            window: p.window(),
            urgent: p.urgent(),
            options: p.options().to_vec(),
        }
    }

    /// Header length this repr emits.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.options.len().div_ceil(4) * 4
    }

    /// Writes the header (checksum zero) into the first [`Repr::buffer_len`] bytes of `buf`.
    /// Call [`Packet::fill_checksum`] once the payload is in place.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the options exceed 40 bytes.
    ///
    /// # Panics
    /// When `buf` is shorter than [`Repr::buffer_len`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let hl = self.buffer_len();
        if hl > 60 {
            return Err(Error::invalid("options", format!("{} TCP option bytes exceed 40", self.options.len())));
        }
        put16(buf, field::SRC_PORT.start, self.src_port);
        put16(buf, field::DST_PORT.start, self.dst_port);
        put32(buf, field::SEQ.start, self.seq);
        put32(buf, field::ACK.start, self.ack);
        // hl <= 60, so hl / 4 fits the 4-bit data offset.
        #[allow(clippy::cast_possible_truncation)]
        let off = (hl / 4) as u16;
        put16(buf, field::OFF_FLAGS.start, (off << 12) | (self.flags & 0x01ff));
        put16(buf, field::WINDOW.start, self.window);
        put16(buf, field::CHECKSUM.start, 0);
        put16(buf, field::URGENT.start, self.urgent);
        let opts = &mut buf[HEADER_LEN..hl];
        opts.fill(0);
        opts[..self.options.len()].copy_from_slice(&self.options);
        Ok(())
    }
}

/// Renders flag bits as scapy does (`"SA"` for SYN+ACK, in the order `FSRPAUECN`).
pub fn flags_to_string(f: u16) -> String {
    flags::LETTERS.chars().enumerate().filter(|(i, _)| f & (1 << i) != 0).map(|(_, c)| c).collect()
}

/// Parses scapy-style flag letters (`"S"`, `"SA"`, `"FPU"`); the empty string is no flags.
///
/// # Errors
/// [`Error::Invalid`] naming an unknown letter.
pub fn flags_from_string(s: &str) -> Result<u16> {
    let mut f = 0u16;
    for c in s.chars() {
        let bit = flags::LETTERS
            .find(c.to_ascii_uppercase())
            .ok_or_else(|| Error::invalid("flags", format!("unknown TCP flag letter {c:?} (use FSRPAUECN)")))?;
        f |= 1 << bit;
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    // 1234 -> 80, seq 1, SYN, window 64240, MSS option 1460, checksum zero.
    static SEGMENT: [u8; 26] = [
        0x04, 0xd2, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x60, 0x02, 0xfa, 0xf0, 0, 0, 0, 0, 0x02, 0x04, 0x05, 0xb4,
        b'h', b'i',
    ];

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&SEGMENT[..]).unwrap();
        assert_eq!(p.src_port(), 1234);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.seq(), 1);
        assert_eq!(p.flags(), flags::SYN);
        assert_eq!(p.options(), &[2, 4, 5, 0xb4]);
        assert_eq!(p.payload(), b"hi");
    }

    #[test]
    fn construct_and_checksum() {
        let r = Repr::parse(&Packet::new_checked(&SEGMENT[..]).unwrap());
        let mut buf = SEGMENT;
        buf[..24].fill(0xaa);
        r.emit(&mut buf).unwrap();
        assert_eq!(buf, SEGMENT);
        let (s, d): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.96.0.10".parse().unwrap());
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.fill_checksum(s, d);
        assert!(p.verify_checksum(s, d));
        assert!(!p.verify_checksum(d, "10.96.0.11".parse().unwrap()));
    }

    #[test]
    fn malformed() {
        assert!(matches!(
            Packet::new_checked(&SEGMENT[..13]),
            Err(Error::Packet { field: "data_offset", offset: 12, .. })
        ));
        let mut b = SEGMENT;
        b[12] = 0x40;
        assert!(matches!(Packet::new_checked(&b[..]), Err(Error::Packet { field: "data_offset", .. })));
        b[12] = 0xf0;
        assert!(matches!(Packet::new_checked(&b[..]), Err(Error::Packet { field: "options", offset: 20, .. })));
    }

    #[test]
    fn flag_letters() {
        assert_eq!(flags_to_string(flags::SYN | flags::ACK), "SA");
        assert_eq!(flags_from_string("SA").unwrap(), flags::SYN | flags::ACK);
        assert_eq!(flags_from_string("").unwrap(), 0);
        assert!(flags_from_string("X").is_err());
    }
}
