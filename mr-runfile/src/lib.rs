//! The intermediate run file: one per map task, all R partitions in one file.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! header   magic "MRRUN\0\0\x01" (8) | map task u32 | R u32 | crc32c of the previous 16 bytes u32
//! blocks   per partition, in order: [len u32 | payload (len bytes) | crc32c(payload) u32]*
//!          payload = records: varint key len | varint value len | key | value
//!          records are sorted by key within a partition; a block holds whole records
//! index    per partition: offset u64 | length u64 | records u64, then crc32c of the index u32
//! footer   index offset u64 | R u32 | magic "MRFT" | crc32c of the previous 16 bytes u32
//! ```
//!
//! A reader of partition r reads the footer and index, then streams only
//! that partition's byte range block by block, checking each block's CRC32C:
//! a missing, truncated or corrupted file is reported, never misread, and no
//! file is ever read whole.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

mod segments;
pub use segments::{
    starts_map_segment, starts_segment, SegmentEvent, MAP_SEGMENT_EVERY, SEGMENT_EVERY,
};

const MAGIC: &[u8; 8] = b"MRRUN\0\0\x01";
const FOOTER_MAGIC: &[u8; 4] = b"MRFT";
const HEADER_LEN: u64 = 20;
const FOOTER_LEN: u64 = 20;
const INDEX_ENTRY: u64 = 24;
/// Target payload size of a block; a single larger record gets its own block.
pub const BLOCK_SIZE: usize = 64 << 10;
/// Largest block payload a reader accepts, and so the largest record (key,
/// value and their lengths) a writer takes: what bounds the memory a
/// damaged or hostile file or peer can make a reader allocate.
pub const MAX_BLOCK: usize = 256 << 20;
/// Largest key and value, together, an app may emit.
pub const MAX_PAIR: usize = MAX_BLOCK - 20;

/// What is wrong with a run file.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The file does not exist.
    #[error("{path}: missing")]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The file fails a format or checksum check.
    #[error("{path}: corrupt: {what}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What check failed.
        what: String,
    },
    /// A record too large for the format.
    #[error("{path}: a record of {bytes} bytes (key and value) exceeds the limit of {} MiB", MAX_BLOCK >> 20)]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The record's key and value lengths together.
        bytes: usize,
    },
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn get_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

/// Writes a run file partition by partition. Call [`RunWriter::push`] with
/// each partition's records in key order, [`RunWriter::end_partition`]
/// after each of the R partitions (empty ones too), then [`RunWriter::finish`].
pub struct RunWriter {
    out: BufWriter<File>,
    path: PathBuf,
    reduces: u32,
    pos: u64,
    block: Vec<u8>,
    index: Vec<(u64, u64, u64)>,
    part_start: u64,
    part_records: u64,
}

