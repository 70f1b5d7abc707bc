//! IPv4 headers (RFC 791), options kept as bytes.

use std::net::Ipv4Addr;

use super::checksum;
use super::{be16, cut_short, put16, Field, Rest};
use crate::error::{Error, Result};

mod field {
    use super::{Field, Rest};
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const TOTAL_LEN: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC: Field = 12..16;
    pub const DST: Field = 16..20;
    pub const OPTIONS: Rest = 20..;
}

/// Fixed header length (no options).
pub const HEADER_LEN: usize = 20;
/// Longest header (IHL 15).
pub const MAX_HEADER_LEN: usize = 60;

const FIELDS: &[(&str, Field)] = &[
    ("version", 0..1),
    ("tos", 1..2),
    ("total_length", field::TOTAL_LEN),
    ("identification", field::IDENT),
    ("fragment_offset", field::FLG_OFF),
    ("ttl", 8..9),
    ("protocol", 9..10),
    ("checksum", field::CHECKSUM),
    ("src", field::SRC),
    ("dst", field::DST),
];

/// A read/write view of an IPv4 packet.
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

    /// Checks version, IHL and total length against the buffer. Bytes after `total_length`
    /// (Ethernet padding) are allowed and ignored by [`Packet::payload`].
    ///
    /// # Errors
    /// [`Error::Packet`] for a truncated header, a version other than 4, IHL below 5, options
    /// running past the buffer, or a total length below the header length or past the buffer.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.is_empty() {
            return Err(cut_short("ipv4", FIELDS, HEADER_LEN, 0));
        }
        if self.version() != 4 {
            return Err(Error::packet("ipv4", "version", 0, format!("unknown version {}", self.version())));
        }
        if b.len() < HEADER_LEN {
            return Err(cut_short("ipv4", FIELDS, HEADER_LEN, b.len()));
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(Error::packet(
                "ipv4",
                "ihl",
                0,
                format!("wrong IHL: {} words is below the minimum of 5", b[field::VER_IHL] & 0x0f),
            ));
        }
        if hl > b.len() {
            return Err(Error::packet(
                "ipv4",
                "options",
                HEADER_LEN,
                format!("truncated: IHL says {hl} header bytes, only {} available", b.len()),
            ));
        }
        let total = usize::from(self.total_len());
        if total < hl {
            return Err(Error::packet(
                "ipv4",
                "total_length",
                field::TOTAL_LEN.start,
                format!("bad total length {total}: below the header length {hl}"),
            ));
        }
        if total > b.len() {
            return Err(Error::packet(
                "ipv4",
                "total_length",
                field::TOTAL_LEN.start,
                format!("bad total length {total}: only {} bytes available", b.len()),
            ));
        }
        Ok(())
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version nibble (4 after a successful check).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The type-of-service byte (DSCP << 2 | ECN).
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }

    /// Total length of header and payload.
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::TOTAL_LEN.start)
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT.start)
    }

    /// The reserved (evil) bit.
    pub fn reserved_flag(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF.start) & 0x8000 != 0
    }

    /// Don't Fragment.
    pub fn dont_frag(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF.start) & 0x4000 != 0
    }

    /// More Fragments.
    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF.start) & 0x2000 != 0
    }

    /// Fragment offset in 8-byte units (13 bits).
    pub fn frag_offset(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FLG_OFF.start) & 0x1fff
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload.
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Header checksum as stored.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Source address.
    pub fn src(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[12], b[13], b[14], b[15])
    }

    /// Destination address.
    pub fn dst(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[16], b[17], b[18], b[19])
    }

    /// Option bytes (between the fixed header and `header_len`).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// Whether the header checksum is valid.
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(checksum::sum(0, &self.buffer.as_ref()[..self.header_len()]))
    }

    /// The payload, up to `total_length` (trailing padding excluded).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Recomputes and stores the header checksum.
    pub fn fill_checksum(&mut self) {
        let hl = self.header_len();
        let b = self.buffer.as_mut();
        put16(b, field::CHECKSUM.start, 0);
        let c = checksum::checksum(&b[..hl]);
        put16(b, field::CHECKSUM.start, c);
    }

    /// Sets the TTL, updating the header checksum incrementally.
    pub fn set_ttl(&mut self, ttl: u8) {
        let b = self.buffer.as_mut();
        let old = be16(b, field::TTL);
        b[field::TTL] = ttl;
        let new = be16(b, field::TTL);
        let c = checksum::update_u16(be16(b, field::CHECKSUM.start), old, new);
        put16(b, field::CHECKSUM.start, c);
    }

    /// Sets the source address, updating the header checksum incrementally.
    pub fn set_src(&mut self, a: Ipv4Addr) {
        self.set_addr(field::SRC, a);
    }

    /// Sets the destination address, updating the header checksum incrementally.
    pub fn set_dst(&mut self, a: Ipv4Addr) {
        self.set_addr(field::DST, a);
    }

    fn set_addr(&mut self, f: Field, a: Ipv4Addr) {
        let b = self.buffer.as_mut();
        let mut old = [0u8; 4];
        old.copy_from_slice(&b[f.clone()]);
        b[f].copy_from_slice(&a.octets());
        let c = checksum::update_bytes(be16(b, field::CHECKSUM.start), &old, &a.octets());
        put16(b, field::CHECKSUM.start, c);
    }
}

