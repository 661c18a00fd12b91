//! The cache: entries named by content address, written so that nothing
//! half-written is ever used, and evicted least recently used first. It
//! lives in a local directory or under an object store prefix
//! (`s3://BUCKET/prefix`), with the same layout and the same checks.
//!
//! Layout: `<dir>/mr-cache-v2/{map,reduce,pieces}/<key>.data` (a map's run
//! file, a reduce's output, how an input divides) beside `<key>.meta` (a
//! header with this format's magic, the data's length and SHA-256, then the
//! caller's metadata). In a directory both are written under `tmp/` and
//! renamed into place; in a store each PUT makes an object appear whole.
//! Data goes first: an entry exists once its meta does. Another version's
//! cache lives in another directory (`mr-cache-v1`, `mr-cache-v3`, ...) and
//! is never read; a meta whose magic, length or hash does not match its
//! data is a miss (left for the task's fresh output to replace, or for
//! eviction: a reader cannot tell damage from an entry being replaced).
//! Files that belong to no entry (debris) are evicted once settled. Map outputs, which carry their own block
//! checksums, are guarded by a CRC32C instead of a SHA-256 (see [`Kind`]).
//! Readers take an entry by hard-linking its data (copying across file
//! systems, downloading from a store) before checking it, so an eviction by
//! a concurrent job cannot pull it from under them. A use renews the meta's
//! modification time (touched in a directory, rewritten in a store):
//! eviction removes the oldest first.
//!
//! This module is the format (entries, checks, eviction); a [`Medium`] is
//! where the files are: [`dir`] a directory, [`object`] a store prefix.

use crate::Key;
use std::fs::{self, File};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

mod dir;
mod object;

/// The directory of this format's entries inside a cache directory.
pub const VERSION_DIR: &str = "mr-cache-v2";
/// The first bytes of every meta file of this format.
const MAGIC: &[u8; 8] = b"MRCACHE1";

/// What a cache entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A map's output (a run file).
    Map,
    /// A reduce's output (an `mr-out-<r>` file).
    Reduce,
    /// How an input file divides into pieces (see [`crate::plan`]), kept
    /// under the file's identity as the system reports it.
    Pieces,
    /// The address of the last output kept of a reduce of a job like this
    /// one (same app, R, partition and input directories), from which a
    /// re-run copies what still holds (see [`crate::reuse`]).
    Lineage,
}

impl Kind {
    /// Whether entries of this kind carry their own checksums, checked by
    /// whoever reads them (every block of a run file has its CRC32C, which
    /// a reducer checks as it reads any map output): the cache then guards
    /// them with a CRC32C of the whole file (computed at memory speed)
    /// rather than a SHA-256, so that taking the outputs of a large job's
    /// maps costs milliseconds while accidental damage is still a miss at
    /// the door rather than a failed reduce.
    fn self_checked(self) -> bool {
        matches!(self, Kind::Map)
    }

    fn dir(self) -> &'static str {
        match self {
            Kind::Map => "map",
            Kind::Reduce => "reduce",
            Kind::Pieces => "pieces",
            Kind::Lineage => "lineage",
        }
    }
}

/// A cache that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The directory cannot be created or written.
    #[error("cache {path}: {reason} (give --cache a writable directory, or an s3://BUCKET/prefix the credentials may write)")]
    Unusable {
        /// The directory.
        path: String,
        /// Why.
        reason: String,
    },
    /// Storing an entry failed.
    #[error("cannot store {what} in the cache at {path}: {reason}")]
    Store {
        /// The entry.
        what: String,
        /// Where.
        path: String,
        /// Why.
        reason: String,
    },
}

/// A cache of this format: a local directory, or a prefix in an object
/// store (`s3://BUCKET/prefix`), with the same layout and checks.
#[derive(Clone, Debug)]
pub struct Cache {
    medium: Arc<dyn Medium>,
}

