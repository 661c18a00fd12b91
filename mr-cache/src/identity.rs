//! What identifies the code that makes a job's outputs, for its cache keys.
//!
//! A cached output may be reused only when the code that would make it
//! again is the code that made it. So the identity of an app is made of:
//!
//! - **the build** of the framework ([`mr_build::BUILD_ID`]: the engine,
//!   partitioner, run-file writer and built-in apps, by their sources, the
//!   lock file, the compiler and its settings), for every kind of app;
//! - for a built-in app, its name;
//! - for a plugin, the SHA-256 of its file;
//! - for a streaming job, both commands as written, the SHA-256 of the
//!   executable each command word resolves to on `PATH` (`awk`, `python3`,
//!   `./map.sh`) and of every other word that names a readable file
//!   (`-f prog.awk`, `map.py`, `--table=codes.tsv`), relative to the
//!   coordinator's working directory;
//! - the files the user names with `--cache-key-file` (what the key cannot
//!   see: a module a script imports, a table it opens by a computed name).
//!
//! R, the partitioner, the run-file format, how inputs divide into
//! records and the job's parameters (`--conf`, a total order's split
//! points) are added by the keys themselves ([`crate::job`]).

use crate::Key;
use std::path::{Path, PathBuf};

/// Why the app's code cannot be identified.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The app is unknown.
    #[error("--cache needs to know the app's code: {0}")]
    App(String),
    /// A file that must be hashed cannot be read.
    #[error("cannot read {what} '{path}' to key the cache by it: {reason}")]
    Unreadable {
        /// What the file is (a plugin, a `--cache-key-file`).
        what: &'static str,
        /// Its path.
        path: String,
        /// Why.
        reason: String,
    },
}

/// The identity of an app's code and what it was made of.
pub struct AppIdentity {
    /// The bytes every cache key of the job includes.
    pub bytes: Vec<u8>,
    /// The name workers register with.
    pub name: String,
    /// Whether the app must see whole files.
    pub whole_file: bool,
    /// The files whose contents are in the identity (for logs and tests).
    pub files: Vec<PathBuf>,
}

/// Hashes a file's contents, or says why it cannot.
fn file_key(path: &Path, what: &'static str) -> Result<Key, IdentityError> {
    std::fs::read(path)
        .map(|bytes| Key::of(&[&bytes]))
        .map_err(|e| IdentityError::Unreadable {
            what,
            path: path.display().to_string(),
            reason: e.to_string(),
        })
}

/// The identity of the app `app` (a built-in name or a plugin path), or
/// of the streaming job of `streaming`'s (map, reduce) commands, with the
/// user's `key_files`.
pub fn app_identity(
    app: &str,
    streaming: Option<&(String, String)>,
    key_files: &[PathBuf],
) -> Result<AppIdentity, IdentityError> {
    let mut bytes = format!("build\0{}\0", mr_build::BUILD_ID).into_bytes();
    let mut files = Vec::new();
    let (name, whole_file) = if let Some((m, r)) = streaming {
        bytes.extend_from_slice(format!("streaming\0{m}\0{r}\0").as_bytes());
        for cmd in [m, r] {
            for file in files_named_by(cmd) {
                // Named but gone or unreadable: the command fails the same
                // way each time, so the words alone identify it.
                if let Ok(k) = file_key(&file, "a file the command names") {
                    bytes.extend_from_slice(file.to_string_lossy().as_bytes());
                    bytes.push(0);
                    bytes.extend_from_slice(&k.0);
                    files.push(file);
                }
            }
        }
        (app.to_string(), false)
    } else {
        let resolved = mr_apps::load(app).map_err(|e| IdentityError::App(e.to_string()))?;
        if app.contains('/') || app.ends_with(".so") {
            let k = file_key(Path::new(app), "plugin")?;
            bytes.extend_from_slice(b"plugin\0");
            bytes.extend_from_slice(&k.0);
            files.push(PathBuf::from(app));
        } else {
            bytes.extend_from_slice(format!("builtin\0{app}").as_bytes());
        }
        (resolved.name().to_string(), resolved.whole_file())
    };
    for f in key_files {
        let k = file_key(f, "--cache-key-file")?;
        bytes.extend_from_slice(b"\0keyfile\0");
        bytes.extend_from_slice(&k.0);
        files.push(f.clone());
    }
    Ok(AppIdentity {
        bytes,
        name,
        whole_file,
        files,
    })
}

/// The files a shell command names: the executable of each command word
/// (resolved on `PATH` when it has no `/`) and every other word, or the
/// part of a word after `=`, that names a regular file. Words are split
/// at blanks and the shell's operators, quotes removed; what the command
/// computes at run time (`$(...)`, variables) cannot be seen here.
pub fn files_named_by(cmd: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut add = |p: PathBuf| {
        if p.is_file() && !out.contains(&p) {
            out.push(p);
        }
    };
    let mut command_word = true;
    for word in shell_words(cmd) {
        if matches!(word.as_str(), "|" | "||" | "&&" | ";" | "&" | "(" | ")") {
            command_word = true;
            continue;
        }
        if command_word {
            // `VAR=value cmd`: the assignment is not the command.
            let assignment = word
                .split_once('=')
                .is_some_and(|(k, _)| !k.is_empty() && !k.contains('/'));
            if !assignment {
                command_word = false;
                if let Some(exe) = resolve_executable(&word) {
                    add(exe);
                    continue;
                }
            }
        }
        add(PathBuf::from(&word));
        if let Some((_, v)) = word.split_once('=') {
            if !v.is_empty() {
                add(PathBuf::from(v));
            }
        }
    }
    out
}

