//! Tests of the run file format: round trip, truncation, corruption.

use super::*;

/// Records of one partition, as (key, value) pairs.
type Records = Vec<(Vec<u8>, Vec<u8>)>;

fn write_sample(path: &Path, big: bool) -> Vec<Records> {
    let mut parts: Vec<Records> = vec![Vec::new(); 3];
    let n = if big { 20_000 } else { 5 };
    for i in 0..n {
        let k = format!("key{i:06}").into_bytes();
        parts[i % 3].push((k, format!("v{i}").into_bytes()));
    }
    parts[1].clear(); // an empty partition in the middle
    parts[2].push((b"zz".to_vec(), vec![b'x'; BLOCK_SIZE * 2])); // a record larger than a block
    for p in &mut parts {
        p.sort();
    }
    let mut w = RunWriter::create(path, 7, 3).unwrap();
    for p in &parts {
        for (k, v) in p {
            w.push(k, v).unwrap();
        }
        w.end_partition().unwrap();
    }
    w.finish().unwrap();
    parts
}

fn read_all(path: &Path, r: u32) -> Result<Records, RunError> {
    let mut p = RunFile::open(path, Some(7), 3)?.partition(r);
    let mut out = Vec::new();
    while p.advance()? {
        out.push((p.key().to_vec(), p.value().to_vec()));
    }
    Ok(out)
}

#[test]
fn round_trip_every_partition() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run");
    for big in [false, true] {
        let parts = write_sample(&path, big);
        let f = RunFile::open(&path, Some(7), 3).unwrap();
        assert_eq!(f.records(0), parts[0].len() as u64);
        for (r, expected) in parts.iter().enumerate() {
            assert_eq!(&read_all(&path, r as u32).unwrap(), expected);
        }
    }
}

#[test]
fn missing_and_wrong_identity_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run");
    assert!(matches!(
        RunFile::open(&path, Some(7), 3),
        Err(RunError::Missing { .. })
    ));
    write_sample(&path, false);
    assert!(matches!(
        RunFile::open(&path, Some(8), 3),
        Err(RunError::Corrupt { .. })
    ));
    assert!(matches!(
        RunFile::open(&path, Some(7), 4),
        Err(RunError::Corrupt { .. })
    ));
    // A cached output may have been made under another map number; the
    // partition count still has to match.
    assert!(RunFile::open(&path, None, 3).is_ok());
    assert!(matches!(
        RunFile::open(&path, None, 4),
        Err(RunError::Corrupt { .. })
    ));
}

#[test]
fn truncation_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run");
    write_sample(&path, true);
    let len = std::fs::metadata(&path).unwrap().len();
    for cut in [0, 10, len / 2, len - 1] {
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(cut).unwrap();
        let err = (0..3).find_map(|r| read_all(&path, r).err());
        assert!(
            matches!(err, Some(RunError::Corrupt { .. })),
            "cut at {cut}: {err:?}"
        );
        write_sample(&path, true);
    }
}

#[test]
fn every_flipped_byte_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run");
    write_sample(&path, false);
    let good = std::fs::read(&path).unwrap();
    // Flip one bit at each position in turn (stepping through the large record).
    let positions: Vec<usize> = (0..good.len())
        .step_by(97)
        .chain(good.len() - 30..good.len())
        .collect();
    for pos in positions {
        let mut bad = good.clone();
        bad[pos] ^= 0x10;
        std::fs::write(&path, &bad).unwrap();
        let results: Vec<_> = (0..3).map(|r| read_all(&path, r)).collect();
        assert!(
            results.iter().any(|r| r.is_err()),
            "flip at byte {pos} of {} went unnoticed",
            good.len()
        );
    }
}