/// Where a cache's files live, and how each is read, written and removed:
/// the seam between the cache's format (entries, their checks, eviction's
/// order), which is [`Cache`]'s, and the medium that holds them. Files are
/// named by a string: a path in a directory, a URL in a store.
trait Medium: std::fmt::Debug + Send + Sync {
    /// Where the cache is, as the user would name it in messages.
    fn shown(&self) -> String;
    /// Where file `name` of `kind`'s entries is.
    fn at(&self, kind: Kind, name: &str) -> String;
    /// Whether each call waits on the network (then calls run many at once:
    /// see [`Cache::with_io_width`]).
    fn remote(&self) -> bool;
    /// The whole file at `at` (None if it is not there, or cannot be
    /// read), with when it was last written if that is known at no cost.
    fn read_dated(&self, at: &str) -> Option<(Vec<u8>, Option<SystemTime>)>;
    /// Links, copies or downloads the file at `at` to the new file `dest`.
    fn fetch(&self, at: &str, dest: &Path) -> bool;
    /// Removes the file at `at`, if there.
    fn remove(&self, at: &str);
    /// Renews the use time of the meta at `meta`, which holds `bytes`.
    fn touch(&self, meta: &str, bytes: &[u8]);
    /// Writes an entry: its data at `data_at` first, then its meta (the
    /// `header`) at `meta_at`, each appearing whole.
    fn write_entry(
        &self,
        data_at: &str,
        meta_at: &str,
        data: Data<'_>,
        header: &[u8],
    ) -> Result<(), String>;
    /// Every file of the cache, and the root they are under (ending in `/`).
    fn files(&self) -> (String, Vec<CacheFile>);
}