/// Where the shell finds the command `word`: itself if it has a `/`, else
/// the first executable of that name on `PATH`.
fn resolve_executable(word: &str) -> Option<PathBuf> {
    if word.contains('/') {
        return Some(PathBuf::from(word));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(word))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Splits a command line into words and operators as a shell would, near
/// enough to find file names: blanks separate words, quotes group and are
/// removed, a backslash escapes the next character, and `|`, `&`, `;`,
/// `(`, `)` are operators (redirections' targets stay words: `< in.txt`
/// names a file too).
fn shell_words(cmd: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut chars = cmd.chars().peekable();
    let flush = |word: &mut String, words: &mut Vec<String>| {
        if !word.is_empty() {
            words.push(std::mem::take(word));
        }
    };
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => word.extend(chars.next()),
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => quote = Some(c),
            (None, '\\') => word.extend(chars.next()),
            (None, c) if c.is_whitespace() => flush(&mut word, &mut words),
            (None, '<' | '>') => flush(&mut word, &mut words),
            (None, '|' | '&' | ';' | '(' | ')') => {
                flush(&mut word, &mut words);
                let mut op = c.to_string();
                if matches!(c, '|' | '&') && chars.peek() == Some(&c) {
                    op.push(chars.next().unwrap_or(c));
                }
                words.push(op);
            }
            (None, c) => word.push(c),
        }
    }
    flush(&mut word, &mut words);
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_like_a_shell_at_blanks_quotes_and_operators() {
        assert_eq!(
            shell_words(r#"awk -F'\t' "-f" 'my prog.awk'|sort -k2&&echo a\ b; (x)"#),
            [
                "awk",
                "-F\\t",
                "-f",
                "my prog.awk",
                "|",
                "sort",
                "-k2",
                "&&",
                "echo",
                "a b",
                ";",
                "(",
                "x",
                ")"
            ]
        );
        assert_eq!(
            shell_words("tr a b <in.txt >out"),
            ["tr", "a", "b", "in.txt", "out"]
        );
    }

    #[test]
    fn a_command_names_its_executables_and_the_files_it_mentions() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("map.sh");
        let prog = dir.path().join("prog.awk");
        let table = dir.path().join("codes.tsv");
        for f in [&script, &prog, &table] {
            std::fs::write(f, "x").unwrap();
        }
        let sh = resolve_executable("sh").expect("sh on PATH");
        let cmd = format!(
            "LC_ALL=C {} | awk -f '{}' --table={} | sort -k1,1 no-such-file",
            script.display(),
            prog.display(),
            table.display()
        );
        let awk = resolve_executable("awk").expect("awk on PATH");
        let sort = resolve_executable("sort").expect("sort on PATH");
        assert_eq!(
            files_named_by(&cmd),
            [script.clone(), awk, prog, table, sort]
        );
        // An interpreter and its script; a word naming a directory is not
        // a file.
        let cmd = format!("sh {} {}", script.display(), dir.path().display());
        assert_eq!(files_named_by(&cmd), [sh, script]);
    }

    #[test]
    fn the_identity_changes_with_a_script_a_key_file_or_a_plugin_not_with_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("map.sh");
        std::fs::write(&script, "tr a-z A-Z").unwrap();
        let cmds = (format!("sh {}", script.display()), "cat".to_string());
        let id = || app_identity("s", Some(&cmds), &[]).unwrap().bytes;
        let first = id();
        assert_eq!(id(), first, "the same code, the same identity");
        std::fs::write(&script, "tr A-Z a-z").unwrap();
        assert_ne!(id(), first, "an edited script keeps its identity");
        let extra = dir.path().join("lib.py");
        std::fs::write(&extra, "one").unwrap();
        let with = |_: ()| {
            app_identity("s", Some(&cmds), std::slice::from_ref(&extra))
                .unwrap()
                .bytes
        };
        let a = with(());
        std::fs::write(&extra, "two").unwrap();
        assert_ne!(with(()), a, "an edited --cache-key-file keeps its identity");
        // Every identity carries this build's id.
        let builtin = app_identity("wc", None, &[]).unwrap();
        let build = mr_build::BUILD_ID.as_bytes();
        assert!(builtin.bytes.windows(build.len()).any(|w| w == build));
        assert!(builtin.files.is_empty());
        let missing = app_identity("wc", None, &[dir.path().join("gone")]);
        assert!(matches!(missing, Err(IdentityError::Unreadable { .. })));
    }
}