impl RunWriter {
    /// Creates `path` (truncating) for map task `map` with `reduces` partitions.
    pub fn create(path: &Path, map: u32, reduces: u32) -> Result<Self, RunError> {
        let io_err = |source| RunError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::create(path).map_err(io_err)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let mut header = Vec::with_capacity(HEADER_LEN as usize);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&map.to_le_bytes());
        header.extend_from_slice(&reduces.to_le_bytes());
        let crc = crc32c::crc32c(&header);
        header.extend_from_slice(&crc.to_le_bytes());
        out.write_all(&header).map_err(io_err)?;
        Ok(Self {
            out,
            path: path.to_path_buf(),
            reduces,
            pos: HEADER_LEN,
            block: Vec::with_capacity(BLOCK_SIZE + 64),
            index: Vec::with_capacity(reduces as usize),
            part_start: HEADER_LEN,
            part_records: 0,
        })
    }

    /// R, the number of partitions.
    pub fn reduces(&self) -> u32 {
        self.reduces
    }

    fn io(&self, source: io::Error) -> RunError {
        RunError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Appends a record to the current partition.
    pub fn push(&mut self, key: &[u8], value: &[u8]) -> Result<(), RunError> {
        if key.len() + value.len() > MAX_PAIR {
            return Err(RunError::TooLarge {
                path: self.path.clone(),
                bytes: key.len() + value.len(),
            });
        }
        if !self.block.is_empty() && self.block.len() + key.len() + value.len() + 20 > BLOCK_SIZE {
            self.flush_block()?;
        }
        put_varint(&mut self.block, key.len() as u64);
        put_varint(&mut self.block, value.len() as u64);
        self.block.extend_from_slice(key);
        self.block.extend_from_slice(value);
        self.part_records += 1;
        Ok(())
    }

    fn flush_block(&mut self) -> Result<(), RunError> {
        if self.block.is_empty() {
            return Ok(());
        }
        let len = self.block.len() as u32;
        let crc = crc32c::crc32c(&self.block);
        let r = (|| {
            self.out.write_all(&len.to_le_bytes())?;
            self.out.write_all(&self.block)?;
            self.out.write_all(&crc.to_le_bytes())
        })();
        r.map_err(|e| self.io(e))?;
        self.pos += 8 + self.block.len() as u64;
        self.block.clear();
        Ok(())
    }

    /// Closes the current partition.
    pub fn end_partition(&mut self) -> Result<(), RunError> {
        self.flush_block()?;
        self.index.push((
            self.part_start,
            self.pos - self.part_start,
            self.part_records,
        ));
        self.part_start = self.pos;
        self.part_records = 0;
        Ok(())
    }

    /// Writes the index and footer and flushes. Returns the file's size.
    pub fn finish(mut self) -> Result<u64, RunError> {
        assert_eq!(
            self.index.len(),
            self.reduces as usize,
            "RunWriter::finish before every partition was ended"
        );
        let mut tail =
            Vec::with_capacity(self.index.len() * INDEX_ENTRY as usize + 4 + FOOTER_LEN as usize);
        for &(off, len, n) in &self.index {
            tail.extend_from_slice(&off.to_le_bytes());
            tail.extend_from_slice(&len.to_le_bytes());
            tail.extend_from_slice(&n.to_le_bytes());
        }
        let crc = crc32c::crc32c(&tail);
        tail.extend_from_slice(&crc.to_le_bytes());
        let footer_start = tail.len();
        tail.extend_from_slice(&self.pos.to_le_bytes());
        tail.extend_from_slice(&self.reduces.to_le_bytes());
        tail.extend_from_slice(FOOTER_MAGIC);
        let crc = crc32c::crc32c(&tail[footer_start..]);
        tail.extend_from_slice(&crc.to_le_bytes());
        self.out.write_all(&tail).map_err(|e| self.io(e))?;
        self.out.flush().map_err(|e| self.io(e))?;
        Ok(self.pos + tail.len() as u64)
    }
}

/// An opened run file whose header, index and footer checked out.
pub struct RunFile {
    file: File,
    path: PathBuf,
    index: Vec<(u64, u64, u64)>,
}