/// An entry's data, to store.
enum Data<'a> {
    File(&'a Path),
    Bytes(&'a [u8]),
}

impl Cache {
    /// Opens (creating) the cache in `dir`, or under an `s3://BUCKET/prefix`
    /// given as `dir` (checked writable now rather than at the first store).
    pub fn open(dir: &Path) -> Result<Cache, CacheError> {
        if let Some(url) = dir.to_str().filter(|d| mr_store::is_object_url(d)) {
            return Cache::open_store(url);
        }
        let root = dir.join(VERSION_DIR);
        let unusable = |e: std::io::Error| CacheError::Unusable {
            path: dir.display().to_string(),
            reason: e.to_string(),
        };
        for sub in KINDS.iter().map(|k| k.dir()).chain(["tmp"]) {
            fs::create_dir_all(root.join(sub)).map_err(unusable)?;
        }
        // Writable, checked now rather than at the first store.
        let probe = root
            .join("tmp")
            .join(format!(".probe-{}", std::process::id()));
        File::create(&probe).map_err(unusable)?;
        let _ = fs::remove_file(&probe);
        Ok(Cache {
            medium: Arc::new(dir::Directory::new(root)),
        })
    }

    fn open_store(url: &str) -> Result<Cache, CacheError> {
        let unusable = |e: mr_store::StoreError| CacheError::Unusable {
            path: url.to_string(),
            reason: e.to_string(),
        };
        let prefix = mr_store::ObjectUrl::parse_prefix(url)
            .map_err(unusable)?
            .url();
        let root = format!("{prefix}{VERSION_DIR}/");
        let probe = format!("{root}tmp/.probe-{}", std::process::id());
        mr_store::blob::put(&probe, Vec::new()).map_err(unusable)?;
        let _ = mr_store::blob::delete(&probe);
        Ok(Cache {
            medium: Arc::new(object::Prefix::new(root)),
        })
    }

    /// Runs `f`, whose parallel iterators call this cache, on a pool wide
    /// enough for its calls: a cache in an object store waits on the
    /// network, one request per call, so its calls run
    /// [`STORE_CALLS_AT_ONCE`] at a time rather than one per core (a
    /// re-run looks up one entry per input file). A directory's calls run
    /// on the caller's pool.
    pub fn with_io_width<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        match self.medium.remote() {
            false => f(),
            true => store_pool().install(f),
        }
    }

    /// Where file `ext` of entry `key` of `kind` is: a path, or an URL.
    fn at(&self, kind: Kind, key: &Key, ext: &str) -> String {
        self.medium.at(kind, &format!("{key}.{ext}"))
    }

    #[cfg(test)]
    fn path(&self, kind: Kind, key: &Key, ext: &str) -> std::path::PathBuf {
        std::path::PathBuf::from(self.at(kind, key, ext))
    }

    /// Reads the whole file at `at` (None if it is not there; a store that
    /// cannot be reached is a miss too, and says so).
    fn read(&self, at: &str) -> Option<Vec<u8>> {
        self.read_dated(at).map(|(b, _)| b)
    }

    /// [`Cache::read`], with when an object was last written (None for a
    /// file: touching one costs no request, so it is always done).
    fn read_dated(&self, at: &str) -> Option<(Vec<u8>, Option<SystemTime>)> {
        self.medium.read_dated(at)
    }

    /// Marks the entry whose meta is at `meta` (holding `bytes`, written at
    /// `written` if known) used now: last to be evicted. In a store, where
    /// it costs a PUT, only once [`STORE_TOUCH_EVERY`] has passed since.
    fn touch(&self, meta: &str, bytes: &[u8], written: Option<SystemTime>) {
        let fresh = written
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age < STORE_TOUCH_EVERY);
        if !fresh {
            self.medium.touch(meta, bytes);
        }
    }

    /// Takes entry `key` of `kind`: its data hard-linked (or copied, or
    /// downloaded) to `dest`, checked against its meta, and its metadata
    /// returned. None on a miss; a damaged entry is a miss too.
    pub fn take(&self, kind: Kind, key: &Key, dest: &Path) -> Option<Vec<u8>> {
        let meta_at = self.at(kind, key, "meta");
        let (meta, written) = self.read_dated(&meta_at)?;
        let _ = fs::remove_file(dest);
        if !self.medium.fetch(&self.at(kind, key, "data"), dest) {
            return None;
        }
        let user = digest(kind, dest)
            .ok()
            .and_then(|got| check(&meta, got))
            .map(<[u8]>::to_vec);
        if user.is_none() {
            let _ = fs::remove_file(dest);
        }
        self.after_check(kind, key, (&meta, written), user)
    }

    /// Renews a good entry's use time; a damaged one is a miss.
    fn after_check(
        &self,
        kind: Kind,
        key: &Key,
        (meta, written): (&[u8], Option<SystemTime>),
        user: Option<Vec<u8>>,
    ) -> Option<Vec<u8>> {
        let meta_at = self.at(kind, key, "meta");
        match user {
            Some(user) => {
                self.touch(&meta_at, meta, written);
                Some(user)
            }
            None => {
                // Not removed: what failed the check may be an entry being
                // replaced (its new data beside its old meta for a moment),
                // and removing would delete the fresh one. A damaged entry
                // is replaced when its task, run again, stores its output,
                // or ages out.
                tracing::warn!(entry = %meta_at, "a damaged or changing cache entry; its task runs again");
                None
            }
        }
    }

    /// Stores the file at `data` (hard-linked if it can be, else copied,
    /// or uploaded) with `meta` as entry `key` of `kind`. The caller must
    /// not change `data` afterwards (a link shares it).
    pub fn put(&self, kind: Kind, key: &Key, data: &Path, meta: &[u8]) -> Result<(), CacheError> {
        self.put_entry(kind, key, Data::File(data), meta)
    }

    fn put_entry(
        &self,
        kind: Kind,
        key: &Key,
        data: Data<'_>,
        meta: &[u8],
    ) -> Result<(), CacheError> {
        let failed = |reason: String| CacheError::Store {
            what: format!("{} {key}", kind.dir()),
            path: self.medium.shown(),
            reason,
        };
        let (len, hash) = match data {
            Data::File(p) => digest(kind, p).map_err(|e| failed(e.to_string()))?,
            Data::Bytes(b) => digest_bytes(kind, b),
        };
        let mut header = Vec::with_capacity(48 + meta.len());
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&len.to_le_bytes());
        header.extend_from_slice(&hash);
        header.extend_from_slice(meta);
        let (data_at, meta_at) = (self.at(kind, key, "data"), self.at(kind, key, "meta"));
        self.medium
            .write_entry(&data_at, &meta_at, data, &header)
            .map_err(failed)
    }

    /// Stores `bytes` as entry `key` of `kind` (a small entry: no metadata).
    pub fn put_bytes(&self, kind: Kind, key: &Key, bytes: &[u8]) -> Result<(), CacheError> {
        self.put_entry(kind, key, Data::Bytes(bytes), &[])
    }

    /// The metadata stored with entry `key` of `kind`, if its meta is this
    /// format's (its data is not looked at: [`Cache::take`] checks it).
    pub fn meta(&self, kind: Kind, key: &Key) -> Option<Vec<u8>> {
        let meta = self.read(&self.at(kind, key, "meta"))?;
        (meta.len() >= 48 && &meta[..8] == MAGIC).then(|| meta[48..].to_vec())
    }

    /// The bytes of entry `key` of `kind`, checked, if it is there.
    pub fn take_bytes(&self, kind: Kind, key: &Key) -> Option<Vec<u8>> {
        let (meta, written) = self.read_dated(&self.at(kind, key, "meta"))?;
        let data = self.read(&self.at(kind, key, "data"))?;
        let good = check(&meta, digest_bytes(kind, &data)).is_some();
        self.after_check(kind, key, (&meta, written), good.then(Vec::new))
            .map(|_| data)
    }

    /// Bytes the entries take (data and meta).
    pub fn size(&self) -> u64 {
        self.entries().iter().map(|e| e.bytes).sum()
    }

    /// Removes entries, least recently used first, until at most `max`
    /// bytes remain; returns the bytes freed.
    pub fn evict(&self, max: u64) -> u64 {
        let mut entries = self.entries();
        let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
        entries.sort_by_key(|e| e.used);
        let mut freed = 0;
        for e in entries {
            if total <= max {
                break;
            }
            // In order: an entry's meta first, so from then on it is a
            // miss for everyone.
            for f in &e.files {
                self.medium.remove(f);
            }
            total -= e.bytes;
            freed += e.bytes;
        }
        freed
    }

    /// How many entries of `kind` there are.
    pub fn entries_of(&self, kind: Kind) -> usize {
        self.entries()
            .iter()
            .filter(|e| e.kind == Some(kind))
            .count()
    }

    fn entries(&self) -> Vec<Entry> {
        let (root, files) = self.medium.files();
        entries_of_files(&root, files, SystemTime::now())
    }
}

