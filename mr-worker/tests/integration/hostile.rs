//! A hostile shuffle peer: a member of the job (it has the token) that
//! claims map outputs and then serves them with lies: a partition longer
//! than its map output, more bytes than asked for, a length that changes
//! between chunks, garbage, a block header promising gigabytes. Reducers
//! must give up on each with a typed error, the maps run again on honest
//! workers, and the job's output is right.

use crate::util::{data_files, sorted_lines, TestDir};
use futures::StreamExt;
use mr_protocol::{
    Assignment, Counters, FetchChunk, FetchError, FetchRequest, RegisterRequest, Shuffle,
    TaskOutput, Work, WorkerPlace, MAX_CHUNK,
};
use std::time::Duration;
use tarpc::context;
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Bincode;

/// How the hostile server answers for a map (by its number).
#[derive(Clone, Copy, Debug)]
enum Lie {
    /// A partition of a terabyte (the map said its output has 1 MiB).
    Overlong,
    /// A 1000-byte partition, answered with a whole chunk.
    Overrun,
    /// One length, then another.
    LengthChanges,
    /// Bytes that are no blocks.
    Garbage,
    /// A block header promising 3 GiB.
    HugeBlock,
}

const LIES: [Lie; 5] = [
    Lie::Overlong,
    Lie::Overrun,
    Lie::LengthChanges,
    Lie::Garbage,
    Lie::HugeBlock,
];

#[derive(Clone)]
struct Liar;

impl Shuffle for Liar {
    async fn fetch(self, _: context::Context, req: FetchRequest) -> Result<FetchChunk, FetchError> {
        let noise = |n: usize| -> Vec<u8> {
            (0..n as u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
                .collect()
        };
        let chunk = |len: u64, data: Vec<u8>| {
            Ok(FetchChunk {
                partition_len: len,
                data: serde_bytes::ByteBuf::from(data),
            })
        };
        match LIES[req.map.0 as usize % LIES.len()] {
            Lie::Overlong => chunk(1 << 40, noise(4096)),
            Lie::Overrun => chunk(1000, noise(MAX_CHUNK as usize)),
            Lie::LengthChanges => {
                // A valid first block, then another length.
                let payload = vec![0u8; 100];
                let mut b = (payload.len() as u32).to_le_bytes().to_vec();
                b.extend_from_slice(&payload);
                b.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
                let len = if req.offset == 0 { 500_000 } else { 900_000 };
                chunk(len, b)
            }
            Lie::Garbage => chunk(4096, noise(4096)),
            Lie::HugeBlock => {
                let mut b = (3u32 << 30).to_le_bytes().to_vec();
                b.extend_from_slice(&noise(60_000));
                chunk(500_000, b)
            }
        }
    }
}

/// Serves [`Liar`] on a free loopback port; returns the address.
async fn serve_lies() -> String {
    let mut listener = tarpc::serde_transport::tcp::listen("127.0.0.1:0", Bincode::default)
        .await
        .unwrap();
    listener
        .config_mut()
        .max_frame_length(mr_protocol::MAX_FRAME);
    let addr = listener.local_addr().to_string();
    tokio::spawn(async move {
        listener
            .filter_map(|r| std::future::ready(r.ok()))
            .for_each(|transport| {
                tokio::spawn(
                    BaseChannel::with_defaults(transport)
                        .execute(Liar.serve())
                        .for_each(|call| async {
                            tokio::spawn(call);
                        }),
                );
                std::future::ready(())
            })
            .await;
    });
    addr
}

#[test]
fn a_lying_shuffle_peer_costs_map_reruns_not_the_job() {
    let t = TestDir::new();
    let files = data_files();
    let mut args = vec!["--app", "wc", "--reduces", "3", "--split-size", "256KiB"];
    args.extend(files.iter().map(String::as_str));
    args.extend(["--max-attempts", "2"]);
    let (mut coord, addr, log_path) = t.coordinator_logged(&args);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The liar joins, claims one map per lie (without running any), and
    // keeps its heartbeat going so its outputs stay "held" by it.
    let (taken, liar) = rt.block_on(async {
        let shuffle = serve_lies().await;
        let (c, token) = crate::util::join_coordinator(&addr).await;
        let settings = c
            .register(
                context::current(),
                RegisterRequest {
                    app: "wc".into(),
                    whole_file: false,
                    record_size: 0,
                    total_order: false,
                    host: "liar".into(),
                    pid: 1,
                    capacity: 1,
                    token: token.clone(),
                    embedded_by: None,
                    build: mr_build::BUILD_ID.into(),
                },
            )
            .await
            .unwrap()
            .unwrap();
        let me = settings.worker;
        let place = WorkerPlace {
            shared: false,
            shuffle: Some(shuffle),
            local_inputs: vec![u64::MAX; settings.inputs.len().div_ceil(64)],
        };
        c.announce(context::current(), me, place)
            .await
            .unwrap()
            .unwrap();
        let mut taken = Vec::new();
        while taken.len() < LIES.len() {
            match c
                .request_task(context::current(), me)
                .await
                .unwrap()
                .unwrap()
            {
                Assignment::Work(Work::Map(w)) => {
                    let out = Ok(TaskOutput::Map(Counters {
                        map_output_bytes: 1 << 20,
                        ..Counters::default()
                    }));
                    c.report(context::current(), me, w.attempt, out, false)
                        .await
                        .unwrap()
                        .unwrap();
                    taken.push(w.task.0);
                }
                other => panic!("expected a map, got {other:?}"),
            }
        }
        tokio::spawn(async move {
            loop {
                if c.heartbeat(context::current(), me, vec![]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        (taken, me.0)
    });
    // Honest workers do the rest, and meet the lies when they reduce.
    let w1 = t.worker(&addr, "wc");
    let _w2 = t.worker(&addr, "wc");
    let st = coord.wait_for(Duration::from_secs(120)).expect("job ends");
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(st.success(), "{log}");
    assert_eq!(
        sorted_lines(&t.outputs(t.path(), 3)),
        t.sequential("wc", &files)
    );
    // Every lie was caught as what it is, and its map ran again.
    for (lie, said) in [
        (
            Lie::Overlong,
            "was promised, but the map output has 1048576",
        ),
        (
            Lie::Overrun,
            "bytes arrived at offset 0 of a 1000-byte partition",
        ),
        (Lie::LengthChanges, "length changed from 500000 to 900000"),
        (Lie::HugeBlock, "a block of 3221225472 bytes"),
        (Lie::Garbage, "map-"),
    ] {
        assert!(
            log.contains(said),
            "{lie:?} not reported as '{said}':\n{log}"
        );
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.path().join("mr-report.json")).unwrap()).unwrap();
    let attempts = report["attempts"].as_array().unwrap();
    for m in taken {
        let honest = attempts.iter().any(|a| {
            a["phase"] == "map"
                && a["task"] == m
                && a["worker"] != liar
                && a["outcome"] == "succeeded"
        });
        assert!(honest, "map {m} was not run again by an honest worker");
    }
    drop(w1);
    drop(rt);
}