impl RunFile {
    /// Opens `path`, expecting map task `map`'s output (any map's, with
    /// None) with `reduces` partitions.
    pub fn open(path: &Path, map: Option<u32>, reduces: u32) -> Result<Self, RunError> {
        let corrupt = |what: &str| RunError::Corrupt {
            path: path.to_path_buf(),
            what: what.to_string(),
        };
        let file = File::open(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => RunError::Missing {
                path: path.to_path_buf(),
            },
            _ => RunError::Io {
                path: path.to_path_buf(),
                source: e,
            },
        })?;
        let io_err = |source| RunError::Io {
            path: path.to_path_buf(),
            source,
        };
        let size = file.metadata().map_err(io_err)?.len();
        let min = HEADER_LEN + u64::from(reduces) * INDEX_ENTRY + 4 + FOOTER_LEN;
        if size < min {
            return Err(corrupt(&format!(
                "truncated ({size} bytes, at least {min} expected)"
            )));
        }
        let mut header = [0u8; HEADER_LEN as usize];
        file.read_exact_at(&mut header, 0).map_err(io_err)?;
        if &header[..8] != MAGIC || crc32c::crc32c(&header[..16]).to_le_bytes() != header[16..20] {
            return Err(corrupt("bad header"));
        }
        let got_map = u32::from_le_bytes(header[8..12].try_into().unwrap());
        let got_r = u32::from_le_bytes(header[12..16].try_into().unwrap());
        if map.is_some_and(|m| m != got_map) || got_r != reduces {
            let map = map.map_or("any map".into(), |m| format!("map {m}"));
            return Err(corrupt(&format!(
                "holds map {got_map} with {got_r} partitions, expected {map} with {reduces}"
            )));
        }
        let mut footer = [0u8; FOOTER_LEN as usize];
        file.read_exact_at(&mut footer, size - FOOTER_LEN)
            .map_err(io_err)?;
        if &footer[12..16] != FOOTER_MAGIC
            || crc32c::crc32c(&footer[..16]).to_le_bytes() != footer[16..20]
        {
            return Err(corrupt("bad footer (truncated or overwritten)"));
        }
        let index_off = u64::from_le_bytes(footer[..8].try_into().unwrap());
        let index_len = u64::from(reduces) * INDEX_ENTRY;
        // Every length and offset read from the file is checked without
        // overflow: a wrapped sum could pass a check it should fail.
        let index_end = index_off.checked_add(index_len + 4 + FOOTER_LEN);
        if index_end != Some(size) {
            return Err(corrupt("index position does not match file size"));
        }
        let mut raw = vec![0u8; index_len as usize + 4];
        file.read_exact_at(&mut raw, index_off).map_err(io_err)?;
        let (body, crc) = raw.split_at(index_len as usize);
        if crc32c::crc32c(body).to_le_bytes() != crc {
            return Err(corrupt("index checksum mismatch"));
        }
        let index: Vec<(u64, u64, u64)> = body
            .chunks_exact(INDEX_ENTRY as usize)
            .map(|e| {
                let f = |i: usize| u64::from_le_bytes(e[i..i + 8].try_into().unwrap());
                (f(0), f(8), f(16))
            })
            .collect();
        let inside = |off: u64, len: u64| {
            off >= HEADER_LEN && off.checked_add(len).is_some_and(|end| end <= index_off)
        };
        if index.iter().any(|&(off, len, _)| !inside(off, len)) {
            return Err(corrupt("index points outside the data"));
        }
        Ok(Self {
            file,
            path: path.to_path_buf(),
            index,
        })
    }

    /// Where partition `r` lies in the file: (offset, length).
    pub fn extent(&self, r: u32) -> (u64, u64) {
        let (off, len, _) = self.index[r as usize];
        (off, len)
    }

    /// Reads `buf.len()` bytes at `offset` of the file.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), RunError> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| RunError::Io {
                path: self.path.clone(),
                source: e,
            })
    }

    /// Number of records in partition `r`.
    pub fn records(&self, r: u32) -> u64 {
        self.index[r as usize].2
    }

    /// A streaming reader of partition `r`.
    pub fn partition(self, r: u32) -> PartitionReader {
        let (off, len, _) = self.index[r as usize];
        PartitionReader {
            file: self.file,
            path: self.path,
            pos: off,
            end: off + len,
            block: Vec::new(),
            block_at: off,
            cursor: 0,
            key: 0..0,
            value: 0..0,
            from: None,
            to: None,
        }
    }

    /// A reader of the records of partition `r` whose keys are in
    /// `from..to` (None: unbounded on that side), starting at the block at
    /// file offset `block`, which must be a block of that partition at or
    /// before the first such record (see [`PartitionReader::segments`]).
    /// An offset outside the partition is an error; one inside it but not
    /// at a block fails the block's checks, so it is never misread.
    pub fn partition_range(
        self,
        r: u32,
        block: u64,
        from: Option<&[u8]>,
        to: Option<&[u8]>,
    ) -> Result<PartitionReader, RunError> {
        let (off, len, _) = self.index[r as usize];
        if block < off || block > off + len {
            return Err(RunError::Corrupt {
                path: self.path,
                what: format!("no block of partition {r} at byte {block}"),
            });
        }
        let mut reader = self.partition(r);
        reader.pos = block;
        reader.block_at = block;
        reader.from = from.map(<[u8]>::to_vec);
        reader.to = to.map(<[u8]>::to_vec);
        Ok(reader)
    }
}

/// Streams the records of one partition, verifying each block's checksum.
pub struct PartitionReader {
    file: File,
    path: PathBuf,
    pos: u64,
    end: u64,
    block: Vec<u8>,
    /// Where the block in `block` begins in the file.
    block_at: u64,
    cursor: usize,
    key: Range<usize>,
    value: Range<usize>,
    /// Records with smaller keys are skipped (cleared once one is not).
    from: Option<Vec<u8>>,
    /// The partition ends, for this reader, at the first key not below it.
    to: Option<Vec<u8>>,
}