/// How stale an entry's use time in an object store may grow before a
/// use renews it (a PUT): eviction orders entries to within this.
pub const STORE_TOUCH_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Calls to a cache in an object store made at once (see
/// [`Cache::with_io_width`]).
pub const STORE_CALLS_AT_ONCE: usize = 32;

/// The pool [`Cache::with_io_width`] runs store calls on.
fn store_pool() -> &'static rayon::ThreadPool {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(STORE_CALLS_AT_ONCE)
            .thread_name(|i| format!("mr-cache-io-{i}"))
            .build()
            .expect("cannot start the cache's I/O threads")
    })
}

/// The data file beside the meta file at `meta`.
fn data_of(meta: &str) -> String {
    format!("{}.data", meta.strip_suffix(".meta").unwrap_or(meta))
}

const KINDS: [Kind; 4] = [Kind::Map, Kind::Reduce, Kind::Pieces, Kind::Lineage];

/// How long a file that belongs to no entry (a data file without its
/// meta, a leftover under `tmp/`) must have lain unchanged before it is
/// taken for debris and evicted: a store in progress writes its data, then
/// its meta, within moments, and a copy under `tmp/` keeps changing while
/// it is written.
pub const DEBRIS_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// A file of the cache, as listed: where, when last written, how large.
struct CacheFile {
    at: String,
    modified: SystemTime,
    size: u64,
}

