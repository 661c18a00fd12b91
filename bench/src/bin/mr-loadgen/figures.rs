//! What a load run measured and checked, and how it is printed (a table,
//! or one JSON object whose keys `bench/scale.sh` merges).

/// Everything measured and checked.
#[derive(Default)]
pub(crate) struct Figures {
    pub(crate) workers: u32,
    pub(crate) task_ms: u64,
    pub(crate) tasks: u64,
    pub(crate) acked: u64,
    pub(crate) elapsed_s: f64,
    pub(crate) requests: usize,
    pub(crate) request_p50_ms: f64,
    pub(crate) request_p99_ms: f64,
    pub(crate) request_max_ms: f64,
    /// p99 over the requests sent once every worker had joined (the
    /// others above count the join storm's too).
    pub(crate) request_p99_steady_ms: f64,
    /// Each worker's wait from its start to its first task: p99 and most.
    pub(crate) first_task_p99_ms: f64,
    pub(crate) first_task_max_ms: f64,
    /// p99 of each worker's wait from its start to its first connection.
    pub(crate) connected_p99_ms: f64,
    /// The largest `/status` answer polled during the run (KiB), and the
    /// slowest (ms), and how many polls.
    pub(crate) status_kib: f64,
    pub(crate) status_ms: f64,
    pub(crate) status_polls: usize,
    /// p99 of the requests answered with a map (after the join storm),
    /// and of those answered with a reduce.
    pub(crate) map_p99_ms: f64,
    pub(crate) reduce_p99_ms: f64,
    /// When the last worker joined.
    pub(crate) join_s: f64,
    pub(crate) report_p99_ms: f64,
    pub(crate) coordinator_cpu_s: f64,
    pub(crate) coordinator_wall_s: f64,
    pub(crate) coordinator_peak_mib: f64,
    pub(crate) loadgen_cpu_s: f64,
    pub(crate) journal_records: u64,
    pub(crate) journal_commits: u64,
    /// With --kill-at: acknowledged before the kill, missing from the
    /// journal, handed out again, and how soon work resumed.
    pub(crate) killed: Option<Killed>,
    pub(crate) problems: Vec<String>,
}

/// What a kill and restart showed.
pub(crate) struct Killed {
    pub(crate) acked_before: u64,
    pub(crate) journaled: u64,
    pub(crate) missing: u64,
    pub(crate) reissued: u64,
    pub(crate) first_task_s: f64,
    pub(crate) all_rejoined_s: Option<f64>,
}

impl Figures {
    pub(crate) fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    pub(crate) fn tasks_per_s(&self) -> f64 {
        self.acked as f64 / self.elapsed_s.max(1e-9)
    }

    pub(crate) fn print(&self, json: bool) {
        let per_s = |n: u64| n as f64 / self.coordinator_wall_s.max(1e-9);
        let mut rows: Vec<(&str, String)> = vec![
            ("rpc_workers", self.workers.to_string()),
            ("rpc_task_ms", self.task_ms.to_string()),
            ("rpc_tasks", self.tasks.to_string()),
            ("rpc_tasks_per_s", format!("{:.0}", self.tasks_per_s())),
            ("rpc_elapsed_s", format!("{:.3}", self.elapsed_s)),
            ("rpc_requests", self.requests.to_string()),
            ("rpc_p50_ms", format!("{:.3}", self.request_p50_ms)),
            ("rpc_p99_ms", format!("{:.3}", self.request_p99_ms)),
            ("rpc_max_ms", format!("{:.3}", self.request_max_ms)),
            (
                "rpc_steady_p99_ms",
                format!("{:.3}", self.request_p99_steady_ms),
            ),
            (
                "rpc_first_task_p99_ms",
                format!("{:.3}", self.first_task_p99_ms),
            ),
            (
                "rpc_first_task_max_ms",
                format!("{:.3}", self.first_task_max_ms),
            ),
            (
                "rpc_connected_p99_ms",
                format!("{:.3}", self.connected_p99_ms),
            ),
            ("rpc_status_kib", format!("{:.1}", self.status_kib)),
            ("rpc_status_ms", format!("{:.3}", self.status_ms)),
            ("rpc_status_polls", self.status_polls.to_string()),
            ("rpc_map_p99_ms", format!("{:.3}", self.map_p99_ms)),
            ("rpc_reduce_p99_ms", format!("{:.3}", self.reduce_p99_ms)),
            ("rpc_all_joined_s", format!("{:.3}", self.join_s)),
            ("rpc_report_p99_ms", format!("{:.3}", self.report_p99_ms)),
            (
                "rpc_coordinator_cpu_s",
                format!("{:.2}", self.coordinator_cpu_s),
            ),
            (
                "rpc_coordinator_cpu_pct",
                format!(
                    "{:.0}",
                    100.0 * self.coordinator_cpu_s / self.coordinator_wall_s.max(1e-9)
                ),
            ),
            (
                "rpc_coordinator_peak_mib",
                format!("{:.1}", self.coordinator_peak_mib),
            ),
            ("rpc_loadgen_cpu_s", format!("{:.2}", self.loadgen_cpu_s)),
            ("rpc_journal_records", self.journal_records.to_string()),
            ("rpc_journal_fsyncs", self.journal_commits.to_string()),
            (
                "rpc_journal_records_per_s",
                format!("{:.0}", per_s(self.journal_records)),
            ),
            (
                "rpc_journal_fsyncs_per_s",
                format!("{:.0}", per_s(self.journal_commits)),
            ),
        ];
        if let Some(k) = &self.killed {
            rows.extend([
                ("kill_acked_before", k.acked_before.to_string()),
                ("kill_journaled", k.journaled.to_string()),
                ("kill_acked_missing", k.missing.to_string()),
                ("kill_reissued", k.reissued.to_string()),
                ("resume_first_task_s", format!("{:.3}", k.first_task_s)),
                (
                    "resume_all_workers_s",
                    k.all_rejoined_s
                        .map_or("null".into(), |s| format!("{s:.3}")),
                ),
            ]);
        }
        rows.push(("rpc_ok", self.ok().to_string()));
        if json {
            let body: Vec<String> = rows.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
            println!("{{{}}}", body.join(", "));
        } else {
            println!("| figure | value |");
            println!("|---|---|");
            for (k, v) in rows {
                println!("| {k} | {v} |");
            }
        }
    }
}
