//! The fuzz targets' bodies: each takes arbitrary bytes, feeds them to one
//! parser of bytes that someone else chose (a run file, a journal, a wire
//! frame, a shuffle peer's answers, input text, a compressed file), and
//! checks that the answer is a typed error or a result that keeps the
//! parser's promises. A panic here is a bug in the product.
//!
//! The bodies live in the workspace, not in `fuzz/`, so that the corpus the
//! fuzzers found (and every input that once crashed) replays as an ordinary
//! test (`tests/corpus.rs`) with the stable toolchain and no libFuzzer;
//! `fuzz/` only wraps each one in `fuzz_target!`.
//!
//! Formats guarded by CRC-32C are fed with their checksums repaired by the
//! harness (after the fuzzer's mutation), or coverage would stop at the
//! first checksum: the checks themselves are covered by unit tests.

use mr_worker::engine::split::Framing;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub mod seeds;

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// The targets, by name: what `fuzz/run.sh` runs and the corpus test replays.
pub const TARGETS: &[(&str, Target)] = &[
    ("run_file", run_file),
    ("journal", journal),
    ("messages", messages),
    ("fetch", fetch),
    ("text", text),
    ("decompress", decompress),
    ("packed", packed),
];

static NEXT_THREAD: AtomicU64 = AtomicU64::new(0);
thread_local! {
    static THREAD: u64 = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
}

/// Where this thread's targets write the files their parsers open (tests
/// replay the corpus on several threads): under `$MR_FUZZ_SCRATCH` (the
/// fuzz script points it at a memory file system), else the system's
/// temporary directory.
fn scratch_dir() -> PathBuf {
    let base = std::env::var_os("MR_FUZZ_SCRATCH")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let thread = THREAD.with(|t| *t);
    base.join(format!("mr-fuzz-{}-{thread}", std::process::id()))
}

/// A scratch file of this thread's.
fn scratch_file(name: &str) -> PathBuf {
    let dir = scratch_dir();
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir.join(name)
}

/// Removes this thread's scratch files.
pub fn cleanup() {
    let _ = std::fs::remove_dir_all(scratch_dir());
}

fn write(path: &Path, data: &[u8]) {
    std::fs::write(path, data).expect("scratch file written");
}

