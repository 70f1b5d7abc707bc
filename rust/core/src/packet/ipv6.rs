//! IPv6 headers (RFC 8200) and the walk over extension headers to the transport header.

use std::net::Ipv6Addr;

use super::{be16, be32, cut_short, proto, put16, put32, truncated, Field};
use crate::error::{Error, Result};

mod field {
    use super::Field;
    pub const PAYLOAD_LEN: Field = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Field = 8..24;
    pub const DST: Field = 24..40;
}

/// Fixed header length.
pub const HEADER_LEN: usize = 40;

const FIELDS: &[(&str, Field)] = &[
    ("version", 0..1),
    ("flow_label", 1..4),
    ("payload_length", field::PAYLOAD_LEN),
    ("next_header", 6..7),
    ("hop_limit", 7..8),
    ("src", field::SRC),
    ("dst", field::DST),
];

/// A read/write view of an IPv6 packet.
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

    /// Checks version and payload length against the buffer (trailing bytes are allowed).
    ///
    /// # Errors
    /// [`Error::Packet`] for a truncated header, a version other than 6, or a payload length
    /// past the buffer. Jumbograms (payload length 0) are not supported: their hop-by-hop
    /// header then lies outside the payload and the dissector reports it truncated.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.is_empty() {
            return Err(cut_short("ipv6", FIELDS, HEADER_LEN, 0));
        }
        if self.version() != 6 {
            return Err(Error::packet("ipv6", "version", 0, format!("unknown version {}", self.version())));
        }
        if b.len() < HEADER_LEN {
            return Err(cut_short("ipv6", FIELDS, HEADER_LEN, b.len()));
        }
        let pl = usize::from(self.payload_len());
        if HEADER_LEN + pl > b.len() {
            return Err(Error::packet(
                "ipv6",
                "payload_length",
                field::PAYLOAD_LEN.start,
                format!("bad payload length {pl}: only {} bytes follow the header", b.len() - HEADER_LEN),
            ));
        }
        Ok(())
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version nibble (6 after a successful check).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// Traffic class.
    pub fn traffic_class(&self) -> u8 {
        // Bits 4..12 of the first word.
        #[allow(clippy::cast_possible_truncation)]
        let tc = (be32(self.buffer.as_ref(), 0) >> 20) as u8;
        tc
    }

    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        be32(self.buffer.as_ref(), 0) & 0x000f_ffff
    }

    /// Payload length (everything after the fixed header, extension headers included).
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PAYLOAD_LEN.start)
    }

    /// The first next-header value.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    pub fn src(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        Ipv6Addr::from(a)
    }

    /// Destination address.
    pub fn dst(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        Ipv6Addr::from(a)
    }

    /// The payload (extension headers and transport), up to `payload_length`.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the hop limit (IPv6 has no header checksum).
    pub fn set_hop_limit(&mut self, h: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = h;
    }

    /// Sets the source address (transport checksums are the caller's business).
    pub fn set_src(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a.octets());
    }

    /// Sets the destination address (transport checksums are the caller's business).
    pub fn set_dst(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a.octets());
    }
}

/// Fragment information from an IPv6 fragment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragInfo {
    /// Byte offset of the fragment header from the start of the IPv6 header.
    pub header_offset: usize,
    /// Fragment offset in 8-byte units.
    pub offset: u16,
    /// More Fragments.
    pub more: bool,
    /// Identification.
    pub ident: u32,
}

/// Where the extension-header walk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExtWalk {
    /// The upper-layer protocol (the last next-header value; 59 when there is none).
    pub protocol: u8,
    /// Offset of the upper-layer header from the start of the IPv6 header.
    pub transport_offset: usize,
    /// The fragment header, if there is one.
    pub frag: Option<FragInfo>,
}

/// Whether `nh` is an extension header the walk steps over.
pub fn is_extension(nh: u8) -> bool {
    matches!(nh, proto::HOPOPTS | proto::ROUTING | proto::FRAGMENT | proto::DSTOPTS | proto::AH | 135 | 139 | 140)
}

/// Walks the extension headers of a checked packet `pkt` (the IPv6 header and its payload,
/// `payload_length` bytes) as the kernel's `ipv6_find_hdr` does: hop-by-hop, routing,
/// fragment, destination options, AH, mobility, HIP and shim6 headers are skipped. The walk
/// stops at a non-first fragment (the transport header is not in this packet).
///
/// # Errors
/// [`Error::Packet`] (layer `ipv6`, offsets relative to the IPv6 header) when an extension
/// header runs past the payload, or hop-by-hop options appear anywhere but first.
pub fn walk_extensions(pkt: &[u8]) -> Result<ExtWalk> {
    let end = pkt.len();
    let mut nh = pkt[field::NEXT_HEADER];
    let mut at = HEADER_LEN;
    let mut frag = None;
    while is_extension(nh) {
        if nh == proto::HOPOPTS && at != HEADER_LEN {
            return Err(Error::packet("ipv6", "next_header", at, "hop-by-hop options header not first"));
        }
        if at + 8 > end {
            return Err(truncated("ipv6", "extension_header", at, 8, end.saturating_sub(at)));
        }
        let len = match nh {
            proto::FRAGMENT => 8,
            proto::AH => (usize::from(pkt[at + 1]) + 2) * 4,
            _ => (usize::from(pkt[at + 1]) + 1) * 8,
        };
        if at + len > end {
            return Err(Error::packet(
                "ipv6",
                "extension_header",
                at,
                format!("truncated: header of {len} bytes, only {} available", end - at),
            ));
        }
        let next = pkt[at];
        if nh == proto::FRAGMENT {
            let off_flags = be16(pkt, at + 2);
            let f = FragInfo {
                header_offset: at,
                offset: off_flags >> 3,
                more: off_flags & 1 != 0,
                ident: be32(pkt, at + 4),
            };
            frag = Some(f);
            if f.offset != 0 {
                return Ok(ExtWalk { protocol: next, transport_offset: at + len, frag });
            }
        }
        nh = next;
        at += len;
    }
    Ok(ExtWalk { protocol: nh, transport_offset: at, frag })
}

