//! The one reader and writer of the formats packed by hand: the map
//! outputs list (`outputs.rs`), the cache's partition indexes and map
//! entries (`mr-cache`: `partitions.rs`, `job.rs`) and its input pieces
//! (`plan.rs`). Each format says what it writes; this module is where the
//! bytes are checked, once: every read is bounded by what is left, a count
//! is checked against the bytes that would have to follow it before
//! anything is allocated for it, and damaged input is a [`Damaged`] error,
//! never a panic. Fuzzed as `packed` (mr-fuzz).
//!
//! Integers are little-endian (`u32`, `u64`) or LEB128 varints.

/// Why bytes did not read back: where the reader stood, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {at}")]
pub struct Damaged {
    /// The offset of the read that failed.
    pub at: usize,
    /// What was wrong there.
    pub what: &'static str,
}

/// Appends the packed forms of values to a byte vector.
pub trait Writer {
    /// A little-endian `u32`.
    fn put_u32(&mut self, v: u32);
    /// A little-endian `u64`.
    fn put_u64(&mut self, v: u64);
    /// A LEB128 varint (1 to 10 bytes).
    fn put_varint(&mut self, v: u64);
    /// `bytes` after their length as a `u32` (read by [`Reader::bytes_u32`]).
    fn put_bytes_u32(&mut self, bytes: &[u8]);
    /// `bytes` after their length as a `u64` (read by [`Reader::bytes_u64`]).
    fn put_bytes_u64(&mut self, bytes: &[u8]);
    /// `bytes` after their length as a varint (read by
    /// [`Reader::bytes_varint`]).
    fn put_bytes_varint(&mut self, bytes: &[u8]);
}

impl Writer for Vec<u8> {
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes());
    }

    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes());
    }

    fn put_varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.push(v as u8);
    }

    fn put_bytes_u32(&mut self, bytes: &[u8]) {
        self.put_u32(bytes.len() as u32);
        self.extend_from_slice(bytes);
    }

    fn put_bytes_u64(&mut self, bytes: &[u8]) {
        self.put_u64(bytes.len() as u64);
        self.extend_from_slice(bytes);
    }

    fn put_bytes_varint(&mut self, bytes: &[u8]) {
        self.put_varint(bytes.len() as u64);
        self.extend_from_slice(bytes);
    }
}

/// Reads packed values from the front of a byte slice, every read checked
/// against its end.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, at: 0 }
    }

    /// How many bytes were read.
    pub fn position(&self) -> usize {
        self.at
    }

    /// How many bytes are left.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn damaged(&self, what: &'static str) -> Damaged {
        Damaged { at: self.at, what }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Damaged> {
        if n > self.remaining() {
            return Err(self.damaged("ends early"));
        }
        let piece = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(piece)
    }

    /// The next `N` bytes, as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], Damaged> {
        let piece = self.take(N)?;
        Ok(piece.try_into().expect("take gave N bytes"))
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, Damaged> {
        Ok(self.array::<1>()?[0])
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, Damaged> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, Damaged> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A LEB128 varint of at most ten bytes.
    pub fn varint(&mut self) -> Result<u64, Damaged> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.damaged("a varint runs past ten bytes"))
    }

    /// A count of items that take at least `min_item` bytes each (at least
    /// one), checked against what is left: a damaged count cannot make a
    /// caller allocate more than the input's size.
    pub fn count_u32(&mut self, min_item: usize) -> Result<usize, Damaged> {
        let n = self.u32()?;
        self.fits(u64::from(n), min_item)
    }

    /// As [`Reader::count_u32`], for a count written as a varint.
    pub fn count_varint(&mut self, min_item: usize) -> Result<usize, Damaged> {
        let n = self.varint()?;
        self.fits(n, min_item)
    }

    fn fits(&self, n: u64, min_item: usize) -> Result<usize, Damaged> {
        let need = n.saturating_mul(min_item.max(1) as u64);
        if need > self.remaining() as u64 {
            return Err(self.damaged("a count exceeds the bytes left"));
        }
        Ok(n as usize)
    }

    /// Bytes written by [`Writer::put_bytes_u32`].
    pub fn bytes_u32(&mut self) -> Result<&'a [u8], Damaged> {
        let n = self.count_u32(1)?;
        self.take(n)
    }

    /// Bytes written by [`Writer::put_bytes_u64`].
    pub fn bytes_u64(&mut self) -> Result<&'a [u8], Damaged> {
        let n = self.u64()?;
        let n = self.fits(n, 1)?;
        self.take(n)
    }

    /// Bytes written by [`Writer::put_bytes_varint`].
    pub fn bytes_varint(&mut self) -> Result<&'a [u8], Damaged> {
        let n = self.count_varint(1)?;
        self.take(n)
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        let rest = &self.bytes[self.at..];
        self.at = self.bytes.len();
        rest
    }

    /// Ok if every byte was read: a format that ends where its writer
    /// stopped has no trailing bytes.
    pub fn finish(&self) -> Result<(), Damaged> {
        match self.remaining() {
            0 => Ok(()),
            _ => Err(self.damaged("trailing bytes")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back() {
        let mut out = Vec::new();
        out.put_u32(7);
        out.put_u64(u64::MAX - 1);
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            out.put_varint(v);
        }
        out.put_bytes_u32(b"four");
        out.put_bytes_u64(b"");
        out.put_bytes_varint(b"x");
        out.push(9);
        let mut r = Reader::new(&out);
        assert_eq!(r.u32(), Ok(7));
        assert_eq!(r.u64(), Ok(u64::MAX - 1));
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(r.varint(), Ok(v));
        }
        assert_eq!(r.bytes_u32(), Ok(&b"four"[..]));
        assert_eq!(r.bytes_u64(), Ok(&b""[..]));
        assert_eq!(r.bytes_varint(), Ok(&b"x"[..]));
        assert_eq!(r.finish().unwrap_err().what, "trailing bytes");
        assert_eq!(r.u8(), Ok(9));
        assert_eq!(r.finish(), Ok(()));
        assert_eq!(
            r.u8().unwrap_err(),
            Damaged {
                at: out.len(),
                what: "ends early"
            }
        );
    }

    #[test]
    fn damage_is_an_error_that_says_where() {
        // A length far past the end, in each width.
        let mut out = Vec::new();
        out.put_u32(u32::MAX);
        assert_eq!(Reader::new(&out).bytes_u32().unwrap_err().at, 4);
        let mut out = Vec::new();
        out.put_u64(u64::MAX);
        assert!(Reader::new(&out).bytes_u64().is_err());
        // A count whose items could not fit, though its bytes could.
        let mut out = Vec::new();
        out.put_varint(3);
        out.extend_from_slice(&[0; 8]);
        assert!(Reader::new(&out).count_varint(4).is_err());
        assert_eq!(Reader::new(&out).count_varint(2), Ok(3));
        // A varint that never ends, and one past ten bytes.
        assert!(Reader::new(&[0x80, 0x80]).varint().is_err());
        let long = [0xff; 11];
        assert_eq!(
            Reader::new(&long).varint().unwrap_err().what,
            "a varint runs past ten bytes"
        );
    }
}