fn le_u32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        data.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn le_u64(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        data.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

fn put_crc(data: &mut [u8], of: std::ops::Range<usize>, at: usize) {
    if of.start <= of.end
        && of.end <= data.len()
        && at.checked_add(4).is_some_and(|e| e <= data.len())
    {
        let crc = crc32c::crc32c(&data[of]);
        data[at..at + 4].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Repairs the CRC of every `len u32 | payload | crc u32` block found by
/// walking `data[start..end]`.
fn repair_blocks(data: &mut [u8], start: usize, end: usize) {
    let mut p = start;
    while let Some(len) = le_u32(data, p) {
        let Some(next) = p.checked_add(8 + len as usize).filter(|&n| n <= end) else {
            break;
        };
        put_crc(data, p + 4..p + 4 + len as usize, p + 4 + len as usize);
        p = next;
    }
}

/// A run file (header, blocks, index, footer), opened as a reducer opens a
/// map output, every partition read record by record.
pub fn run_file(data: &[u8]) {
    use mr_worker::engine::runfile::RunFile;
    let mut data = data.to_vec();
    let n = data.len();
    // Repair what the structure the bytes describe would checksum: blocks
    // first (they lie inside), then the index, header and footer.
    if n >= 40 {
        let index_off = le_u64(&data, n - 20).unwrap_or(0) as usize;
        let reduces = le_u32(&data, 12).unwrap_or(0) as usize;
        let index_end = index_off.saturating_add(reduces.saturating_mul(24));
        if index_end.saturating_add(4) <= n - 20 {
            for r in 0..reduces.min(64) {
                let e = index_off.saturating_add(r * 24);
                let (off, len) = (le_u64(&data, e), le_u64(&data, e + 8));
                if let (Some(off), Some(len)) = (off, len) {
                    let end = off.saturating_add(len).min(index_off as u64) as usize;
                    repair_blocks(&mut data, off as usize, end);
                }
            }
            put_crc(&mut data, index_off..index_end, index_end);
        }
        put_crc(&mut data, n - 20..n - 4, n - 4);
    }
    put_crc(&mut data, 0..16, 16);
    let (Some(map), Some(reduces)) = (le_u32(&data, 8), le_u32(&data, 12)) else {
        return;
    };
    let path = scratch_file("run");
    write(&path, &data);
    for r in 0..reduces.min(16) {
        let Ok(file) = RunFile::open(&path, Some(map), reduces) else {
            return;
        };
        let (off, len) = file.extent(r);
        assert!(off.checked_add(len).is_some_and(|e| e <= n as u64));
        let mut reader = file.partition(r);
        let mut records = 0u64;
        while let Ok(true) = reader.advance() {
            // A record's bytes lie inside the partition it was read from.
            assert!((reader.key().len() + reader.value().len()) as u64 <= len);
            records += 1;
        }
        assert!(records <= len);
    }
}

/// A journal file's bytes, replayed as a restarted coordinator does.
pub fn journal(data: &[u8]) {
    use mr_coordinator::journal;
    let mut data = data.to_vec();
    // Any version's magic becomes this one's: the corpus, gathered over
    // earlier versions, keeps reaching the records (another version's
    // refusal is one comparison).
    if data.len() >= 8 && data.starts_with(b"MRJRNL") {
        data[..8].copy_from_slice(journal::MAGIC);
    }
    if data.len() > 8 {
        repair_blocks_journal(&mut data);
    }
    let Ok(replay) = journal::replay(&data) else {
        return;
    };
    assert!(replay.valid <= data.len() && replay.valid >= 8);
    // The valid prefix replays to the same state: what a restart that
    // truncated the torn tail sees next time.
    let again = journal::replay(&data[..replay.valid]).expect("the valid prefix replays");
    assert_eq!(again.valid, replay.valid);
    assert_eq!(again.recovered, replay.recovered);
    assert_eq!(again.identity, replay.identity);
    let _ = replay.recovered.unfinished_uploads();
}

/// Journal records are `len u32 | crc u32 | payload`: the checksum first.
fn repair_blocks_journal(data: &mut [u8]) {
    let mut p = 8;
    while let Some(len) = le_u32(data, p) {
        let Some(next) = p.checked_add(8 + len as usize).filter(|&n| n <= data.len()) else {
            break;
        };
        put_crc(data, p + 8..next, p + 4);
        p = next;
    }
}

/// One wire frame as each side of each service decodes it, at whatever
/// length the fuzzer makes (the transport allows up to
/// [`mr_protocol::MAX_FRAME`]); whatever decodes must encode and decode
/// back.
pub fn messages(data: &[u8]) {
    use mr_protocol::service::{CoordinatorRequest, CoordinatorResponse};
    use mr_protocol::shuffle::{ShuffleRequest, ShuffleResponse};
    use tarpc::{ClientMessage, Response};
    let Some((&which, frame)) = data.split_first() else {
        return;
    };
    // A request's context carries its deadline as time from now, so only
    // responses must come back identical.
    match which % 4 {
        0 => decode::<ClientMessage<CoordinatorRequest>>(frame, false),
        1 => decode::<Response<CoordinatorResponse>>(frame, true),
        2 => decode::<ClientMessage<ShuffleRequest>>(frame, false),
        _ => decode::<Response<ShuffleResponse>>(frame, true),
    }
}

/// Decodes `frame` with the transport's own codec; re-encodes what decodes.
fn decode<T>(frame: &[u8], same: bool)
where
    T: serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    use std::pin::Pin;
    use tarpc::tokio_serde::{Deserializer, Serializer};
    let mut codec = mr_protocol::wire::FrameCodec::<T, T>::default();
    let mut decode =
        |b: &[u8]| quietly(|| Pin::new(&mut codec).deserialize(&bytes::BytesMut::from(b)));
    let Ok(msg) = decode(frame) else {
        return;
    };
    let mut again = |m: &T| -> Option<T> {
        let bytes = Pin::new(&mut mr_protocol::wire::FrameCodec::<T, T>::default())
            .serialize(m)
            .expect("a decoded message encodes");
        decode(&bytes).ok()
    };
    // tarpc writes a ServerError's kind as an i32 and reads it as a u32,
    // which with bincode's varints turns one kind into another on each
    // trip until it settles on Other: so responses must come back
    // unchanged once settled, within a few trips. (A request's deadline is
    // relative to the clock, so requests need only decode again.)
    let mut prev = msg;
    for _ in 0..6 {
        let Some(next) = again(&prev) else {
            assert!(!same, "a decoded response does not decode once re-encoded");
            return;
        };
        if !same || format!("{prev:?}") == format!("{next:?}") {
            return;
        }
        prev = next;
    }
    panic!("a response still changes after six round trips: {prev:?}");
}

/// Runs `f` with no panic hook: the codec catches a panic inside tarpc's
/// decoding and refuses the frame, which is the behaviour under test, but
/// libFuzzer's hook would abort the process before the catch.
fn quietly<R>(f: impl FnOnce() -> R) -> R {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = f();
    std::panic::set_hook(hook);
    r
}

/// A shuffle peer's answers for one partition: a promised length and a
/// stream of blocks cut into answers of the fuzzer's sizes, taken as a
/// reducer takes them; what is accepted is then read record by record.
pub fn fetch(data: &[u8]) {
    use mr_protocol::FetchChunk;
    use mr_worker::engine::runfile::PartitionReader;
    use mr_worker::shuffle::fetch::Intake;
    let (Some(promised), Some(limit), Some(mut seed)) =
        (le_u32(data, 0), le_u32(data, 4), le_u32(data, 8))
    else {
        return;
    };
    let mut stream = data[12..].to_vec();
    let end = stream.len();
    repair_blocks(&mut stream, 0, end);
    let path = scratch_file("fetched");
    let file = std::fs::File::create(&path).expect("scratch file");
    let mut intake = Intake::new(file, u64::from(limit));
    let mut at = 0;
    let mut answers = 0;
    // What the first answer promised binds the rest.
    let mut first_len = None;
    // A peer answers until the reducer stops asking; one that keeps sending
    // past the promised end or sends nothing is refused, so this ends.
    loop {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let take = (seed as usize % 300).min(stream.len() - at);
        // Now and then the peer changes its story about the length.
        let partition_len = if seed % 61 == 0 {
            u64::from(promised) + 1
        } else {
            u64::from(promised)
        };
        let chunk = FetchChunk {
            partition_len,
            data: serde_bytes::ByteBuf::from(stream[at..at + take].to_vec()),
        };
        at += take;
        answers += 1;
        first_len.get_or_insert(partition_len);
        match intake.accept(&chunk) {
            Ok(true) => break,
            Ok(false) => assert!(answers <= end + 1, "an intake that never ends"),
            Err(_) => return,
        }
    }
    let Ok(taken) = intake.finish() else {
        return;
    };
    assert!(Some(taken) <= first_len);
    let written = std::fs::metadata(&path).expect("fetched file").len();
    assert_eq!(written, taken, "every byte taken was verified and written");
    let mut reader = PartitionReader::fetched(&path).expect("fetched file opens");
    while let Ok(true) = reader.advance() {}
}

/// Input text: split at the fuzzer's split size and aligned to lines (every
/// line in exactly one split), cut into chunks, and split into words
/// (against a plain reference splitter).
pub fn text(data: &[u8]) {
    use mr_worker::engine::split;
    let (Some(&size), Some(&target)) = (data.first(), data.get(1)) else {
        return;
    };
    let text = &data[2..];
    let size = usize::from(size) + 1;
    let mut pieces = Vec::new();
    let mut s = 0;
    while s < text.len() {
        let (a, b) = split::align(text, s, (s + size).min(text.len()));
        assert!(a <= b && b <= text.len());
        if a < b {
            // A split's lines start inside it.
            assert!(a >= s && a < s + size);
            assert!(a == 0 || text[a - 1] == b'\n');
            pieces.push((a, b));
        }
        s += size;
    }
    // Together the splits are the text, in order, once.
    let mut at = 0;
    for &(a, b) in &pieces {
        assert_eq!(a, at, "a gap or overlap at {at}");
        for (c, d) in split::chunks(text, a, b, usize::from(target)) {
            assert_eq!(c, at);
            assert!(d > c && d <= b);
            assert!(d == b || text[d - 1] == b'\n');
            at = d;
        }
        assert_eq!(at, b);
    }
    assert_eq!(at, text.len());

    let mut words = Vec::new();
    let mut last_end = 0;
    mr_apps::words::for_each_word(text, |w| {
        let start = w.as_ptr() as usize - text.as_ptr() as usize;
        assert!(!w.is_empty() && start >= last_end);
        last_end = start + w.len();
        words.push(std::str::from_utf8(w).expect("a word is valid UTF-8"));
    });
    // Invalid bytes are separators however they are decoded, so a lossy
    // decoding split on non-letters gives the same words.
    let lossy = String::from_utf8_lossy(text);
    let reference: Vec<&str> = lossy
        .split(|c: char| !mr_apps::words::is_letter(c))
        .filter(|w| !w.is_empty())
        .collect();
    assert_eq!(words, reference);
}

/// A compressed input file (the first byte picks the codec, the second
/// the chunk size), decoded into line-aligned chunks as a map task does.
pub fn decompress(data: &[u8]) {
    use mr_protocol::codec::Codec;
    use mr_worker::source::{Decompressed, RecordSource};
    let (Some(&which), Some(&target)) = (data.first(), data.get(1)) else {
        return;
    };
    let (codec, name) = match which % 3 {
        0 => (Codec::Gzip, "in.gz"),
        1 => (Codec::Zstd, "in.zst"),
        _ => (Codec::Bzip2, "in.bz2"),
    };
    let body = &data[2..];
    let path = scratch_file(name);
    write(&path, body);
    let part = mr_protocol::FilePart {
        name: name.to_string(),
        path,
        start: 0,
        end: body.len() as u64,
        file_len: body.len() as u64,
        version: None,
    };
    // The top bit asks for the file whole; the next for records of
    // `target` + 1 bytes; else lines.
    let framing = match which >> 6 {
        2 | 3 => Framing::WholeFile,
        1 => Framing::Fixed(usize::from(target) + 1),
        _ => Framing::Lines,
    };
    let Ok(mut source) = Decompressed::open(&part, codec, framing, usize::from(target) + 1) else {
        return;
    };
    let mut next_base = 0u64;
    let mut last_ended_line = true;
    while let Ok(Some(chunk)) = source.next_chunk() {
        // Chunks follow each other in the stream, each ends a line (but
        // the stream's last), and none comes after a chunk that did not.
        assert_eq!(chunk.base, next_base);
        assert!(last_ended_line, "a chunk after an unfinished line");
        next_base += chunk.data().len() as u64;
        let whole = framing == Framing::WholeFile;
        last_ended_line = match framing {
            Framing::WholeFile => true,
            // Whole records only (the stream's last too, or it failed).
            Framing::Fixed(n) => chunk.data().len() % n == 0,
            Framing::Lines => chunk.data().last().is_none_or(|&b| b == b'\n'),
        };
        if whole {
            break;
        }
    }
}

/// The hand-packed formats (`mr_protocol::packed`): the reader driven
/// through every kind of read by the input's first bytes, then the formats
/// built on it fed the bytes whole (the cache's partition indexes, and the
/// map outputs list, which must encode and decode back when it decodes).
/// A read succeeds within the bytes or fails; a count it accepts fits in
/// what is left; nothing panics.
pub fn packed(data: &[u8]) {
    use mr_protocol::packed::Reader;
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (ops, body) = rest.split_at(usize::from(n % 32).min(rest.len()));
    let mut r = Reader::new(body);
    for &op in ops {
        let min = usize::from(op >> 4) + 1;
        match op % 12 {
            0 => drop(r.u8()),
            1 => drop(r.u32()),
            2 => drop(r.u64()),
            3 => drop(r.varint()),
            4 => drop(r.bytes_u32()),
            5 => drop(r.bytes_u64()),
            6 => drop(r.bytes_varint()),
            7 | 8 => {
                let left = r.remaining();
                let count = match op % 12 {
                    7 => r.count_u32(min),
                    _ => r.count_varint(min),
                };
                if let Ok(count) = count {
                    assert!(
                        count * min <= left,
                        "a count of {count} x {min} bytes in {left}"
                    );
                }
            }
            9 => drop(r.array::<32>()),
            10 => drop(r.take(min)),
            _ => drop(r.finish()),
        }
        assert!(r.position() + r.remaining() == body.len());
    }
    let _ = mr_cache::partitions::decode_segments(data);
    let _ = mr_cache::partitions::decode_blocks(data);
    let framed = bincode::serialize(&serde_bytes::Bytes::new(data)).expect("bytes serialize");
    if let Ok(list) = bincode::deserialize::<mr_protocol::outputs::MapOutputs>(&framed) {
        let again = bincode::serialize(&list).expect("a list serializes");
        let back: mr_protocol::outputs::MapOutputs =
            bincode::deserialize(&again).expect("a list encoded here decodes");
        assert_eq!(back, list);
    }
}
