//! What the bench tools' tests share: running a tool for its JSON figures.

use std::process::Command;

/// Runs `cmd` with `--json` added; its exit code and the JSON object it
/// printed (no object fails the test, with the tool's stderr).
pub fn json_of(mut cmd: Command) -> (Option<i32>, serde_json::Value) {
    let out = cmd.arg("--json").output().expect("the tool runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "{cmd:?} printed no JSON ({e}): {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    }
    (out.status.code(), json)
}
