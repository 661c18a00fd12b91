//! Seed inputs: one or more well-formed examples per target, made by the
//! product's own writers, so that the fuzzers start from bytes that get
//! past the first checks. `fuzz/run.sh` writes them into the corpus.

use mr_coordinator::journal::{self, JobIdentity, Record};
use mr_protocol::{AttemptId, Counters, MapTaskId, ReduceTaskId, WorkerId};
use std::io::Write;

/// Text with other scripts, a CRLF, invalid UTF-8 and no final newline.
const TEXT: &[u8] = b"the quick brown fox\njumps over\r\nthe lazy dog\n\
    \xc3\x9cn\xc3\xafc\xc3\xb6d\xc3\xa9 w\xc3\xb6rds, \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e, \
    \xce\x95\xce\xbb\xce\xbb\xce\xb7\xce\xbd; don't stop\n\xff\xfe broken \xe0\xa0 bytes\n\
    no newline at the end";

/// Every target's seeds: (target, seed bytes).
pub fn all() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    for run in run_files() {
        out.push(("run_file", run));
    }
    out.push(("journal", journal_bytes()));
    for m in messages() {
        out.push(("messages", m));
    }
    out.push(("fetch", fetch_stream()));
    out.push(("text", [&[7u8, 16][..], TEXT].concat()));
    for (i, c) in compressed().into_iter().enumerate() {
        out.push(("decompress", [&[i as u8, 32][..], &c].concat()));
    }
    for p in packed() {
        out.push(("packed", p));
    }
    out
}

/// A map outputs list as the coordinator encodes it (behind a first byte
/// of 0: no reader operations), and a run of reader operations over it.
fn packed() -> Vec<Vec<u8>> {
    use mr_protocol::messages::MapOutputRef;
    let list: mr_protocol::outputs::MapOutputs = (0..5u32)
        .map(|m| MapOutputRef {
            map: MapTaskId(m),
            attempt: AttemptId(u64::from(m) * 3),
            host: (m % 2 == 0).then(|| std::sync::Arc::from(format!("10.0.0.{m}:7071"))),
            in_job_dir: m == 3,
            bytes: 1 << (m * 9),
        })
        .collect();
    let encoded = list.encoded();
    let ops = [3u8, 6, 3, 3, 3, 3, 3, 7, 0x25, 9, 11];
    vec![
        [&[0u8][..], encoded].concat(),
        [&[ops.len() as u8][..], &ops, encoded].concat(),
    ]
}

fn records() -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut r: Vec<(Vec<u8>, Vec<u8>)> = ["apple", "banana", "cherry", "date"]
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_bytes().to_vec(), i.to_string().into_bytes()))
        .collect();
    r.push((b"fig".to_vec(), vec![b'x'; 300]));
    r
}

/// Run files of three partitions (one empty) and of one.
fn run_files() -> Vec<Vec<u8>> {
    use mr_worker::engine::runfile::RunWriter;
    let dir = crate::scratch_file("seed-run");
    let mut out = Vec::new();
    for reduces in [3u32, 1] {
        let mut w = RunWriter::create(&dir, 5, reduces).expect("seed run file");
        for r in 0..reduces {
            if r != 1 {
                for (k, v) in records() {
                    w.push(&k, &v).expect("seed record");
                }
            }
            w.end_partition().expect("seed partition");
        }
        w.finish().expect("seed run file");
        out.push(std::fs::read(&dir).expect("seed run file"));
    }
    let _ = std::fs::remove_file(&dir);
    out
}

fn journal_bytes() -> Vec<u8> {
    let identity = JobIdentity {
        inputs: vec![("/data/in-1.txt".into(), 1234, 1_700_000_000_000_000_000)],
        reduces: 3,
        split_size: 64 << 20,
        app: Some("wc".into()),
        output_dir: "/out".into(),
        shape: Vec::new(),
    };
    let mut counters = Counters::default();
    counters.app.insert("lines".into(), 12);
    let upload = mr_protocol::OutputUpload {
        url: "s3://bucket/out/mr-out-1".into(),
        upload_id: "upload-1".into(),
        parts: vec!["\"etag-1\"".into()],
        bytes: 77,
        crc32c: 0xdead_beef,
        tag: "0123456789abcdef0123456789abcdef".into(),
    };
    let records = [
        Record::Begin(identity),
        Record::Incarnation(0),
        Record::AppFixed {
            app: "wc".into(),
            whole_file: false,
        },
        Record::MapDone(MapTaskId(0), AttemptId(1), counters.clone(), None),
        Record::MapDone(
            MapTaskId(1),
            AttemptId(2),
            counters.clone(),
            Some("10.0.0.2:7000".into()),
        ),
        Record::MapLost(MapTaskId(1)),
        Record::ReduceDone(ReduceTaskId(0), AttemptId(3), counters.clone()),
        Record::Completing(ReduceTaskId(1), AttemptId(4), counters, upload),
    ];
    let mut bytes = journal::MAGIC.to_vec();
    for r in &records {
        bytes.extend(journal::encode(r));
    }
    bytes
}