/// The destination the upper-layer checksum covers (RFC 8200 §8.1): with a routing header
/// that still has segments left, the final address of its list (type 0/2: the last address;
/// type 4, segment routing: the first, as the list is stored in reverse), else `None` (the
/// header's destination). `pkt` is the IPv6 packet up to the end of its payload.
pub fn final_destination(pkt: &[u8]) -> Option<Ipv6Addr> {
    let mut nh = *pkt.get(field::NEXT_HEADER)?;
    let mut at = HEADER_LEN;
    while is_extension(nh) {
        let hdr = pkt.get(at..at + 8)?;
        let len = match nh {
            proto::FRAGMENT => 8,
            proto::AH => (usize::from(hdr[1]) + 2) * 4,
            _ => (usize::from(hdr[1]) + 1) * 8,
        };
        if nh == proto::ROUTING && hdr[3] > 0 {
            let n = usize::from(hdr[1]) / 2;
            let pick = match hdr[2] {
                0 | 2 if n > 0 => n - 1,
                4 if n > 0 => 0,
                _ => return None,
            };
            let a: [u8; 16] = pkt.get(at + 8 + 16 * pick..at + 24 + 16 * pick)?.try_into().ok()?;
            return Some(Ipv6Addr::from(a));
        }
        nh = hdr[0];
        at += len;
    }
    None
}

/// An owned IPv6 fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// First next-header value.
    pub next_header: u8,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
    /// Payload length (extension headers included).
    pub payload_len: usize,
}

impl Repr {
    /// Reads the fixed header of a checked view.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Repr {
        Repr {
            src: p.src(),
            dst: p.dst(),
            next_header: p.next_header(),
            hop_limit: p.hop_limit(),
            traffic_class: p.traffic_class(),
            flow_label: p.flow_label(),
            payload_len: usize::from(p.payload_len()),
        }
    }

    /// Header length this repr emits (always 40).
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the fixed header into the first 40 bytes of `buf`.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the payload length exceeds 65535 (jumbograms are not supported).
    ///
    /// # Panics
    /// When `buf` is shorter than 40 bytes.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let pl = u16::try_from(self.payload_len)
            .map_err(|_| Error::invalid("payload", format!("payload length {} exceeds 65535", self.payload_len)))?;
        put32(buf, 0, (6 << 28) | (u32::from(self.traffic_class) << 20) | (self.flow_label & 0x000f_ffff));
        put16(buf, field::PAYLOAD_LEN.start, pl);
        buf[field::NEXT_HEADER] = self.next_header;
        buf[field::HOP_LIMIT] = self.hop_limit;
        buf[field::SRC].copy_from_slice(&self.src.octets());
        buf[field::DST].copy_from_slice(&self.dst.octets());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(next: u8, payload: &[u8]) -> Vec<u8> {
        let r = Repr {
            src: "fd00::1".parse().unwrap(),
            dst: "fd00::2".parse().unwrap(),
            next_header: next,
            hop_limit: 64,
            traffic_class: 0xb8,
            flow_label: 0x12345,
            payload_len: payload.len(),
        };
        let mut b = vec![0u8; 40];
        r.emit(&mut b).unwrap();
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn round_trip() {
        let b = packet(proto::UDP, &[0; 8]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload().len(), 8);
        let r = Repr::parse(&p);
        let mut out = vec![0u8; 40];
        r.emit(&mut out).unwrap();
        assert_eq!(out, b[..40]);
    }

    #[test]
    fn walks_extension_headers() {
        // hop-by-hop (8) -> dest opts (16) -> fragment (first, more) -> TCP
        let mut ext = vec![proto::DSTOPTS, 0, 1, 4, 0, 0, 0, 0];
        ext.extend_from_slice(&[proto::FRAGMENT, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        ext.extend_from_slice(&[proto::TCP, 0, 0x00, 0x01, 0, 0, 0, 9]);
        ext.extend_from_slice(&[0u8; 20]);
        let b = packet(proto::HOPOPTS, &ext);
        let w = walk_extensions(&b).unwrap();
        assert_eq!(w.protocol, proto::TCP);
        assert_eq!(w.transport_offset, 40 + 32);
        assert_eq!(w.frag, Some(FragInfo { header_offset: 72 - 8, offset: 0, more: true, ident: 9 }));
    }

    #[test]
    fn non_first_fragment_stops_the_walk() {
        let b = packet(proto::FRAGMENT, &[proto::UDP, 0, 0x00, 0x18, 0, 0, 0, 1, 1, 2, 3]);
        let w = walk_extensions(&b).unwrap();
        assert_eq!(w.protocol, proto::UDP);
        assert_eq!(w.frag.unwrap().offset, 3);
    }

    #[test]
    fn malformed() {
        let b = packet(proto::ROUTING, &[proto::TCP, 3, 0, 0]);
        assert!(matches!(walk_extensions(&b), Err(Error::Packet { field: "extension_header", offset: 40, .. })));
        let mut b = packet(proto::UDP, &[0; 8]);
        b[5] = 9;
        assert!(matches!(Packet::new_checked(&b[..]), Err(Error::Packet { field: "payload_length", offset: 4, .. })));
        b[0] = 0x40;
        assert!(matches!(Packet::new_checked(&b[..]), Err(Error::Packet { field: "version", offset: 0, .. })));
        assert!(matches!(Packet::new_checked(&b[..3]), Err(Error::Packet { .. })));
    }
}