impl PartitionReader {
    /// A reader of a fetched partition: a file holding exactly one
    /// partition's blocks, as [`RunFile::extent`] delimits them.
    pub fn fetched(path: &Path) -> Result<Self, RunError> {
        let file = File::open(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => RunError::Missing {
                path: path.to_path_buf(),
            },
            _ => RunError::Io {
                path: path.to_path_buf(),
                source: e,
            },
        })?;
        let end = file
            .metadata()
            .map_err(|e| RunError::Io {
                path: path.to_path_buf(),
                source: e,
            })?
            .len();
        Ok(PartitionReader {
            file,
            path: path.to_path_buf(),
            pos: 0,
            end,
            block: Vec::new(),
            block_at: 0,
            cursor: 0,
            key: 0..0,
            value: 0..0,
            from: None,
            to: None,
        })
    }

    fn corrupt(&self, what: &str) -> RunError {
        RunError::Corrupt {
            path: self.path.clone(),
            what: format!("{what} at byte {}", self.pos),
        }
    }

    fn load_block(&mut self) -> Result<bool, RunError> {
        if self.pos >= self.end {
            return Ok(false);
        }
        if self.end - self.pos < 8 {
            return Err(self.corrupt("partition ends inside a block header"));
        }
        let mut len = [0u8; 4];
        self.file
            .read_exact_at(&mut len, self.pos)
            .map_err(|e| RunError::Io {
                path: self.path.clone(),
                source: e,
            })?;
        let len = u32::from_le_bytes(len) as u64;
        if len > MAX_BLOCK as u64 {
            return Err(self.corrupt(&format!(
                "a block of {len} bytes (more than any writer makes)"
            )));
        }
        // pos < end here and len < 2^32: no overflow.
        if self.end - self.pos - 8 < len {
            return Err(self.corrupt("block length runs past the partition"));
        }
        self.block.resize(len as usize + 4, 0);
        self.file
            .read_exact_at(&mut self.block, self.pos + 4)
            .map_err(|e| RunError::Io {
                path: self.path.clone(),
                source: e,
            })?;
        let crc_pos = len as usize;
        if crc32c::crc32c(&self.block[..crc_pos]).to_le_bytes() != self.block[crc_pos..] {
            return Err(self.corrupt("block checksum mismatch"));
        }
        self.block.truncate(crc_pos);
        self.block_at = self.pos;
        self.pos += 8 + len;
        self.cursor = 0;
        Ok(true)
    }

    /// Advances to the next record; false at the end of the partition
    /// (or of the range a reader from [`RunFile::partition_range`] reads).
    pub fn advance(&mut self) -> Result<bool, RunError> {
        loop {
            if !self.step()? {
                return Ok(false);
            }
            if let Some(from) = &self.from {
                if self.key() < from.as_slice() {
                    continue;
                }
                // Keys are sorted: none of the rest is below it either.
                self.from = None;
            }
            if self.to.as_deref().is_some_and(|to| self.key() >= to) {
                // Past the range: read nothing more.
                self.pos = self.end;
                self.block.clear();
                self.cursor = 0;
                return Ok(false);
            }
            return Ok(true);
        }
    }

    /// Steps to the next record of the partition, whatever its key.
    fn step(&mut self) -> Result<bool, RunError> {
        while self.cursor >= self.block.len() {
            if !self.load_block()? {
                return Ok(false);
            }
        }
        let (key, value) = self.parse_at(self.cursor)?;
        self.cursor = value.end;
        self.key = key;
        self.value = value;
        Ok(true)
    }

    /// The key's and value's places in the block of the record at `p`.
    fn parse_at(&self, mut p: usize) -> Result<(Range<usize>, Range<usize>), RunError> {
        let (Some(kl), Some(vl)) = (
            get_varint(&self.block, &mut p),
            get_varint(&self.block, &mut p),
        ) else {
            return Err(self.corrupt("bad record header"));
        };
        // Checked: lengths from the file must not wrap past the check.
        let end = usize::try_from(kl)
            .ok()
            .zip(usize::try_from(vl).ok())
            .and_then(|(kl, vl)| p.checked_add(kl)?.checked_add(vl).map(|e| (p + kl, e)));
        let Some((key_end, end)) = end.filter(|&(_, e)| e <= self.block.len()) else {
            return Err(self.corrupt("record runs past its block"));
        };
        Ok((p..key_end, key_end..end))
    }

    /// The current record's key (valid after `advance` returned true).
    #[inline]
    pub fn key(&self) -> &[u8] {
        &self.block[self.key.clone()]
    }

    /// The current record's value.
    #[inline]
    pub fn value(&self) -> &[u8] {
        &self.block[self.value.clone()]
    }
}

#[cfg(test)]
mod tests;