fn messages() -> Vec<Vec<u8>> {
    use mr_protocol::service::{CoordinatorRequest, CoordinatorResponse};
    use mr_protocol::shuffle::{ShuffleRequest, ShuffleResponse};
    use mr_protocol::{FetchChunk, FetchRequest};
    use tarpc::{ClientMessage, Request, Response};
    fn frame<T: serde::Serialize>(which: u8, msg: &T) -> Vec<u8> {
        [vec![which], bincode::serialize(msg).expect("seed message")].concat()
    }
    fn request<T>(message: T) -> ClientMessage<T> {
        ClientMessage::Request(Request {
            context: tarpc::context::current(),
            id: 7,
            message,
        })
    }
    let fetch = FetchRequest {
        token: "secret".into(),
        job_id: "job-1".into(),
        map: MapTaskId(3),
        attempt: AttemptId(9),
        reduce: ReduceTaskId(2),
        offset: 4096,
        max: mr_protocol::MAX_CHUNK,
    };
    vec![
        frame(
            0,
            &request(CoordinatorRequest::RequestTask {
                worker: WorkerId(4),
            }),
        ),
        frame(
            0,
            &request(CoordinatorRequest::Heartbeat {
                worker: WorkerId(4),
                running: vec![AttemptId(1), AttemptId(2)],
            }),
        ),
        frame(
            1,
            &Response {
                request_id: 7,
                message: Ok(CoordinatorResponse::ReadInput(Ok(
                    serde_bytes::ByteBuf::from(TEXT.to_vec()),
                ))),
            },
        ),
        // A reduce assignment with everything a wire version may change:
        // map outputs here and elsewhere, and a reuse plan.
        frame(
            1,
            &Response {
                request_id: 7,
                message: Ok(CoordinatorResponse::RequestTask(Ok(
                    mr_protocol::Assignment::Work(mr_protocol::Work::Reduce(reduce_work())),
                ))),
            },
        ),
        frame(2, &request(ShuffleRequest::Fetch { req: fetch })),
        frame(
            3,
            &Response {
                request_id: 7,
                message: Ok(ShuffleResponse::Fetch(Ok(FetchChunk {
                    partition_len: 100,
                    data: serde_bytes::ByteBuf::from(vec![1, 2, 3]),
                }))),
            },
        ),
    ]
}

/// Reduce 1's work: a version of the map outputs list of three maps and
/// a plan reusing an earlier output's head and reducing the rest.
fn reduce_work() -> mr_protocol::ReduceWork {
    use mr_protocol::{OutputsVersion, ReduceReuse, ReusePiece};
    mr_protocol::ReduceWork {
        task: ReduceTaskId(1),
        attempt: AttemptId(42),
        outputs: OutputsVersion {
            version: 2,
            maps: 3,
        },
        skip: Vec::new(),
        index: true,
        reuse: Some(std::sync::Arc::new(ReduceReuse {
            previous: "mr-cache-earlier-1".into(),
            pieces: vec![
                ReusePiece::Copy {
                    start: None,
                    offset: 0,
                    len: 100,
                },
                ReusePiece::Reduce {
                    from: Some(b"m".to_vec()),
                    to: None,
                    blocks: vec![0, u64::MAX, 4096],
                },
            ],
        })),
    }
}

/// A promised length, a size limit, a cutting seed, then one partition's
/// blocks as a run file holds them.
fn fetch_stream() -> Vec<u8> {
    let run = run_files().remove(1);
    let (off, len) = (20usize, run.len() - 20 - 24 - 4 - 20);
    let blocks = &run[off..off + len];
    let mut out = (len as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&(run.len() as u32).to_le_bytes());
    out.extend_from_slice(&12345u32.to_le_bytes());
    out.extend_from_slice(blocks);
    out
}

/// TEXT compressed with gzip, zstd and bzip2 (the codec order of the target).
fn compressed() -> Vec<Vec<u8>> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(TEXT).expect("gzip");
    let gz = gz.finish().expect("gzip");
    let zst = zstd::encode_all(TEXT, 3).expect("zstd");
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    bz.write_all(TEXT).expect("bzip2");
    vec![gz, zst, bz.finish().expect("bzip2")]
}