/// An owned IPv4 header.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Protocol of the payload.
    pub protocol: u8,
    /// Time to live.
    pub ttl: u8,
    /// Type of service (DSCP and ECN).
    pub tos: u8,
    /// Identification.
    pub ident: u16,
    /// Don't Fragment.
    pub dont_frag: bool,
    /// More Fragments.
    pub more_frags: bool,
    /// Fragment offset in 8-byte units.
    pub frag_offset: u16,
    /// Option bytes; emitted padded with zeros (end of options) to a multiple of 4, at most 40.
    pub options: Vec<u8>,
    /// Payload length (total length minus header length).
    pub payload_len: usize,
}

impl Repr {
    /// Reads the header of a checked view.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Repr {
        Repr {
            src: p.src(),
            dst: p.dst(),
            protocol: p.protocol(),
            ttl: p.ttl(),
            tos: p.tos(),
            ident: p.ident(),
            dont_frag: p.dont_frag(),
            more_frags: p.more_frags(),
            frag_offset: p.frag_offset(),
            options: p.options().to_vec(),
            payload_len: usize::from(p.total_len()) - p.header_len(),
        }
    }

    /// Header length this repr emits (options padded to 4 bytes).
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.options.len().div_ceil(4) * 4
    }

    /// Writes the header (checksum included) into the first [`Repr::buffer_len`] bytes of `buf`.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the options exceed 40 bytes or the total length exceeds 65535.
    ///
    /// # Panics
    /// When `buf` is shorter than [`Repr::buffer_len`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let hl = self.buffer_len();
        if hl > MAX_HEADER_LEN {
            return Err(Error::invalid("options", format!("{} option bytes exceed 40", self.options.len())));
        }
        let total = u16::try_from(hl + self.payload_len)
            .map_err(|_| Error::invalid("payload", format!("total length {} exceeds 65535", hl + self.payload_len)))?;
        // hl <= 60, so hl / 4 fits a nibble.
        #[allow(clippy::cast_possible_truncation)]
        let ihl = (hl / 4) as u8;
        buf[field::VER_IHL] = 0x40 | ihl;
        buf[field::TOS] = self.tos;
        put16(buf, field::TOTAL_LEN.start, total);
        put16(buf, field::IDENT.start, self.ident);
        let flags = (u16::from(self.dont_frag) << 14) | (u16::from(self.more_frags) << 13);
        put16(buf, field::FLG_OFF.start, flags | (self.frag_offset & 0x1fff));
        buf[field::TTL] = self.ttl;
        buf[field::PROTOCOL] = self.protocol;
        buf[field::SRC].copy_from_slice(&self.src.octets());
        buf[field::DST].copy_from_slice(&self.dst.octets());
        let opts = &mut buf[field::OPTIONS][..hl - HEADER_LEN];
        opts.fill(0);
        opts[..self.options.len()].copy_from_slice(&self.options);
        put16(buf, field::CHECKSUM.start, 0);
        let c = checksum::checksum(&buf[..hl]);
        put16(buf, field::CHECKSUM.start, c);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 10.0.0.1 -> 10.96.0.10, TCP, 20-byte header, total 40, DF, ttl 64, checksum computed below.
    static HEADER: [u8; 24] = [
        0x46, 0x00, 0x00, 0x18, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 10, 0, 0, 1, 10, 96, 0, 10, 0x94, 0x04,
        0x00, 0x00,
    ];

    fn with_checksum() -> [u8; 24] {
        let mut h = HEADER;
        let c = checksum::checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    #[test]
    fn deconstruct() {
        let h = with_checksum();
        let p = Packet::new_checked(&h[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.options(), &[0x94, 0x04, 0, 0]);
        assert_eq!(p.ttl(), 64);
        assert!(p.dont_frag());
        assert_eq!(p.src(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.dst(), Ipv4Addr::new(10, 96, 0, 10));
        assert!(p.verify_checksum());
        assert!(p.payload().is_empty());
    }

    #[test]
    fn construct_round_trips() {
        let h = with_checksum();
        let r = Repr::parse(&Packet::new_checked(&h[..]).unwrap());
        let mut buf = [0u8; 24];
        r.emit(&mut buf).unwrap();
        assert_eq!(buf, h);
    }

    #[test]
    fn malformed_headers_name_the_field() {
        let h = with_checksum();
        let err = |b: &[u8]| match Packet::new_checked(b).unwrap_err() {
            Error::Packet { field, offset, .. } => (field, offset),
            e => panic!("{e}"),
        };
        assert_eq!(err(&h[..10]), ("checksum", 10));
        assert_eq!(err(&[]), ("version", 0));
        let mut v = h;
        v[0] = 0x56;
        assert_eq!(err(&v), ("version", 0));
        v[0] = 0x44;
        assert_eq!(err(&v), ("ihl", 0));
        v[0] = 0x4f;
        assert_eq!(err(&v), ("options", 20));
        let mut t = h;
        t[3] = 0x10;
        assert_eq!(err(&t), ("total_length", 2));
        t[3] = 0x30;
        assert_eq!(err(&t), ("total_length", 2));
    }

    #[test]
    fn ttl_and_address_updates_are_incremental() {
        let mut h = with_checksum();
        let mut p = Packet::new_checked(&mut h[..]).unwrap();
        p.set_ttl(63);
        p.set_dst(Ipv4Addr::new(10, 244, 1, 7));
        p.set_src(Ipv4Addr::new(192, 168, 0, 1));
        let inc = p.checksum();
        p.fill_checksum();
        assert_eq!(inc, p.checksum());
        assert!(p.verify_checksum());
    }
}