/// A run file for map 7 with one partition per entry of `blocks` (each a
/// list of block payloads, checksummed correctly) and, if given, `index`
/// instead of the true one: bytes a buggy or hostile writer could make.
fn craft(path: &Path, blocks: &[Vec<Vec<u8>>], index: Option<Vec<(u64, u64, u64)>>) {
    let r = blocks.len() as u32;
    let mut f = Vec::new();
    f.extend_from_slice(MAGIC);
    f.extend_from_slice(&7u32.to_le_bytes());
    f.extend_from_slice(&r.to_le_bytes());
    let crc = crc32c::crc32c(&f);
    f.extend_from_slice(&crc.to_le_bytes());
    let mut real = Vec::new();
    for part in blocks {
        let start = f.len() as u64;
        for payload in part {
            f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            f.extend_from_slice(payload);
            f.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
        }
        real.push((start, f.len() as u64 - start, 1));
    }
    let index_off = f.len() as u64;
    let mut tail = Vec::new();
    for (off, len, n) in index.unwrap_or(real) {
        tail.extend_from_slice(&off.to_le_bytes());
        tail.extend_from_slice(&len.to_le_bytes());
        tail.extend_from_slice(&n.to_le_bytes());
    }
    let crc = crc32c::crc32c(&tail);
    tail.extend_from_slice(&crc.to_le_bytes());
    let footer = tail.len();
    tail.extend_from_slice(&index_off.to_le_bytes());
    tail.extend_from_slice(&r.to_le_bytes());
    tail.extend_from_slice(FOOTER_MAGIC);
    let crc = crc32c::crc32c(&tail[footer..]);
    tail.extend_from_slice(&crc.to_le_bytes());
    f.extend_from_slice(&tail);
    std::fs::write(path, f).unwrap();
}

/// A record header claiming `kl` and `vl` bytes, then `body`.
fn record(kl: u64, vl: u64, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    put_varint(&mut b, kl);
    put_varint(&mut b, vl);
    b.extend_from_slice(body);
    b
}

fn corrupt_saying(r: Result<Records, RunError>, what: &str) {
    match r {
        Err(RunError::Corrupt { what: w, .. }) => assert!(w.contains(what), "{w}"),
        other => panic!("expected Corrupt({what}), got {other:?}"),
    }
}

#[test]
fn record_lengths_that_wrap_are_corrupt_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run");
    // Lengths whose sum wraps around (in release builds), in every way.
    for (kl, vl) in [
        (u64::MAX, 2),
        (2, u64::MAX),
        (u64::MAX / 2 + 1, u64::MAX / 2 + 1),
        (1 << 40, 1),
    ] {
        craft(&path, &[vec![record(kl, vl, b"abcdef")]], None);
        corrupt_saying(read_all1(&path), "record runs past its block");
    }
}

fn read_all1(path: &Path) -> Result<Records, RunError> {
    let mut p = RunFile::open(path, Some(7), 1)?.partition(0);
    let mut out = Vec::new();
    while p.advance()? {
        out.push((p.key().to_vec(), p.value().to_vec()));
    }
    Ok(out)
}

#[test]
fn index_entries_that_wrap_or_overlap_are_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run");
    let good = vec![record(1, 1, b"kv")];
    for entry in [
        (u64::MAX - 3, 10, 1), // offset + length wraps to a small number
        (HEADER_LEN, u64::MAX, 1),
        (10, 4, 1), // inside the header
    ] {
        craft(&path, std::slice::from_ref(&good), Some(vec![entry]));
        corrupt_saying(read_all1(&path), "index points outside the data");
    }
}

#[test]
fn a_footer_whose_index_offset_wraps_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run");
    craft(&path, &[vec![record(1, 1, b"kv")]], None);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    // An index offset so large that adding the index and footer overflows.
    let off = u64::MAX - 8;
    bytes[n - 20..n - 12].copy_from_slice(&off.to_le_bytes());
    let crc = crc32c::crc32c(&bytes[n - 20..n - 4]);
    bytes[n - 4..].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    corrupt_saying(read_all1(&path), "index position");
}