/// Every entry, and every file that belongs to none, of the cache whose
/// files under `root` (a path or URL ending in `/`) are `files`: an entry
/// per meta (its data beside it), and as debris each other file of a
/// kind's directory or of `tmp/` that has lain unchanged for
/// [`DEBRIS_AGE`]: a data file whose meta never came (a process stopped
/// between the two, or an eviction between its two removals) or a
/// temporary file of a process that died. Debris takes room like any
/// entry, so it counts against `--cache-max` and goes, oldest first, with
/// the entries.
fn entries_of_files(root: &str, files: Vec<CacheFile>, now: SystemTime) -> Vec<Entry> {
    let sizes: std::collections::HashMap<&str, u64> =
        files.iter().map(|f| (f.at.as_str(), f.size)).collect();
    let metas: std::collections::HashSet<String> = files
        .iter()
        .filter_map(|f| f.at.strip_suffix(".meta").map(|m| format!("{m}.data")))
        .collect();
    let mut out = Vec::new();
    for f in &files {
        let Some(rest) = f.at.strip_prefix(root) else {
            continue;
        };
        let kind = KINDS.into_iter().find(|k| {
            rest.strip_prefix(k.dir())
                .is_some_and(|r| r.starts_with('/'))
        });
        if kind.is_none() && !rest.starts_with("tmp/") {
            continue;
        }
        if kind.is_some() && f.at.ends_with(".meta") {
            let data = data_of(&f.at);
            out.push(Entry {
                kind,
                used: f.modified,
                bytes: f.size + sizes.get(data.as_str()).copied().unwrap_or(0),
                files: vec![f.at.clone(), data],
            });
            continue;
        }
        let owned = kind.is_some() && metas.contains(&f.at);
        let settled = now
            .duration_since(f.modified)
            .is_ok_and(|age| age >= DEBRIS_AGE);
        if !owned && settled {
            out.push(Entry {
                kind: None,
                used: f.modified,
                bytes: f.size,
                files: vec![f.at.clone()],
            });
        }
    }
    out
}

/// One entry (or one file of debris), for eviction.
struct Entry {
    /// None for debris.
    kind: Option<Kind>,
    /// Its files (paths or URLs), in the order they are removed: an
    /// entry's meta, then its data.
    files: Vec<String>,
    used: SystemTime,
    bytes: u64,
}

/// The caller's metadata in `meta`, if `meta` is this format's and the
/// data's length and guard (`got`, see [`digest`]) are those it records.
fn check(meta: &[u8], got: (u64, [u8; 32])) -> Option<&[u8]> {
    if meta.len() < 48 || &meta[..8] != MAGIC {
        return None;
    }
    let len = u64::from_le_bytes(meta[8..16].try_into().ok()?);
    (got.0 == len && got.1[..] == meta[16..48]).then_some(&meta[48..])
}

/// [`digest`] of bytes in memory.
fn digest_bytes(kind: Kind, bytes: &[u8]) -> (u64, [u8; 32]) {
    let mut out = [0u8; 32];
    if kind.self_checked() {
        if !bytes.is_empty() {
            out[..4].copy_from_slice(&crc32c::crc32c(bytes).to_le_bytes());
        }
    } else {
        let d = ring::digest::digest(&ring::digest::SHA256, bytes);
        out.copy_from_slice(d.as_ref());
    }
    (bytes.len() as u64, out)
}

/// A file's length and what guards an entry of `kind`: its SHA-256, or
/// for a kind that carries its own checksums its CRC32C (in the first four
/// bytes).
fn digest(kind: Kind, path: &Path) -> std::io::Result<(u64, [u8; 32])> {
    if !kind.self_checked() {
        return hash_file(path);
    }
    let f = File::open(path)?;
    let len = f.metadata()?.len();
    let mut out = [0u8; 32];
    if len > 0 {
        // The cache's files are replaced by rename, never changed in place;
        // one truncated anyway (by hand) is a miss, not a SIGBUS.
        let map = mr_mapped::MappedFile::map(&f)?;
        let crc = crc32c::crc32c(&map);
        if map.shrank() {
            return Err(std::io::Error::other("it shrank while it was read"));
        }
        out[..4].copy_from_slice(&crc.to_le_bytes());
    }
    Ok((len, out))
}

