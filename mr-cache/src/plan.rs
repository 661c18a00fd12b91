//! Splits planned by content, for jobs that keep a cache: each input file
//! divides into pieces at content-defined cuts ([`crate::chunk`]), each
//! piece with the SHA-256 of its bytes, and the splits are made of pieces.
//! A split's content address then follows from its files' names and its
//! pieces' hashes, without reading anything again.
//!
//! Reading every input to hash it is the price of knowing what changed. A
//! file the system reports unchanged (same device, inode, size,
//! modification and change times, to the nanosecond: what `make` and git
//! trust, with the change time added, which no user call can set back) is
//! not read again: its pieces are kept in the cache under that identity.
//! An object input is known unchanged by its URL, ETag and size.

use crate::chunk::{cut_points, Cut};
use crate::{Cache, Key, Kind};
use mr_protocol::codec::Codec;
use mr_protocol::packed::{Damaged, Reader, Writer};
use mr_protocol::plan::{InputFile, PartRange, SplitPlan};
use rayon::prelude::*;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Bumped whenever cut points or piece hashes would come out differently
/// (a changed chunker only misses the cache, never misreads it).
const PIECES_VERSION: &[u8] = b"pieces-3";

/// A stretch of a file between two cuts, and the SHA-256 of its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// SHA-256 of the bytes.
    pub hash: [u8; 32],
    /// A hash of the last (at most) 64 bytes only: what decides whether a
    /// pack of small pieces ends after this one, so that an edit anywhere
    /// else in the piece leaves the packs as they were.
    pub tail: u64,
}

/// Bytes of a piece's end that [`Piece::tail`] hashes.
const TAIL: usize = 64;

/// Bytes in an encoded piece: start, end, hash, tail.
const ENCODED: usize = 56;

/// An input that cannot be planned by content.
#[derive(Debug, thiserror::Error)]
#[error("cannot read input {path} to plan it by content: {reason}")]
pub struct PlanError {
    /// The file.
    pub path: String,
    /// Why.
    pub reason: String,
}

