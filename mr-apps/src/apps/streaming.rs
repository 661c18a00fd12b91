//! Streaming apps, as Hadoop Streaming: map and reduce are any shell
//! commands that read lines on stdin and write `key<TAB>value` lines, so a
//! job can be written in awk, Python or anything else.
//!
//! Map runs the map command once per chunk of whole lines (several run at
//! once, one per thread), with `MR_INPUT_FILE` set to the input's name, and
//! emits each output line as a pair (a line without a tab is a key with an
//! empty value). Reduce runs the reduce command once per reduce task over
//! the partition's pairs, sorted by key, as `key<TAB>value` lines; each line
//! it prints becomes an output line, its first tab turned into the space of
//! the `key value` output format. Keys and values must not contain tabs or
//! newlines. A command that exits non-zero fails the attempt with its status
//! and the end of its stderr, like a panic in a built-in app.

use crate::{App, Emit, Values};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};

/// A streaming app made of two shell commands.
#[derive(Debug, Clone)]
pub struct Streaming {
    name: String,
    map_cmd: String,
    reduce_cmd: String,
}

impl Streaming {
    /// The app of `map_cmd` and `reduce_cmd`, named by [`app_name`].
    pub fn new(map_cmd: &str, reduce_cmd: &str) -> Streaming {
        Streaming {
            name: app_name(map_cmd, reduce_cmd),
            map_cmd: map_cmd.to_string(),
            reduce_cmd: reduce_cmd.to_string(),
        }
    }
}

/// The app name of a streaming job: `streaming-` and a hash of both
/// commands, so a coordinator can tell workers running other commands
/// apart. The coordinator and its workers both derive it, so it must never
/// change between versions that may meet in one job.
pub fn app_name(map_cmd: &str, reduce_cmd: &str) -> String {
    let mut bytes = Vec::with_capacity(map_cmd.len() + 1 + reduce_cmd.len());
    bytes.extend_from_slice(map_cmd.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(reduce_cmd.as_bytes());
    format!("streaming-{:08x}", crate::fnv1a(&bytes))
}

/// Starts `sh -c cmd` with all three pipes.
pub fn spawn(cmd: &str, envs: &[(&str, &str)]) -> std::io::Result<Child> {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .envs(envs.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
}

/// Reads all of `r`, keeping the last 2 KiB (for error messages).
pub fn tail_of(mut r: impl Read) -> String {
    let mut all = Vec::new();
    let _ = r.read_to_end(&mut all);
    let start = all.len().saturating_sub(2048);
    String::from_utf8_lossy(&all[start..]).trim().to_string()
}

/// Panics with a message naming the command and why it failed.
pub fn command_failed(what: &str, cmd: &str, status: Option<ExitStatus>, err: &str) -> ! {
    let how = status.map_or("could not be run".to_string(), |s| format!("failed ({s})"));
    panic!("{what} command `{cmd}` {how}: {err}")
}

/// Splits an output line into key and value at its first tab.
pub fn split_pair(line: &[u8]) -> (&[u8], &[u8]) {
    match line.iter().position(|&b| b == b'\t') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &[]),
    }
}

impl App for Streaming {
    fn name(&self) -> &str {
        &self.name
    }

    fn map(&self, filename: &str, chunk: &[u8], emit: &mut dyn Emit) {
        let mut child = spawn(&self.map_cmd, &[("MR_INPUT_FILE", filename)])
            .unwrap_or_else(|e| command_failed("map", &self.map_cmd, None, &e.to_string()));
        let mut stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        // Feed and drain at once: either side may fill its pipe first.
        let err = std::thread::scope(|s| {
            s.spawn(move || {
                // A command may stop reading early (e.g. `head`); not an error here.
                let _ = stdin.write_all(chunk);
            });
            let err = s.spawn(move || tail_of(stderr));
            let mut out = BufReader::with_capacity(1 << 16, stdout);
            let mut line = Vec::new();
            while out.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                let l = line.strip_suffix(b"\n").unwrap_or(&line);
                if !l.is_empty() {
                    let (k, v) = split_pair(l);
                    emit.emit(k, v);
                }
                line.clear();
            }
            err.join().unwrap_or_default()
        });
        match child.wait() {
            Ok(st) if st.success() => {}
            Ok(st) => command_failed("map", &self.map_cmd, Some(st), &err),
            Err(e) => command_failed("map", &self.map_cmd, None, &e.to_string()),
        }
    }

    fn reduce_command(&self) -> Option<&str> {
        Some(&self.reduce_cmd)
    }

    /// Per-key fallback (the engine normally streams a whole partition
    /// through [`App::reduce_command`]): one process for this key's values.
    fn reduce(&self, key: &[u8], values: &mut dyn Values, out: &mut Vec<u8>) {
        let mut input = Vec::new();
        while let Some(v) = values.next_value() {
            input.extend_from_slice(key);
            input.push(b'\t');
            input.extend_from_slice(v);
            input.push(b'\n');
        }
        let mut child = spawn(&self.reduce_cmd, &[])
            .unwrap_or_else(|e| command_failed("reduce", &self.reduce_cmd, None, &e.to_string()));
        let mut stdin = child.stdin.take().expect("piped");
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let output = child.wait_with_output();
        let _ = writer.join();
        match output {
            Ok(o) if o.status.success() => {
                let first = o.stdout.split(|&b| b == b'\n').next().unwrap_or(&[]);
                out.extend_from_slice(split_pair(first).1);
            }
            Ok(o) => command_failed(
                "reduce",
                &self.reduce_cmd,
                Some(o.status),
                &String::from_utf8_lossy(&o.stderr),
            ),
            Err(e) => command_failed("reduce", &self.reduce_cmd, None, &e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VecEmit;

    #[test]
    fn app_names_are_stable_across_versions() {
        // FNV-1a of "cat\0sort", computed independently; a coordinator and
        // workers of different builds must agree on it.
        assert_eq!(app_name("cat", "sort"), "streaming-fcd85611");
        assert_ne!(app_name("ca", "tsort"), app_name("cat", "sort"));
    }

    #[test]
    fn map_runs_the_command_and_splits_pairs_at_the_first_tab() {
        let app = Streaming::new(
            "awk '{print $2 \"\\t\" $1 \"\\t\" ENVIRON[\"MR_INPUT_FILE\"]}'",
            "cat",
        );
        let mut e = VecEmit::default();
        app.map("in.txt", b"a b\nc d\n", &mut e);
        assert_eq!(
            e.pairs,
            vec![
                (b"b".to_vec(), b"a\tin.txt".to_vec()),
                (b"d".to_vec(), b"c\tin.txt".to_vec())
            ]
        );
    }

    #[test]
    fn a_failing_command_panics_with_its_status_and_stderr() {
        let app = Streaming::new("echo oops >&2; exit 3", "cat");
        let caught = std::panic::catch_unwind(|| app.map("f", b"x\n", &mut VecEmit::default()));
        let msg = crate::plugin::panic_message(caught.unwrap_err().as_ref());
        assert!(
            msg.contains("exit status: 3") && msg.contains("oops"),
            "{msg}"
        );
    }
}
