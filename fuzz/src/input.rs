//! Carving structured choices out of fuzz bytes.

/// Reads choices from the front of a byte slice; once exhausted it returns zeros.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Wraps `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    /// One byte (0 when exhausted).
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    /// A big-endian u16.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    /// A big-endian u32.
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    /// The next `n` bytes (fewer when exhausted).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.data.len())
    }

    /// Splits at the first occurrence of `sep` (the separator is consumed); the whole rest when
    /// there is none.
    pub fn until(&mut self, sep: &[u8]) -> &'a [u8] {
        match self.data.windows(sep.len()).position(|w| w == sep) {
            Some(at) => {
                let head = &self.data[..at];
                self.data = &self.data[at + sep.len()..];
                head
            }
            None => self.rest(),
        }
    }
}
