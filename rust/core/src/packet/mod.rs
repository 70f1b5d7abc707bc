//! Packet headers: checked views over bytes (`Packet<T>`) and owned `Repr`s (smoltcp style).
