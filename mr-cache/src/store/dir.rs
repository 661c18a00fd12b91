//! A cache in a local directory (`<dir>/mr-cache-v2`): an entry's files
//! are written under `tmp/` and renamed into place, data first, then meta;
//! taken by hard link (or copy, across file systems); a use renews the
//! meta's modification time, which eviction orders by.

use super::{CacheFile, Data, Kind, Medium, KINDS};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The cache's directory of this format.
#[derive(Debug)]
pub(super) struct Directory {
    root: PathBuf,
}

impl Directory {
    /// The cache whose format's directory is `root` (made by the caller).
    pub(super) fn new(root: PathBuf) -> Directory {
        Directory { root }
    }

    /// A fresh name under `tmp/` (unique across processes and threads).
    fn temp(&self) -> PathBuf {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        self.root
            .join("tmp")
            .join(format!("mr-cache-{}-{n}-{nanos}", std::process::id()))
    }
}

impl Medium for Directory {
    fn shown(&self) -> String {
        self.root.display().to_string()
    }

    fn at(&self, kind: Kind, name: &str) -> String {
        self.root.join(kind.dir()).join(name).display().to_string()
    }

    fn remote(&self) -> bool {
        false
    }

    fn read_dated(&self, at: &str) -> Option<(Vec<u8>, Option<SystemTime>)> {
        // No time: touching a file costs no request, so it is always done.
        fs::read(at).ok().map(|b| (b, None))
    }

    fn fetch(&self, at: &str, dest: &Path) -> bool {
        fs::hard_link(at, dest).is_ok() || fs::copy(at, dest).is_ok()
    }

    fn remove(&self, at: &str) {
        let _ = fs::remove_file(at);
    }

    fn touch(&self, meta: &str, _bytes: &[u8]) {
        let _ = File::options()
            .append(true)
            .open(meta)
            .and_then(|f| f.set_modified(SystemTime::now()));
    }

    fn write_entry(
        &self,
        data_at: &str,
        meta_at: &str,
        data: Data<'_>,
        header: &[u8],
    ) -> Result<(), String> {
        let io = |e: std::io::Error| e.to_string();
        let tmp_data = self.temp();
        match data {
            Data::File(p) => {
                if fs::hard_link(p, &tmp_data).is_err() {
                    fs::copy(p, &tmp_data).map_err(io)?;
                }
            }
            Data::Bytes(b) => fs::write(&tmp_data, b).map_err(io)?,
        }
        // A link keeps its source's time, which may be old: an eviction
        // meanwhile would take the file, not yet under its meta, for
        // debris (see DEBRIS_AGE).
        File::options()
            .append(true)
            .open(&tmp_data)
            .and_then(|f| f.set_modified(SystemTime::now()))
            .map_err(io)?;
        fs::rename(&tmp_data, data_at).map_err(io)?;
        let tmp_meta = self.temp();
        File::create(&tmp_meta)
            .and_then(|mut f| f.write_all(header))
            .map_err(io)?;
        fs::rename(&tmp_meta, meta_at).map_err(io)
    }

    fn files(&self) -> (String, Vec<CacheFile>) {
        let mut files = Vec::new();
        for sub in KINDS.iter().map(|k| k.dir()).chain(["tmp"]) {
            let Ok(dir) = fs::read_dir(self.root.join(sub)) else {
                continue;
            };
            for e in dir.flatten() {
                let Ok(m) = e.metadata() else { continue };
                if m.is_file() {
                    files.push(CacheFile {
                        at: e.path().display().to_string(),
                        modified: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                        size: m.len(),
                    });
                }
            }
        }
        (format!("{}/", self.root.display()), files)
    }
}
