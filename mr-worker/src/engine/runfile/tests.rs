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
    let mut p = RunFile::open(path, 7, 3)?.partition(r);
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
        let f = RunFile::open(&path, 7, 3).unwrap();
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
        RunFile::open(&path, 7, 3),
        Err(RunError::Missing { .. })
    ));
    write_sample(&path, false);
    assert!(matches!(
        RunFile::open(&path, 8, 3),
        Err(RunError::Corrupt { .. })
    ));
    assert!(matches!(
        RunFile::open(&path, 7, 4),
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