/// A file's length and SHA-256.
fn hash_file(path: &Path) -> std::io::Result<(u64, [u8; 32])> {
    let mut f = File::open(path)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
        len += n as u64;
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    Ok((len, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Key {
        Key::of(&[s.as_bytes()])
    }

    #[test]
    fn an_entry_is_taken_back_exactly_and_a_miss_is_a_miss() {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::open(&d.path().join("cache")).unwrap();
        let src = d.path().join("run");
        fs::write(&src, b"some run file bytes").unwrap();
        cache.put(Kind::Map, &key("a"), &src, b"counters").unwrap();
        let dest = d.path().join("taken");
        assert_eq!(
            cache.take(Kind::Map, &key("a"), &dest).unwrap(),
            b"counters"
        );
        assert_eq!(fs::read(&dest).unwrap(), b"some run file bytes");
        // Another key, or the same key of the other kind: a miss.
        assert!(cache.take(Kind::Map, &key("b"), &dest).is_none());
        assert!(cache.take(Kind::Reduce, &key("a"), &dest).is_none());
    }

    #[test]
    fn a_damaged_entry_is_a_miss_and_is_replaced_by_the_next_store() {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::open(d.path()).unwrap();
        let src = d.path().join("out");
        fs::write(&src, b"the output").unwrap();
        cache.put(Kind::Reduce, &key("r"), &src, b"").unwrap();
        // The stored data changes (same length): its hash no longer matches.
        // (A copy, not the linked original, is what a user would damage.)
        let data = cache.path(Kind::Reduce, &key("r"), "data");
        fs::remove_file(&data).unwrap();
        fs::write(&data, b"THE output").unwrap();
        let dest = d.path().join("taken");
        assert!(cache.take(Kind::Reduce, &key("r"), &dest).is_none());
        assert!(!dest.exists());
        // The task runs again and stores its output: a hit again.
        cache.put(Kind::Reduce, &key("r"), &src, b"").unwrap();
        assert!(cache.take(Kind::Reduce, &key("r"), &dest).is_some());
        assert_eq!(fs::read(&dest).unwrap(), b"the output");
        // Truncated meta, or another format's: a miss too.
        cache.put(Kind::Reduce, &key("s"), &src, b"m").unwrap();
        let meta = cache.path(Kind::Reduce, &key("s"), "meta");
        let mut bytes = fs::read(&meta).unwrap();
        bytes[0] = b'X';
        fs::write(&meta, &bytes).unwrap();
        assert!(cache.take(Kind::Reduce, &key("s"), &dest).is_none());
    }

    #[test]
    fn a_map_entry_is_guarded_by_its_crc_and_read_by_meta_alone() {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::open(d.path()).unwrap();
        let src = d.path().join("run");
        fs::write(&src, b"run file bytes").unwrap();
        cache.put(Kind::Map, &key("m"), &src, b"parts").unwrap();
        assert_eq!(cache.meta(Kind::Map, &key("m")).unwrap(), b"parts");
        assert!(cache.meta(Kind::Reduce, &key("m")).is_none());
        let dest = d.path().join("taken");
        assert!(cache.take(Kind::Map, &key("m"), &dest).is_some());
        // One bit changed: a miss.
        let data = cache.path(Kind::Map, &key("m"), "data");
        fs::remove_file(&data).unwrap();
        fs::write(&data, b"run file bytEs").unwrap();
        assert!(cache.take(Kind::Map, &key("m"), &dest).is_none());
        // An empty output too is stored and taken.
        fs::write(&src, b"").unwrap();
        cache.put(Kind::Map, &key("e"), &src, b"").unwrap();
        assert!(cache.take(Kind::Map, &key("e"), &dest).is_some());
    }

    #[test]
    fn eviction_removes_the_least_recently_used_first() {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::open(d.path()).unwrap();
        let src = d.path().join("f");
        fs::write(&src, vec![7u8; 1000]).unwrap();
        for (i, name) in ["old", "mid", "new"].iter().enumerate() {
            cache.put(Kind::Map, &key(name), &src, b"").unwrap();
            // Distinct use times, oldest first.
            let meta = cache.path(Kind::Map, &key(name), "meta");
            let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000 + i as u64);
            File::options()
                .append(true)
                .open(meta)
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        // Using "old" makes it the most recent.
        let dest = d.path().join("t");
        cache.take(Kind::Map, &key("old"), &dest).unwrap();
        let each = cache.size() / 3;
        let freed = cache.evict(2 * each);
        assert_eq!(freed, each);
        assert!(cache.take(Kind::Map, &key("mid"), &dest).is_none());
        assert!(cache.take(Kind::Map, &key("old"), &dest).is_some());
        assert!(cache.take(Kind::Map, &key("new"), &dest).is_some());
        assert_eq!(cache.evict(0), 2 * each);
        assert_eq!(cache.size(), 0);
    }

    #[test]
    fn a_reader_between_a_replacements_data_and_meta_misses_and_deletes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::open(&d.path().join("a")).unwrap();
        let next = Cache::open(&d.path().join("b")).unwrap();
        let (old, new) = (d.path().join("old"), d.path().join("new"));
        fs::write(&old, b"the old pieces").unwrap();
        fs::write(&new, b"the new pieces, longer").unwrap();
        cache.put(Kind::Lineage, &key("l"), &old, b"1").unwrap();
        // The replacement as another process writes it, in its two steps:
        // new data renamed into place, then (after our read) new meta.
        next.put(Kind::Lineage, &key("l"), &new, b"2").unwrap();
        let at = |c: &Cache, ext| c.path(Kind::Lineage, &key("l"), ext);
        fs::copy(at(&next, "data"), at(&cache, "data")).unwrap();
        let dest = d.path().join("taken");
        assert!(cache.take(Kind::Lineage, &key("l"), &dest).is_none());
        fs::copy(at(&next, "meta"), at(&cache, "meta")).unwrap();
        // The replacement is whole: a hit, with its bytes.
        assert_eq!(cache.take(Kind::Lineage, &key("l"), &dest).unwrap(), b"2");
        assert_eq!(fs::read(&dest).unwrap(), b"the new pieces, longer");
    }

    /// Sets the modification time of `path`.
    fn age(path: &Path, t: SystemTime) {
        File::options()
            .append(true)
            .open(path)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    #[test]
    fn debris_counts_against_the_limit_and_is_evicted_once_settled() {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::open(d.path()).unwrap();
        let src = d.path().join("f");
        fs::write(&src, vec![7u8; 1000]).unwrap();
        cache.put(Kind::Reduce, &key("kept"), &src, b"").unwrap();
        let entry = cache.size();
        let root = d.path().join(VERSION_DIR);
        let long_ago = SystemTime::now() - 2 * DEBRIS_AGE;
        // A data file whose meta never came, and a temporary file of a
        // process that died, both long ago.
        let orphan = root.join("map").join("0123.data");
        fs::write(&orphan, vec![1u8; 5000]).unwrap();
        age(&orphan, long_ago);
        let leftover = root.join("tmp").join("mr-cache-1-2-3");
        fs::write(&leftover, vec![2u8; 7000]).unwrap();
        age(&leftover, long_ago);
        // The same, just written: a store or a copy in progress.
        let fresh = root.join("map").join("4567.data");
        fs::write(&fresh, vec![3u8; 100]).unwrap();
        let copying = root.join("tmp").join("mr-cache-1-2-4");
        fs::write(&copying, vec![4u8; 100]).unwrap();
        assert_eq!(cache.size(), entry + 12_000);
        // Room for the entry alone: the debris goes (oldest first), the
        // entry and what is in progress stay.
        assert_eq!(cache.evict(entry), 12_000);
        assert!(!orphan.exists() && !leftover.exists());
        assert!(fresh.exists() && copying.exists());
        let dest = d.path().join("t");
        assert!(cache.take(Kind::Reduce, &key("kept"), &dest).is_some());
        assert_eq!(cache.entries_of(Kind::Reduce), 1);
    }

    #[test]
    fn another_versions_cache_is_not_read_and_a_bad_dir_is_named() {
        let d = tempfile::tempdir().unwrap();
        // A directory of a later format beside ours: untouched, unread.
        fs::create_dir_all(d.path().join("mr-cache-v3/map")).unwrap();
        fs::write(d.path().join("mr-cache-v3/map/x.meta"), b"future").unwrap();
        let cache = Cache::open(d.path()).unwrap();
        assert_eq!(cache.size(), 0);
        assert!(d.path().join("mr-cache-v3/map/x.meta").exists());
        let file = d.path().join("plain");
        fs::write(&file, b"").unwrap();
        let e = Cache::open(&file).unwrap_err().to_string();
        assert!(e.contains("plain") && e.contains("--cache"), "{e}");
    }
}
