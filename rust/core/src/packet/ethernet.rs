//! Ethernet II frames, with an optional 802.1Q / 802.1ad VLAN tag.

use super::{be16, put16, truncated, Field};
use crate::error::{Error, Result};

/// EtherType values kubenat knows.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// 802.1Q VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service VLAN tag (QinQ outer tag).
    pub const QINQ: u16 = 0x88a8;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
}

mod field {
    use super::Field;
    pub const DST: Field = 0..6;
    pub const SRC: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const TCI: Field = 14..16;
    pub const INNER_ETHERTYPE: Field = 16..18;
}

/// Length of an untagged Ethernet header.
pub const HEADER_LEN: usize = 14;
/// Length of an Ethernet header with one VLAN tag.
pub const VLAN_HEADER_LEN: usize = 18;

/// A MAC address.
pub type Mac = [u8; 6];

/// Formats a MAC address as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(m: &Mac) -> String {
    format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
}

/// Parses `aa:bb:cc:dd:ee:ff` (or with `-`).
///
/// # Errors
/// [`Error::Invalid`] when the text is not six hex octets.
pub fn parse_mac(s: &str) -> Result<Mac> {
    let mut out = [0u8; 6];
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(Error::invalid("mac", format!("{s:?} is not a MAC address")));
    }
    for (o, p) in out.iter_mut().zip(parts) {
        *o = u8::from_str_radix(p, 16).map_err(|_| Error::invalid("mac", format!("{s:?} is not a MAC address")))?;
    }
    Ok(out)
}

/// A read/write view of an Ethernet header.
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
    /// [`Error::Packet`] when the buffer is too short for the header (and its VLAN tag).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the header (including a VLAN tag when the EtherType announces one) fits.
    ///
    /// # Errors
    /// [`Error::Packet`] naming the first field that does not fit.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            let field = if b.len() < 6 {
                "dst"
            } else if b.len() < 12 {
                "src"
            } else {
                "ethertype"
            };
            let at = match field {
                "dst" => 0,
                "src" => 6,
                _ => 12,
            };
            return Err(truncated("ethernet", field, at, HEADER_LEN, b.len()));
        }
        if self.has_vlan() && b.len() < VLAN_HEADER_LEN {
            return Err(truncated("ethernet", "vlan", field::TCI.start, VLAN_HEADER_LEN, b.len()));
        }
        Ok(())
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination MAC.
    pub fn dst(&self) -> Mac {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        m
    }

    /// Source MAC.
    pub fn src(&self) -> Mac {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        m
    }

    /// The outer EtherType (0x8100 for a tagged frame).
    pub fn outer_ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ETHERTYPE.start)
    }

    /// Whether the frame carries a VLAN tag.
    pub fn has_vlan(&self) -> bool {
        matches!(self.outer_ethertype(), ethertype::VLAN | ethertype::QINQ)
    }

    /// The VLAN tag control information (PCP, DEI, VID), if tagged.
    pub fn vlan_tci(&self) -> Option<u16> {
        self.has_vlan().then(|| be16(self.buffer.as_ref(), field::TCI.start))
    }

    /// The EtherType of the payload (after the VLAN tag, if any).
    pub fn ethertype(&self) -> u16 {
        if self.has_vlan() {
            be16(self.buffer.as_ref(), field::INNER_ETHERTYPE.start)
        } else {
            self.outer_ethertype()
        }
    }

    /// Header length: 14, or 18 with a VLAN tag.
    pub fn header_len(&self) -> usize {
        if self.has_vlan() {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// The bytes after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the destination MAC.
    pub fn set_dst(&mut self, m: Mac) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&m);
    }

    /// Sets the source MAC.
    pub fn set_src(&mut self, m: Mac) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&m);
    }
}

/// An owned Ethernet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Destination MAC.
    pub dst: Mac,
    /// Source MAC.
    pub src: Mac,
    /// 802.1Q tag control information, when tagged.
    pub vlan_tci: Option<u16>,
    /// EtherType of the payload.
    pub ethertype: u16,
}

impl Repr {
    /// Reads the header of a checked view.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Repr {
        Repr { dst: p.dst(), src: p.src(), vlan_tci: p.vlan_tci(), ethertype: p.ethertype() }
    }

    /// Header length this repr emits.
    pub fn buffer_len(&self) -> usize {
        if self.vlan_tci.is_some() {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// Writes the header into the first [`Repr::buffer_len`] bytes of `buf`.
    ///
    /// # Panics
    /// When `buf` is shorter than [`Repr::buffer_len`].
    pub fn emit(&self, buf: &mut [u8]) {
        buf[field::DST].copy_from_slice(&self.dst);
        buf[field::SRC].copy_from_slice(&self.src);
        if let Some(tci) = self.vlan_tci {
            put16(buf, field::ETHERTYPE.start, ethertype::VLAN);
            put16(buf, field::TCI.start, tci);
            put16(buf, field::INNER_ETHERTYPE.start, self.ethertype);
        } else {
            put16(buf, field::ETHERTYPE.start, self.ethertype);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static FRAME: [u8; 16] = [0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00, 0x45, 0x00];
    static TAGGED: [u8; 18] = [0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x81, 0x00, 0x20, 0x0a, 0x86, 0xdd];

    #[test]
    fn deconstruct() {
        let p = Packet::new_checked(&FRAME[..]).unwrap();
        assert_eq!(p.dst(), [2, 0, 0, 0, 0, 1]);
        assert_eq!(p.ethertype(), ethertype::IPV4);
        assert_eq!(p.payload(), &[0x45, 0x00]);
        let t = Packet::new_checked(&TAGGED[..]).unwrap();
        assert_eq!(t.vlan_tci(), Some(0x200a));
        assert_eq!(t.ethertype(), ethertype::IPV6);
        assert_eq!(t.header_len(), 18);
    }

    #[test]
    fn construct_round_trips() {
        let r = Repr::parse(&Packet::new_checked(&TAGGED[..]).unwrap());
        let mut buf = [0u8; 18];
        r.emit(&mut buf);
        assert_eq!(buf, TAGGED);
    }

    #[test]
    fn truncated_names_field() {
        let e = Packet::new_checked(&FRAME[..13]).unwrap_err();
        assert!(matches!(e, Error::Packet { field: "ethertype", offset: 12, .. }));
        let e = Packet::new_checked(&TAGGED[..16]).unwrap_err();
        assert!(matches!(e, Error::Packet { field: "vlan", offset: 14, .. }));
    }

    #[test]
    fn mac_text() {
        assert_eq!(parse_mac("02:00:00:00:00:01").unwrap(), [2, 0, 0, 0, 0, 1]);
        assert_eq!(format_mac(&[0xaa, 0xbb, 0xcc, 0, 1, 2]), "aa:bb:cc:00:01:02");
        assert!(parse_mac("zz").is_err());
    }
}