/// Reads `bytes` of a file into pieces: cut at content-defined points near
/// `target` bytes where `cut` allows (nowhere: one piece).
pub fn pieces_of(bytes: &[u8], target: u64, cut: Cut) -> Vec<Piece> {
    let cuts = cut_points(bytes, target, cut);
    let mut bounds = vec![0u64];
    bounds.extend(cuts);
    bounds.push(bytes.len() as u64);
    bounds
        .windows(2)
        .map(|w| {
            let bytes = &bytes[w[0] as usize..w[1] as usize];
            let tail = sha256(&bytes[bytes.len().saturating_sub(TAIL)..]);
            Piece {
                start: w[0],
                end: w[1],
                hash: sha256(bytes),
                tail: u64::from_le_bytes(tail[..8].try_into().unwrap()),
            }
        })
        .collect()
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The pieces of every file in `files` (local files and objects), in
/// parallel, reusing what `cache` knows of files unchanged since.
/// Compressed files and whole-file apps' inputs are one piece each.
///
/// Besides one entry per file, the cache keeps one for the whole input
/// list (by the files' names): every file's identity and pieces, written
/// after each plan. A re-run over the same names then reads one entry
/// instead of one per file (one request rather than thousands, from an
/// object store), and takes from it the pieces of every file whose
/// identity still matches; only the others are looked up one by one.
pub fn all_pieces(
    files: &[InputFile],
    target: u64,
    cut: Cut,
    cache: Option<&Cache>,
) -> Result<Vec<Vec<Piece>>, PlanError> {
    let uncut = |f: &InputFile| match Codec::of(&f.name) {
        Some(_) => Cut::Never,
        None => cut,
    };
    let set = {
        let mut parts: Vec<&[u8]> = vec![PIECES_VERSION, b"set"];
        let (t, tag) = (target.to_le_bytes(), cut.tag());
        parts.push(&t);
        parts.push(&tag);
        for f in files {
            parts.push(f.name.as_bytes());
            parts.push(b"\0");
        }
        Key::of(&parts)
    };
    let known = cache
        .and_then(|c| c.take_bytes(Kind::Pieces, &set))
        .map(|b| decode_set(&b))
        .unwrap_or_default();
    let planned: Vec<(Vec<Piece>, Option<Key>, bool)> = files
        .par_iter()
        .map(|f| {
            let id = identity(f, target, uncut(f));
            if let Some(p) = id.as_ref().and_then(|id| known.get(id)) {
                if tiles(p, f.len) {
                    return Ok((p.clone(), id, false));
                }
            }
            let (pieces, id) = match mr_store::is_object_url(&f.name) {
                true => object_pieces(f, target, uncut(f), cache)?,
                false => file_pieces(&f.path, f.len, target, uncut(f), cache)?,
            };
            Ok((pieces, id, true))
        })
        .collect::<Result<_, PlanError>>()?;
    if let Some(c) = cache {
        if planned.iter().any(|(_, _, fresh)| *fresh) {
            // A cache that cannot take it only costs the next run reads.
            let _ = c.put_bytes(Kind::Pieces, &set, &encode_set(&planned));
        }
    }
    Ok(planned.into_iter().map(|(p, _, _)| p).collect())
}

/// What a file is known by while unchanged (None: it cannot be known, an
/// object without an ETag, or a file that cannot be looked at now).
fn identity(f: &InputFile, target: u64, cut: Cut) -> Option<Key> {
    match mr_store::is_object_url(&f.name) {
        true => object_identity(f, target, cut),
        false => {
            let meta = std::fs::metadata(&f.path).ok()?;
            (meta.len() == f.len).then(|| file_identity(&f.path, &meta, target, cut))
        }
    }
}

fn object_identity(f: &InputFile, target: u64, cut: Cut) -> Option<Key> {
    f.version.as_ref().map(|etag| {
        Key::of(&[
            PIECES_VERSION,
            b"object",
            f.name.as_bytes(),
            etag.as_bytes(),
            &f.len.to_le_bytes(),
            &target.to_le_bytes(),
            &cut.tag(),
        ])
    })
}

/// What the system says of a local file now: device, inode, size, and
/// modification and change times to the nanosecond (None: an object, or
/// a file that cannot be looked at). Equal stamps at two moments mean no
/// write came between them (a user may set the modification time back,
/// never the change time).
pub fn stamp(f: &InputFile) -> Option<Key> {
    if f.version.is_some() || mr_store::is_object_url(&f.name) {
        return None;
    }
    let meta = std::fs::metadata(&f.path).ok()?;
    let fields = written_fields(&meta);
    let parts: Vec<&[u8]> = fields.iter().map(|b| &b[..]).collect();
    Some(Key::of(&parts))
}

/// What a write to a file changes of its metadata: device, inode, size,
/// modification and change times (seconds, nanoseconds).
fn written_fields(meta: &std::fs::Metadata) -> [[u8; 8]; 7] {
    [
        meta.dev().to_le_bytes(),
        meta.ino().to_le_bytes(),
        meta.len().to_le_bytes(),
        meta.mtime().to_le_bytes(),
        meta.mtime_nsec().to_le_bytes(),
        meta.ctime().to_le_bytes(),
        meta.ctime_nsec().to_le_bytes(),
    ]
}

fn file_identity(path: &Path, meta: &std::fs::Metadata, target: u64, cut: Cut) -> Key {
    let fields = written_fields(meta);
    let (target, cut) = (target.to_le_bytes(), cut.tag());
    let mut parts: Vec<&[u8]> = vec![PIECES_VERSION, path.as_os_str().as_encoded_bytes()];
    parts.extend(fields.iter().map(|b| &b[..]));
    parts.extend([&target[..], &cut[..]]);
    Key::of(&parts)
}

/// The set entry: per file with an identity, the identity, its piece
/// count and its pieces as [`encode`] writes them.
fn encode_set(planned: &[(Vec<Piece>, Option<Key>, bool)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (pieces, id, _) in planned {
        let Some(id) = id else { continue };
        out.extend_from_slice(&id.0);
        out.put_u32(pieces.len() as u32);
        out.extend_from_slice(&encode(pieces));
    }
    out
}

/// What [`encode_set`] wrote; a set that does not parse is empty.
fn decode_set(b: &[u8]) -> std::collections::HashMap<Key, Vec<Piece>> {
    let mut r = Reader::new(b);
    let mut read = || {
        let mut out = std::collections::HashMap::new();
        while r.remaining() > 0 {
            let id = Key(r.array()?);
            let n = r.count_u32(ENCODED)?;
            let pieces = (0..n)
                .map(|_| read_piece(&mut r))
                .collect::<Result<Vec<Piece>, Damaged>>()?;
            out.insert(id, pieces);
        }
        Ok::<_, Damaged>(out)
    };
    read().unwrap_or_default()
}

/// The pieces of an object input. An object is known unchanged by its URL,
/// ETag and size (a store gives a rewritten object a new ETag): its pieces
/// are then kept in the cache under that identity. Otherwise it is read
/// once, pinned to the planned ETag, into a temporary file that is mapped
/// and cut like a local file (objects can be far larger than memory).
fn object_pieces(
    f: &InputFile,
    target: u64,
    cut: Cut,
    cache: Option<&Cache>,
) -> Result<(Vec<Piece>, Option<Key>), PlanError> {
    let failed = |reason: String| PlanError {
        path: f.name.clone(),
        reason,
    };
    // Without an ETag an object cannot be known unchanged: read every time.
    let identity = object_identity(f, target, cut);
    if let (Some(c), Some(id)) = (cache, &identity) {
        if let Some(pieces) = c
            .take_bytes(Kind::Pieces, id)
            .and_then(|p| decode(&p, f.len))
        {
            return Ok((pieces, identity));
        }
    }
    let pieces = match f.len {
        0 => pieces_of(&[], target, cut),
        _ => {
            // An anonymous file (unlinked from the start, 0600, opened
            // exclusively): no name another user could guess, link or
            // read, and nothing left behind whatever happens.
            let mut out = tempfile::tempfile().map_err(|e| {
                failed(format!(
                    "cannot make a temporary file in {}: {e}",
                    std::env::temp_dir().display()
                ))
            })?;
            let mut reader = mr_store::ObjectReader::new(&f.name, f.version.as_deref(), f.len);
            std::io::copy(&mut reader, &mut out).map_err(|e| failed(e.to_string()))?;
            let map = mr_mapped::MappedFile::map(&out).map_err(|e| failed(e.to_string()))?;
            if map.len() as u64 != f.len {
                return Err(failed(format!(
                    "read {} bytes of an object listed at {}",
                    map.len(),
                    f.len
                )));
            }
            pieces_of(&map, target, cut)
        }
    };
    if let (Some(c), Some(id)) = (cache, &identity) {
        // A cache that cannot take it only costs the next run a read.
        let _ = c.put_bytes(Kind::Pieces, id, &encode(&pieces));
    }
    Ok((pieces, identity))
}

fn file_pieces(
    path: &Path,
    len: u64,
    target: u64,
    cut: Cut,
    cache: Option<&Cache>,
) -> Result<(Vec<Piece>, Option<Key>), PlanError> {
    let failed = |reason: String| PlanError {
        path: path.display().to_string(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| failed(e.to_string()))?;
    let meta = file.metadata().map_err(|e| failed(e.to_string()))?;
    if meta.len() != len {
        return Err(failed(format!(
            "its size changed from {len} to {} bytes while the job was being planned",
            meta.len()
        )));
    }
    let identity = file_identity(path, &meta, target, cut);
    if let Some(p) = cache.and_then(|c| c.take_bytes(Kind::Pieces, &identity)) {
        if let Some(pieces) = decode(&p, len) {
            return Ok((pieces, Some(identity)));
        }
    }
    let pieces = match len {
        0 => pieces_of(&[], target, cut),
        _ => {
            // Guarded: a file truncated while it is hashed reads as zeros
            // (not a SIGBUS that kills the coordinator) and is refused
            // here by name. Changed in place, the stamps catch it.
            let map = mr_mapped::MappedFile::map(&file).map_err(|e| failed(e.to_string()))?;
            let pieces = pieces_of(&map, target, cut);
            if map.shrank() {
                return Err(failed(format!(
                    "it shrank below its {len} bytes while it was being read for planning \
                     (truncated by another process, say a log rotated by copytruncate); \
                     inputs must not change during a job"
                )));
            }
            pieces
        }
    };
    if let Some(c) = cache {
        // A cache that cannot take it only costs the next run a read.
        let _ = c.put_bytes(Kind::Pieces, &identity, &encode(&pieces));
    }
    Ok((pieces, Some(identity)))
}

fn encode(pieces: &[Piece]) -> Vec<u8> {
    let mut out = Vec::with_capacity(pieces.len() * ENCODED);
    for p in pieces {
        out.put_u64(p.start);
        out.put_u64(p.end);
        out.extend_from_slice(&p.hash);
        out.put_u64(p.tail);
    }
    out
}

/// The pieces `encode` wrote, if they tile `0..len` exactly.
fn decode(bytes: &[u8], len: u64) -> Option<Vec<Piece>> {
    if !bytes.len().is_multiple_of(ENCODED) {
        return None;
    }
    let mut r = Reader::new(bytes);
    let pieces = (0..bytes.len() / ENCODED)
        .map(|_| read_piece(&mut r))
        .collect::<Result<Vec<Piece>, Damaged>>()
        .ok()?;
    tiles(&pieces, len).then_some(pieces)
}

/// One piece as [`encode`] wrote it ([`ENCODED`] bytes).
fn read_piece(r: &mut Reader<'_>) -> Result<Piece, Damaged> {
    Ok(Piece {
        start: r.u64()?,
        end: r.u64()?,
        hash: r.array()?,
        tail: r.u64()?,
    })
}

/// Whether `pieces` tile `0..len` exactly.
fn tiles(pieces: &[Piece], len: u64) -> bool {
    let mut at = 0;
    for p in pieces {
        if p.start != at || p.end < p.start {
            return false;
        }
        at = p.end;
    }
    at == len && !pieces.is_empty()
}

/// The splits, made of pieces: a piece of at least half the target is a
/// split of its own; smaller ones (small files, a file's tail) are packed
/// together in order, a pack of at least half the target ending after a
/// piece whose end's hash says so (so inserting a file changes a pack or a
/// few, not every later one) or at twice the target. Returns the plan and, per split, what its content address is
/// made of: each part's file name and piece hash.
pub fn plan(files: &[InputFile], pieces: &[Vec<Piece>], target: u64) -> (SplitPlan, Vec<Key>) {
    let target = target.max(1);
    let mut out = Packer::default();
    for (i, (f, ps)) in files.iter().zip(pieces).enumerate() {
        for p in ps {
            let len = p.end - p.start;
            let big = len >= target / 2;
            if big {
                // Splits stay in input order: an open pack ends first.
                out.close();
            }
            out.add(i, f, p);
            // A pack of at least half the target ends after a piece with
            // probability 2 len / target, drawn from the hash of the
            // piece's last bytes, and at twice the target for sure: packs
            // average the target and stay within a factor of two of it
            // (map tasks of like sizes), and whether one ends here depends
            // on this piece's end and on how much the pack holds (so an
            // edit inside a piece moves no boundary: its pack's other maps,
            // and so the partitions of their outputs, stay as they were; a
            // new file changes its own pack and at most the next few).
            let draw = u128::from(p.tail);
            let ends = out.len >= target / 2 && draw < (u128::from(len) << 65) / u128::from(target);
            if big || ends || out.len >= target.saturating_mul(2) {
                out.close();
            }
        }
    }
    out.close();
    (SplitPlan::from_splits(out.splits), out.keys)
}

/// The splits made so far and the pack under way.
#[derive(Default)]
struct Packer {
    splits: Vec<Vec<PartRange>>,
    keys: Vec<Key>,
    pack: Vec<PartRange>,
    /// Each part's file name and piece hash, length-prefixed.
    parts: Vec<Vec<u8>>,
    len: u64,
}

impl Packer {
    /// Adds piece `p` of file number `i` to the pack.
    fn add(&mut self, i: usize, f: &InputFile, p: &Piece) {
        self.pack.push(PartRange {
            file: i as u32,
            start: p.start,
            end: p.end,
        });
        let mut b = Vec::with_capacity(f.name.len() + 48);
        b.extend_from_slice(&(f.name.len() as u64).to_le_bytes());
        b.extend_from_slice(f.name.as_bytes());
        b.extend_from_slice(&p.hash);
        self.parts.push(b);
        self.len += p.end - p.start;
    }

    /// Ends the pack, if any, as a split.
    fn close(&mut self) {
        if self.pack.is_empty() {
            return;
        }
        self.splits.push(std::mem::take(&mut self.pack));
        let refs: Vec<&[u8]> = self.parts.iter().map(Vec::as_slice).collect();
        self.keys.push(Key::of(&refs));
        self.parts.clear();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed;
        let mut out = Vec::new();
        while out.len() < n {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let words = 1 + (s >> 60) as usize;
            for w in 0..words {
                if w > 0 {
                    out.push(b' ');
                }
                out.extend_from_slice(format!("w{}", (s >> (w * 5)) % 5000).as_bytes());
            }
            out.push(b'\n');
        }
        out
    }

    fn write_inputs(dir: &Path, sizes: &[usize]) -> Vec<InputFile> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let path = dir.join(format!("in-{i:02}.txt"));
                std::fs::write(&path, lines(n, i as u64 + 1)).unwrap();
                InputFile {
                    name: format!("in-{i:02}.txt"),
                    len: std::fs::metadata(&path).unwrap().len(),
                    path,
                    version: None,
                }
            })
            .collect()
    }

    /// Every split's ranges, as (file, start, end).
    fn ranges(plan: &SplitPlan) -> Vec<Vec<(u32, u64, u64)>> {
        (0..plan.len())
            .map(|i| {
                plan.ranges(i)
                    .iter()
                    .map(|r| (r.file, r.start, r.end))
                    .collect()
            })
            .collect()
    }

    /// The splits' address parts for `files`, planned by content.
    fn keys_of(files: &[InputFile], target: u64) -> Vec<Key> {
        plan(
            files,
            &all_pieces(files, target, Cut::Lines, None).unwrap(),
            target,
        )
        .1
    }

    #[test]
    fn the_splits_tile_every_file_once_in_order() {
        let d = tempfile::tempdir().unwrap();
        // Large files, small ones, an empty one.
        let files = write_inputs(d.path(), &[300_000, 5_000, 0, 7_000, 120_000, 900]);
        let pieces = all_pieces(&files, 32 << 10, Cut::Lines, None).unwrap();
        let (plan, keys) = plan(&files, &pieces, 32 << 10);
        assert_eq!(keys.len(), plan.len());
        let mut next = vec![0u64; files.len()];
        let mut last_file = 0;
        for split in ranges(&plan) {
            for (f, start, end) in split {
                assert!(f >= last_file, "files in order");
                last_file = f;
                assert_eq!(start, next[f as usize], "no gap, no overlap");
                next[f as usize] = end;
            }
        }
        let lens: Vec<u64> = files.iter().map(|f| f.len).collect();
        assert_eq!(next, lens);
        // The large files were cut; the small ones were packed.
        assert!(plan.len() > 8 && plan.len() < 40, "{} splits", plan.len());
    }

    #[test]
    fn an_edit_in_one_of_many_files_changes_only_splits_near_it() {
        let d = tempfile::tempdir().unwrap();
        let sizes = vec![200_000; 16];
        let files = write_inputs(d.path(), &sizes);
        let target = 32 << 10;
        let before = keys_of(&files, target);
        // A line inserted in the middle of file 7.
        let path = &files[7].path;
        let mut bytes = std::fs::read(path).unwrap();
        let at = bytes.len() / 2 + memchr::memchr(b'\n', &bytes[bytes.len() / 2..]).unwrap() + 1;
        bytes.splice(at..at, b"inserted words here\n".iter().copied());
        std::fs::write(path, &bytes).unwrap();
        let mut edited = files.clone();
        edited[7].len = bytes.len() as u64;
        let after = keys_of(&edited, target);
        let changed = after.iter().filter(|k| !before.contains(k)).count();
        assert!(
            (1..=3).contains(&changed),
            "{changed} of {} splits changed",
            after.len()
        );
        // A new file appended to the inputs: only its splits (and at most
        // the last pack before it) are new.
        let mut more = edited.clone();
        let path = d.path().join("zz-new.txt");
        std::fs::write(&path, lines(100_000, 99)).unwrap();
        more.push(InputFile {
            name: "zz-new.txt".into(),
            len: std::fs::metadata(&path).unwrap().len(),
            path,
            version: None,
        });
        let appended = keys_of(&more, target);
        let new = appended.iter().filter(|k| !after.contains(k)).count();
        assert!((1..=6).contains(&new), "{new} new splits");
    }

    #[test]
    fn an_edit_inside_a_packed_file_changes_its_pack_alone_and_no_boundary() {
        let d = tempfile::tempdir().unwrap();
        // Forty small files, packed several to a split.
        let files = write_inputs(d.path(), &[6_000; 40]);
        let target = 32 << 10;
        let (plan_before, before) = {
            let pieces = all_pieces(&files, target, Cut::Lines, None).unwrap();
            plan(&files, &pieces, target)
        };
        assert!(plan_before.len() >= 4 && plan_before.len() < 20);
        let mut edited = files.clone();
        for f in [3, 17, 29] {
            // A line inserted in the middle of file f, then planned again.
            let path = &files[f].path;
            let mut bytes = std::fs::read(path).unwrap();
            let at =
                bytes.len() / 2 + memchr::memchr(b'\n', &bytes[bytes.len() / 2..]).unwrap() + 1;
            bytes.splice(at..at, b"an inserted line\n".iter().copied());
            std::fs::write(path, &bytes).unwrap();
            edited[f].len = bytes.len() as u64;
            let pieces = all_pieces(&edited, target, Cut::Lines, None).unwrap();
            let (plan_after, after) = plan(&edited, &pieces, target);
            // The same files in the same splits: the maps of the other
            // splits give the same outputs, partition for partition.
            let files_of = |p: &SplitPlan| {
                ranges(p)
                    .iter()
                    .map(|s| s.iter().map(|r| r.0).collect::<Vec<_>>())
                    .collect::<Vec<_>>()
            };
            assert_eq!(files_of(&plan_after), files_of(&plan_before));
            let changed = (0..after.len()).filter(|&i| after[i] != before[i]).count();
            assert_eq!(
                changed,
                [3, 17, 29].iter().position(|&x| x == f).unwrap() + 1
            );
        }
    }

    #[test]
    fn pieces_are_kept_for_unchanged_files_and_recomputed_for_changed_ones() {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::open(&d.path().join("cache")).unwrap();
        let files = write_inputs(d.path(), &[100_000, 50_000, 70_000]);
        let first = all_pieces(&files, 16 << 10, Cut::Lines, Some(&cache)).unwrap();
        assert_eq!(
            first,
            all_pieces(&files, 16 << 10, Cut::Lines, None).unwrap()
        );
        // One entry per file, and one for the whole list.
        assert_eq!(cache.entries_of(Kind::Pieces), 4);
        assert_eq!(
            all_pieces(&files, 16 << 10, Cut::Lines, Some(&cache)).unwrap(),
            first
        );
        // Rewritten with other bytes of the same size: another identity.
        let mut bytes = std::fs::read(&files[0].path).unwrap();
        bytes[10] = if bytes[10] == b'w' { b'v' } else { b'w' };
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(&files[0].path, &bytes).unwrap();
        let again = all_pieces(&files, 16 << 10, Cut::Lines, Some(&cache)).unwrap();
        assert_ne!(again[0][0].hash, first[0][0].hash);
        assert_eq!(again[1..], first[1..]);
        assert_eq!(
            again,
            all_pieces(&files, 16 << 10, Cut::Lines, None).unwrap()
        );
        // The changed file's new entry; the list's entry is rewritten.
        assert_eq!(cache.entries_of(Kind::Pieces), 5);
        // With every per-file entry gone, the list's entry alone plans
        // the unchanged files (and it is exactly what reading gives).
        let dir = d.path().join("cache/mr-cache-v2/pieces");
        let data: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "data"))
            .collect();
        // The list's entry holds every file's pieces: the largest.
        let set = data
            .iter()
            .max_by_key(|p| std::fs::metadata(p).unwrap().len())
            .unwrap();
        for p in &data {
            if p != set {
                std::fs::remove_file(p.with_extension("meta")).unwrap();
            }
        }
        assert_eq!(cache.entries_of(Kind::Pieces), 1);
        assert_eq!(
            all_pieces(&files, 16 << 10, Cut::Lines, Some(&cache)).unwrap(),
            again
        );
        // Nothing was read again (which would have kept per-file entries).
        assert_eq!(cache.entries_of(Kind::Pieces), 1);
        // A size that changed since the listing is refused, naming the file.
        let mut stale = files.clone();
        stale[0].len += 1;
        let e = all_pieces(&stale, 16 << 10, Cut::Lines, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("in-00.txt") && e.contains("size changed"), "{e}");
    }
}
