//! Computes the build id ([`BUILD_ID`] in the crate): the SHA-256 of every
//! source file of the crates that make a job's outputs, the lock file, the
//! manifests, the compiler's version and the settings it compiles with.
//! Two binaries with the same id run the same code; any edit, dependency
//! update, other compiler or other profile gives another id.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The crates whose code is in the id (their `src/` and `Cargo.toml`):
/// those that make a job's outputs (apps, engine, run files, the cache's
/// planning and reuse, the guard on mapped inputs, the wire, the store).
/// The coordinator's scheduling decides where tasks run, not what they
/// produce, and tests, benches and fuzzing produce nothing: left out, so
/// editing them rebuilds less.
const CRATES: &[&str] = &[
    "mr-apps",
    "mr-build",
    "mr-cache",
    "mr-mapped",
    "mr-protocol",
    "mr-runfile",
    "mr-store",
    "mr-worker",
];

/// Settings of the compilation that change the code it makes.
const SETTINGS: &[&str] = &[
    "PROFILE",
    "OPT_LEVEL",
    "DEBUG",
    "TARGET",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_CFG_PANIC",
    "CARGO_CFG_TARGET_FEATURE",
];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest.parent().expect("mr-build sits in the workspace");
    let mut files = Vec::new();
    for c in CRATES {
        let dir = root.join(c);
        files.push(dir.join("Cargo.toml"));
        collect(&dir.join("src"), &mut files);
        if c == &"mr-build" {
            files.push(dir.join("build.rs"));
        }
        // Cargo scans a directory given here for any change below it.
        println!("cargo:rerun-if-changed={}", dir.join("src").display());
        println!(
            "cargo:rerun-if-changed={}",
            dir.join("Cargo.toml").display()
        );
    }
    for f in ["Cargo.toml", "Cargo.lock"] {
        files.push(root.join(f));
        println!("cargo:rerun-if-changed={}", root.join(f).display());
    }
    println!("cargo:rerun-if-changed=build.rs");
    files.sort();
    let mut h = Sha256::new();
    for f in &files {
        let Ok(bytes) = std::fs::read(f) else {
            continue;
        };
        let name = f
            .strip_prefix(root)
            .unwrap_or(f)
            .to_string_lossy()
            .into_owned();
        // Lengths first, so no two file lists hash alike by concatenation.
        for part in [name.as_bytes(), &bytes] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(&rustc)
        .arg("-vV")
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    h.update(&version);
    for k in SETTINGS {
        println!("cargo:rerun-if-env-changed={k}");
        let v = std::env::var(k).unwrap_or_default();
        h.update((k.len() as u64).to_le_bytes());
        h.update(k.as_bytes());
        h.update((v.len() as u64).to_le_bytes());
        h.update(v.as_bytes());
    }
    let id: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    println!("cargo:rustc-env=MR_BUILD_ID={id}");
    println!("cargo:rustc-env=MR_BUILD_FILES={}", files.len());
}

/// Every file under `dir`, depth first.
fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else {
            out.push(p);
        }
    }
}
