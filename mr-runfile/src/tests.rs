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

/// A run file of one partition holding `keys` (sorted), each once with a
/// value naming it, and three records for every picked key (as an app that
/// does not combine writes them); with many blocks.
fn write_keys(path: &Path, keys: &[Vec<u8>]) -> Records {
    let mut records = Records::new();
    for k in keys {
        let n = if starts_map_segment(k) { 3 } else { 1 };
        for i in 0..n {
            records.push((
                k.clone(),
                format!("{i}:{}", String::from_utf8_lossy(k)).into_bytes(),
            ));
        }
    }
    let mut w = RunWriter::create(path, 0, 1).unwrap();
    for (k, v) in &records {
        w.push(k, v).unwrap();
    }
    w.end_partition().unwrap();
    w.finish().unwrap();
    records
}

fn sample_keys(n: usize) -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("w{}", i * 7919 % 100_003).into_bytes())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

#[test]
fn about_one_key_in_segment_every_starts_a_segment() {
    let keys = sample_keys(100_000);
    let picked = keys.iter().filter(|k| starts_segment(k)).count() as u64;
    let expected = keys.len() as u64 / SEGMENT_EVERY;
    assert!(
        picked > expected / 2 && picked < expected * 2,
        "{picked} picked, about {expected} expected"
    );
    // A property of the key alone.
    assert!(keys
        .iter()
        .all(|k| starts_segment(k) == starts_segment(&k.clone())));
}

#[test]
fn segments_start_at_picked_keys_and_feed_every_record_once() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("run");
    let keys = sample_keys(60_000);
    let records = write_keys(&path, &keys);
    let mut starts: Vec<(Option<Vec<u8>>, u64)> = Vec::new();
    let mut lasts: Vec<Vec<u8>> = Vec::new();
    let mut blocks: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut fed = Vec::new();
    let mut sizes = Vec::new();
    RunFile::open(&path, None, 1)
        .unwrap()
        .partition(0)
        .segments(|e| match e {
            SegmentEvent::Start { key, block } => {
                assert_eq!(starts.len(), lasts.len(), "a start after an end");
                sizes.push(fed.len());
                starts.push((key.map(<[u8]>::to_vec), block))
            }
            SegmentEvent::Bytes(b) => fed.extend_from_slice(b),
            SegmentEvent::End { last } => lasts.push(last.to_vec()),
            SegmentEvent::Block { at, first } => blocks.push((at, first.to_vec())),
        })
        .unwrap();
    // Every block is told with its first key; reading from one with that
    // key as the lower bound starts at its first record.
    assert!(blocks.len() > 10, "{} blocks", blocks.len());
    for (at, first) in &blocks {
        let mut r = RunFile::open(&path, None, 1)
            .unwrap()
            .partition_range(0, *at, None, None)
            .unwrap();
        assert!(r.advance().unwrap());
        assert_eq!(r.key(), first.as_slice());
    }
    assert_eq!(starts.len(), lasts.len());
    // Each segment's last key is the one before the next segment's first.
    for (i, last) in lasts.iter().enumerate() {
        let next = starts.get(i + 1).map(|(k, _)| k.clone().unwrap());
        let want = match next {
            Some(n) => keys[keys.iter().position(|k| *k == n).unwrap() - 1].clone(),
            None => keys.last().unwrap().clone(),
        };
        assert_eq!(*last, want, "segment {i}");
    }
    // The bytes fed are the records' encodings, in order.
    let mut encoded = Vec::new();
    for (k, v) in &records {
        put_varint(&mut encoded, k.len() as u64);
        put_varint(&mut encoded, v.len() as u64);
        encoded.extend_from_slice(k);
        encoded.extend_from_slice(v);
    }
    assert_eq!(fed, encoded);
    // A head segment (the first key is not picked), then one per picked key.
    assert!(!starts_map_segment(&keys[0]));
    assert_eq!(starts[0].0, None);
    let picked: Vec<Vec<u8>> = keys
        .iter()
        .filter(|k| starts_map_segment(k))
        .cloned()
        .collect();
    let got: Vec<Vec<u8>> = starts[1..]
        .iter()
        .map(|(k, _)| k.clone().unwrap())
        .collect();
    assert_eq!(got, picked);
    assert!(sizes.windows(2).all(|w| w[0] < w[1]));
    // Reading from a segment's block with its key as the lower bound and
    // the next one's as the upper gives exactly that segment's records.
    for (i, (key, block)) in starts.iter().enumerate() {
        let to = starts.get(i + 1).and_then(|(k, _)| k.clone());
        let mut r = RunFile::open(&path, None, 1)
            .unwrap()
            .partition_range(0, *block, key.as_deref(), to.as_deref())
            .unwrap();
        let mut got = Vec::new();
        while r.advance().unwrap() {
            got.push((r.key().to_vec(), r.value().to_vec()));
        }
        let want: Records = records
            .iter()
            .filter(|(k, _)| {
                key.as_ref().is_none_or(|f| k >= f) && to.as_ref().is_none_or(|t| k < t)
            })
            .cloned()
            .collect();
        assert_eq!(got, want, "segment {i}");
    }
}

#[test]
fn a_range_reader_refuses_a_place_outside_its_partition_and_misreads_none() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("run");
    write_sample(&path, true);
    let open = || RunFile::open(&path, Some(7), 3).unwrap();
    let (off, len) = open().extent(2);
    assert!(open()
        .partition_range(2, off + len + 1, None, None)
        .is_err());
    assert!(open().partition_range(2, off - 1, None, None).is_err());
    // Inside the partition but not at a block: a checked error, not records.
    let mut r = open().partition_range(2, off + 3, None, None).unwrap();
    assert!(matches!(r.advance(), Err(RunError::Corrupt { .. })));
    // From the start with bounds: only the keys in range.
    let mut r = open()
        .partition_range(
            0,
            open().extent(0).0,
            Some(b"key000300"),
            Some(b"key000309"),
        )
        .unwrap();
    let mut keys = Vec::new();
    while r.advance().unwrap() {
        keys.push(String::from_utf8(r.key().to_vec()).unwrap());
    }
    assert_eq!(keys, ["key000300", "key000303", "key000306"]);
}
