//! UDP headers (RFC 768).

use std::net::IpAddr;

use super::checksum;
use super::{be16, cut_short, proto, put16, Field};
use crate::error::{Error, Result};

mod field {
    use super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

/// Header length.
pub const HEADER_LEN: usize = 8;
/// Offset of the checksum field (for in-place updates).
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

const FIELDS: &[(&str, Field)] = &[
    ("src_port", field::SRC_PORT),
    ("dst_port", field::DST_PORT),
    ("length", field::LENGTH),
    ("checksum", field::CHECKSUM),
];

/// A read/write view of a UDP datagram (header and payload).
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

    /// Checks that the 8-byte header fits, without judging the length field (a first IP
    /// fragment holds only part of the datagram the length covers).
    ///
    /// # Errors
    /// [`Error::Packet`] naming the first field cut off.
    pub fn check_header_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(cut_short("udp", FIELDS, HEADER_LEN, len));
        }
        Ok(())
    }

    /// Checks the header fits and the length field lies between 8 and the buffer length.
    ///
    /// # Errors
    /// [`Error::Packet`] for a truncated header or a bad length field.
    pub fn check_len(&self) -> Result<()> {
        self.check_header_len()?;
        let b = self.buffer.as_ref();
        let l = usize::from(self.len());
        if l < HEADER_LEN || l > b.len() {
            return Err(Error::packet(
                "udp",
                "length",
                field::LENGTH.start,
                format!("bad length {l}: must lie between 8 and the {} bytes available", b.len()),
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

    /// Length field (header and payload).
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// Whether the length field says there is no payload.
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// Checksum as stored (0 over IPv4 means "not computed").
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// The datagram's end: the length field, kept within the buffer (a view checked only with
    /// [`Packet::check_header_len`] may hold less than the length says).
    fn end(&self) -> usize {
        usize::from(self.len()).clamp(HEADER_LEN, self.buffer.as_ref().len())
    }

    /// Payload, up to the length field (or the end of the buffer, if shorter).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.end()]
    }

    /// Whether the checksum is valid (a zero checksum counts as valid over IPv4).
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        if self.checksum() == 0 && src.is_ipv4() {
            return true;
        }
        let b = &self.buffer.as_ref()[..self.end()];
        checksum::pseudo_header(src, dst, proto::UDP, u32::from(self.len()))
            .is_some_and(|acc| checksum::verify(checksum::sum(acc, b)))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Recomputes the checksum over the datagram (up to the length field); a result of 0 is
    /// sent as 0xffff (RFC 768).
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) {
        let l = self.len();
        let end = self.end();
        let b = self.buffer.as_mut();
        put16(b, field::CHECKSUM.start, 0);
        let acc = checksum::pseudo_header(src, dst, proto::UDP, u32::from(l)).unwrap_or(0);
        let c = !checksum::fold(checksum::sum(acc, &b[..end]));
        put16(b, field::CHECKSUM.start, if c == 0 { 0xffff } else { c });
    }

    /// Clears the checksum (IPv4 only: "no checksum").
    pub fn clear_checksum(&mut self) {
        put16(self.buffer.as_mut(), field::CHECKSUM.start, 0);
    }
}

/// An owned UDP header (the payload stays in the buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload length.
    pub payload_len: usize,
}

impl Repr {
    /// Reads the header of a checked view.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Repr {
        Repr { src_port: p.src_port(), dst_port: p.dst_port(), payload_len: usize::from(p.len()) - HEADER_LEN }
    }

    /// Header length (8).
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header (checksum zero) into the first 8 bytes of `buf`. Call
    /// [`Packet::fill_checksum`] once the payload is in place.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the datagram would exceed 65535 bytes.
    ///
    /// # Panics
    /// When `buf` is shorter than 8 bytes.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let l = u16::try_from(HEADER_LEN + self.payload_len).map_err(|_| {
            Error::invalid("payload", format!("UDP length {} exceeds 65535", HEADER_LEN + self.payload_len))
        })?;
        put16(buf, field::SRC_PORT.start, self.src_port);
        put16(buf, field::DST_PORT.start, self.dst_port);
        put16(buf, field::LENGTH.start, l);
        put16(buf, field::CHECKSUM.start, 0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // smoltcp's fixture: 48896 -> 53, length 12, checksum 0x124d, payload aa 00 00 ff.
    static PACKET_BYTES: [u8; 12] = [0xbf, 0x00, 0x00, 0x35, 0x00, 0x0c, 0x12, 0x4d, 0xaa, 0x00, 0x00, 0xff];

    fn addrs() -> (IpAddr, IpAddr) {
        ("192.168.1.1".parse().unwrap(), "192.168.1.2".parse().unwrap())
    }

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(p.src_port(), 48896);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 12);
        assert_eq!(p.checksum(), 0x124d);
        assert_eq!(p.payload(), &[0xaa, 0x00, 0x00, 0xff]);
        let (s, d) = addrs();
        assert!(p.verify_checksum(s, d));
    }

    #[test]
    fn construct() {
        let r = Repr::parse(&Packet::new_checked(&PACKET_BYTES[..]).unwrap());
        let mut buf = PACKET_BYTES;
        buf[..8].fill(0);
        r.emit(&mut buf).unwrap();
        let (s, d) = addrs();
        Packet::new_unchecked(&mut buf[..]).fill_checksum(s, d);
        assert_eq!(buf, PACKET_BYTES);
    }

    #[test]
    fn malformed() {
        assert!(matches!(
            Packet::new_checked(&PACKET_BYTES[..5]),
            Err(Error::Packet { field: "length", offset: 4, .. })
        ));
        let mut b = PACKET_BYTES;
        b[5] = 13;
        assert!(matches!(Packet::new_checked(&b[..]), Err(Error::Packet { field: "length", offset: 4, .. })));
        b[5] = 7;
        assert!(Packet::new_checked(&b[..]).is_err());
    }
}
