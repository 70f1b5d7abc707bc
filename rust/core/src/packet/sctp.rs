//! SCTP common header (RFC 9260 §3.1): ports, verification tag and the CRC32c checksum.
//! Chunks stay as bytes; only the first chunk's type is read (conntrack looks at INIT).

use super::checksum;
use super::{be16, be32, cut_short, put16, put32, Field};
use crate::error::Result;

mod field {
    use super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const VTAG: Field = 4..8;
    pub const CHECKSUM: Field = 8..12;
}

/// Common header length.
pub const HEADER_LEN: usize = 12;

const FIELDS: &[(&str, Field)] = &[
    ("src_port", field::SRC_PORT),
    ("dst_port", field::DST_PORT),
    ("verification_tag", field::VTAG),
    ("checksum", field::CHECKSUM),
];

/// Chunk type of an INIT.
pub const CHUNK_INIT: u8 = 1;

/// A read/write view of an SCTP packet (common header and chunks).
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

    /// Checks that the common header fits.
    ///
    /// # Errors
    /// [`crate::Error::Packet`] naming the first field cut off.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(cut_short("sctp", FIELDS, HEADER_LEN, len));
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

    /// Verification tag.
    pub fn verification_tag(&self) -> u32 {
        be32(self.buffer.as_ref(), field::VTAG.start)
    }

    /// The checksum as the CRC32c value (the field is stored little-endian on the wire).
    pub fn checksum(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_le_bytes([b[8], b[9], b[10], b[11]])
    }

    /// Type of the first chunk, if any chunk byte is present.
    pub fn first_chunk_type(&self) -> Option<u8> {
        self.buffer.as_ref().get(HEADER_LEN).copied()
    }

    /// The chunks after the common header.
    pub fn chunks(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// CRC32c over the packet with the checksum field taken as zero.
    pub fn compute_checksum(&self) -> u32 {
        let b = self.buffer.as_ref();
        let mut crc = checksum::crc32c_update(0xFFFF_FFFF, &b[..field::CHECKSUM.start]);
        crc = checksum::crc32c_update(crc, &[0; 4]);
        !checksum::crc32c_update(crc, &b[HEADER_LEN..])
    }

    /// Whether the stored CRC32c matches.
    pub fn verify_checksum(&self) -> bool {
        self.compute_checksum() == self.checksum()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Recomputes and stores the CRC32c.
    pub fn fill_checksum(&mut self) {
        let c = self.compute_checksum();
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&c.to_le_bytes());
    }

    /// Sets the source port (the CRC must be refilled afterwards).
    pub fn set_src_port(&mut self, p: u16) {
        put16(self.buffer.as_mut(), field::SRC_PORT.start, p);
    }

    /// Sets the destination port (the CRC must be refilled afterwards).
    pub fn set_dst_port(&mut self, p: u16) {
        put16(self.buffer.as_mut(), field::DST_PORT.start, p);
    }
}

/// An owned SCTP common header (the chunks stay in the buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Verification tag.
    pub verification_tag: u32,
}

impl Repr {
    /// Reads the header of a checked view.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Repr {
        Repr { src_port: p.src_port(), dst_port: p.dst_port(), verification_tag: p.verification_tag() }
    }

    /// Header length (12).
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header (checksum zero) into the first 12 bytes of `buf`; call
    /// [`Packet::fill_checksum`] once the chunks are in place.
    ///
    /// # Panics
    /// When `buf` is shorter than 12 bytes.
    pub fn emit(&self, buf: &mut [u8]) {
        put16(buf, field::SRC_PORT.start, self.src_port);
        put16(buf, field::DST_PORT.start, self.dst_port);
        put32(buf, field::VTAG.start, self.verification_tag);
        put32(buf, field::CHECKSUM.start, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_round_trip() {
        // INIT chunk header (type 1, flags 0, length 20) plus 16 bytes of parameters.
        let mut buf = vec![0u8; 32];
        Repr { src_port: 5000, dst_port: 38412, verification_tag: 0 }.emit(&mut buf);
        buf[12..16].copy_from_slice(&[1, 0, 0, 20]);
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.first_chunk_type(), Some(CHUNK_INIT));
        // Same as a plain CRC32c over the bytes with a zero checksum field.
        let mut zeroed = buf.clone();
        zeroed[8..12].fill(0);
        assert_eq!(checksum::crc32c(&zeroed).to_le_bytes(), buf[8..12]);
        assert!(matches!(
            Packet::new_checked(&buf[..9]),
            Err(crate::Error::Packet { field: "checksum", offset: 8, .. })
        ));
    }
}
