//! Job planning: from the user's input arguments to checked files and splits.
//!
//! Inputs are validated up front, so a job over a missing file, a directory
//! or a pattern that matches nothing fails before any work starts, with a
//! message that names the culprit.

use crate::codec::Codec;
use crate::messages::{FilePart, InputSplit};
use std::path::{Path, PathBuf};

/// One validated input file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputFile {
    /// The path as the user gave it (or as the glob produced it).
    pub name: String,
    /// Absolute path, for workers whose working directory differs.
    pub path: PathBuf,
    /// Size in bytes at planning time.
    pub len: u64,
    /// For an object: its ETag when listed (reads check it is unchanged).
    pub version: Option<String>,
}

/// Why the inputs cannot make a job.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// No input arguments at all.
    #[error("no input files given; pass file paths or glob patterns, e.g. 'data/pg-*.txt'")]
    NoInputs,
    /// A pattern is not valid glob syntax.
    #[error("input pattern '{pattern}' is not a valid glob: {reason}")]
    BadPattern {
        /// The argument.
        pattern: String,
        /// What glob said.
        reason: String,
    },
    /// A glob pattern matched no files.
    #[error("input pattern '{0}' matches no files")]
    NoMatch(String),
    /// A path does not exist.
    #[error("input file '{0}' does not exist")]
    Missing(String),
    /// A path is a directory.
    #[error("input '{0}' is a directory; give the files inside it (e.g. '{0}/*')")]
    Directory(String),
    /// A path is not a regular file (fifo, socket, device).
    #[error("input '{0}' is not a regular file")]
    NotAFile(String),
    /// A path cannot be opened for reading.
    #[error("input file '{path}' cannot be read: {reason}")]
    Unreadable {
        /// The path.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// A path is not valid UTF-8 (names travel to apps as strings).
    #[error("input path '{0}' is not valid UTF-8; rename the file")]
    NotUtf8(String),
    /// An object input could not be listed: the object store's own error
    /// (which names the URL), kept whole with its kind rather than as text.
    #[error(transparent)]
    Object(Box<dyn std::error::Error + Send + Sync>),
    /// An input URL of a scheme this framework does not read.
    #[error("input '{0}' has a URL scheme this framework does not read; give a local path or an s3://BUCKET/KEY object URL")]
    Scheme(String),
    /// An object URL, where objects cannot be read.
    #[error("input '{0}' is an object URL, but this program reads local files only")]
    NoObjects(String),
    /// A file of fixed-length records whose length is not a whole number
    /// of them.
    #[error("input file '{path}' is {len} bytes, not a whole number of {size}-byte records ({} whole and {} bytes over); give files of whole records, or another --record-size", len / u64::from(*size), len % u64::from(*size))]
    PartialRecord {
        /// The file.
        path: String,
        /// Its length.
        len: u64,
        /// The record size.
        size: u32,
    },
}

/// The largest fixed-length record (16 MiB): a record is mapped in one
/// piece and held whole in memory, as a line is.
pub const MAX_RECORD: u32 = 16 << 20;

/// Refuses a `--record-size` of 0 or past [`MAX_RECORD`], in words naming
/// the flag.
pub fn check_record_size(size: u32) -> Result<(), String> {
    match size {
        0 => Err("--record-size must be at least 1 byte".into()),
        n if n > MAX_RECORD => Err(format!(
            "--record-size {n}: records are held whole in memory, at most {} MiB each",
            MAX_RECORD >> 20
        )),
        _ => Ok(()),
    }
}

/// Checks that every input holds whole `size`-byte records (compressed
/// files are checked as they are decoded: their length here is not their
/// records').
pub fn check_records(files: &[InputFile], size: u32) -> Result<(), PlanError> {
    let bad = files
        .iter()
        .find(|f| size > 0 && Codec::of(&f.name).is_none() && f.len % u64::from(size) != 0);
    match bad {
        Some(f) => Err(PlanError::PartialRecord {
            path: f.name.clone(),
            len: f.len,
            size,
        }),
        None => Ok(()),
    }
}

fn has_glob_meta(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Lists object inputs (`s3://...`) for the planner. The object store
/// client lives elsewhere (`mr-store`), so this crate stays small.
pub trait ObjectLister {
    /// The objects `arg` names (one URL, or a glob over keys), in order,
    /// with size and ETag; an error naming `arg` when there are none.
    fn list(&self, arg: &str) -> Result<Vec<InputFile>, PlanError>;
}

/// Expands and validates local input arguments, in order (see [`expand_inputs_with`]).
pub fn expand_inputs(args: &[String]) -> Result<Vec<InputFile>, PlanError> {
    expand_inputs_with(args, None)
}

/// Expands and validates the input arguments, in order: local paths and
/// glob patterns, and, with `objects`, object URLs. A plain path that
/// exists is taken as is, even if it contains glob characters.
pub fn expand_inputs_with(
    args: &[String],
    objects: Option<&dyn ObjectLister>,
) -> Result<Vec<InputFile>, PlanError> {
    if args.is_empty() {
        return Err(PlanError::NoInputs);
    }
    let mut files = Vec::new();
    for arg in args {
        if let Some((scheme, _)) = arg.split_once("://") {
            match (scheme, objects) {
                ("s3", Some(lister)) => files.extend(lister.list(arg)?),
                ("s3", None) => return Err(PlanError::NoObjects(arg.clone())),
                _ => return Err(PlanError::Scheme(arg.clone())),
            }
        } else if has_glob_meta(arg) && !Path::new(arg).exists() {
            let paths = glob::glob(arg).map_err(|e| PlanError::BadPattern {
                pattern: arg.clone(),
                reason: e.to_string(),
            })?;
            let mut matched = 0;
            for entry in paths {
                let path = entry.map_err(|e| PlanError::Unreadable {
                    path: e.path().display().to_string(),
                    reason: e.error().to_string(),
                })?;
                let name = path
                    .to_str()
                    .ok_or_else(|| PlanError::NotUtf8(path.display().to_string()))?
                    .to_string();
                files.push(check_file(&name)?);
                matched += 1;
            }
            if matched == 0 {
                return Err(PlanError::NoMatch(arg.clone()));
            }
        } else {
            files.push(check_file(arg)?);
        }
    }
    Ok(files)
}

/// Checks that `name` is a readable regular file and records its size.
fn check_file(name: &str) -> Result<InputFile, PlanError> {
    let meta = std::fs::metadata(name).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => PlanError::Missing(name.to_string()),
        _ => PlanError::Unreadable {
            path: name.to_string(),
            reason: e.to_string(),
        },
    })?;
    if meta.is_dir() {
        return Err(PlanError::Directory(name.to_string()));
    }
    if !meta.is_file() {
        return Err(PlanError::NotAFile(name.to_string()));
    }
    // Opening proves readability now, not only permission bits.
    std::fs::File::open(name).map_err(|e| PlanError::Unreadable {
        path: name.to_string(),
        reason: e.to_string(),
    })?;
    let path = std::path::absolute(name).map_err(|e| PlanError::Unreadable {
        path: name.to_string(),
        reason: e.to_string(),
    })?;
    Ok(InputFile {
        name: name.to_string(),
        path,
        len: meta.len(),
        version: None,
    })
}

/// A byte range of one input file, named by the file's number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartRange {
    /// The file's number in the planned inputs.
    pub file: u32,
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// Every split's ranges, flat and without names (a million splits cost 24
/// bytes a range): split `i` is `parts[starts[i]..starts[i + 1]]`.
#[derive(Clone, Debug, Default)]
pub struct SplitPlan {
    parts: Vec<PartRange>,
    starts: Vec<u32>,
}

impl SplitPlan {
    /// Number of splits.
    pub fn len(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    /// Whether there are no splits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ranges of split `i`.
    pub fn ranges(&self, i: usize) -> &[PartRange] {
        &self.parts[self.starts[i] as usize..self.starts[i + 1] as usize]
    }

    /// Split `i` as workers are told it, with the names and paths of `files`
    /// (the inputs the plan was made from).
    pub fn split(&self, i: usize, files: &[InputFile]) -> InputSplit {
        InputSplit {
            parts: self
                .ranges(i)
                .iter()
                .map(|r| {
                    let f = &files[r.file as usize];
                    FilePart {
                        name: f.name.clone(),
                        path: f.path.clone(),
                        start: r.start,
                        end: r.end,
                        file_len: f.len,
                        version: f.version.clone(),
                    }
                })
                .collect(),
        }
    }

    /// A plan of exactly these splits, in order (each a list of ranges; an
    /// empty list is skipped).
    pub fn from_splits(splits: impl IntoIterator<Item = Vec<PartRange>>) -> SplitPlan {
        let mut plan = SplitPlan::default();
        for split in splits {
            for r in split {
                plan.push(r.file as usize, r.start, r.end);
            }
            plan.cut();
        }
        plan
    }

    fn push(&mut self, file: usize, start: u64, end: u64) {
        if self.starts.is_empty() {
            self.starts.push(0);
        }
        self.parts.push(PartRange {
            file: file as u32,
            start,
            end,
        });
    }

    /// Ends the split under way, if it has a range.
    fn cut(&mut self) {
        let open = self.starts.last().map_or(0, |&s| s as usize) < self.parts.len();
        if open {
            self.starts.push(self.parts.len() as u32);
        }
    }
}

/// Cuts the files into splits of `split_size` bytes (the last may be
/// shorter). Large files are cut into several splits; small ones are packed
/// together, in order, so ten thousand tiny inputs do not make ten thousand
/// tasks. Apps that need whole files get one split per file instead. Byte
/// ranges only: the worker aligns each range to line starts, so a line
/// belongs to the range it starts in. Empty files ride along as empty ranges.
/// A compressed file ([`Codec`]) is never cut: it is one range, packed with
/// others while it fits, else a split of its own. Files of fixed-length
/// records (`record_size` > 0) are cut only between records.
pub fn plan_splits(
    files: &[InputFile],
    split_size: u64,
    whole_file: bool,
    record_size: u32,
) -> SplitPlan {
    let mut plan = SplitPlan::default();
    if whole_file {
        for (i, f) in files.iter().enumerate() {
            plan.push(i, 0, f.len);
            plan.cut();
        }
        return plan;
    }
    let split_size = split_size.max(1);
    let mut room = split_size;
    for (i, f) in files.iter().enumerate() {
        if f.len == 0 {
            plan.push(i, 0, 0);
            continue;
        }
        if Codec::of(&f.name).is_some() {
            if f.len > room {
                plan.cut();
                room = split_size;
            }
            plan.push(i, 0, f.len);
            room = room.saturating_sub(f.len);
            if room == 0 {
                plan.cut();
                room = split_size;
            }
            continue;
        }
        let record = u64::from(record_size.max(1));
        let mut off = 0;
        while off < f.len {
            let mut take = room.min(f.len - off);
            if take < f.len - off {
                // A cut between records, never inside one.
                take = take / record * record;
                if take == 0 && room < split_size {
                    // Not a record's room left: the next split takes it.
                    plan.cut();
                    room = split_size;
                    continue;
                }
                // A split smaller than a record still holds one.
                take = take.max(record).min(f.len - off);
            }
            plan.push(i, off, off + take);
            off += take;
            room = room.saturating_sub(take);
            if room == 0 {
                plan.cut();
                room = split_size;
            }
        }
    }
    plan.cut();
    plan
}

/// [`plan_splits`], each split with its files' names and paths.
pub fn make_splits(
    files: &[InputFile],
    split_size: u64,
    whole_file: bool,
    record_size: u32,
) -> Vec<InputSplit> {
    let plan = plan_splits(files, split_size, whole_file, record_size);
    (0..plan.len()).map(|i| plan.split(i, files)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, len: u64) -> InputFile {
        InputFile {
            version: None,
            name: name.into(),
            path: format!("/{name}").into(),
            len,
        }
    }

    #[test]
    fn fixed_records_are_cut_between_records_only() {
        let files = [file("a", 1000), file("b", 250)];
        let s = make_splits(&files, 250, false, 100);
        for split in &s {
            for p in &split.parts {
                assert!(p.start % 100 == 0, "{p:?}");
                assert!(p.end % 100 == 0 || p.end == p.file_len, "{p:?}");
            }
        }
        let total: u64 = s
            .iter()
            .flat_map(|x| &x.parts)
            .map(|p| p.end - p.start)
            .sum();
        assert_eq!(total, 1250);
        // A split smaller than a record still holds one.
        let tiny = make_splits(&files[..1], 7, false, 100);
        assert_eq!(tiny.len(), 10);
        assert!(check_records(&files, 100).is_err());
        let e = check_records(&files[..1], 300).unwrap_err().to_string();
        assert!(
            e.contains("'a'") && e.contains("1000 bytes") && e.contains("300"),
            "{e}"
        );
        assert!(check_records(&files[..1], 100).is_ok());
    }

    fn ranges(s: &[InputSplit]) -> Vec<Vec<(String, u64, u64)>> {
        s.iter()
            .map(|s| {
                s.parts
                    .iter()
                    .map(|p| (p.name.clone(), p.start, p.end))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn splits_cut_large_files_and_pack_small_ones() {
        let files = [file("a", 10), file("e", 0), file("b", 4), file("c", 1)];
        let s = make_splits(&files, 4, false, 0);
        let r = |n: &str, a, b| (n.to_string(), a, b);
        assert_eq!(
            ranges(&s),
            vec![
                vec![r("a", 0, 4)],
                vec![r("a", 4, 8)],
                vec![r("a", 8, 10), r("e", 0, 0), r("b", 0, 2)],
                vec![r("b", 2, 4), r("c", 0, 1)],
            ]
        );
        assert!(s[..3].iter().all(|s| s.len() == 4));
        let whole = make_splits(&files, 4, true, 0);
        assert_eq!(whole.len(), 4);
        assert_eq!(ranges(&whole)[0], vec![r("a", 0, 10)]);
    }

    #[test]
    fn compressed_files_are_never_cut() {
        let files = [
            file("a", 3),
            file("big.gz", 10),
            file("b", 1),
            file("s.zst", 2),
            file("c", 5),
        ];
        let s = make_splits(&files, 4, false, 0);
        let r = |n: &str, a, b| (n.to_string(), a, b);
        assert_eq!(
            ranges(&s),
            vec![
                vec![r("a", 0, 3)],
                vec![r("big.gz", 0, 10)],
                vec![r("b", 0, 1), r("s.zst", 0, 2), r("c", 0, 1)],
                vec![r("c", 1, 5)],
            ]
        );
    }

    #[test]
    fn bad_inputs_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let missing = format!("{d}/nope.txt");
        let msg = expand_inputs(std::slice::from_ref(&missing))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains(&missing) && msg.contains("does not exist"),
            "{msg}"
        );
        let msg = expand_inputs(std::slice::from_ref(&d))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("is a directory"), "{msg}");
        let pat = format!("{d}/*.txt");
        let msg = expand_inputs(std::slice::from_ref(&pat))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains(&pat) && msg.contains("matches no files"),
            "{msg}"
        );
        assert!(matches!(expand_inputs(&[]), Err(PlanError::NoInputs)));
    }

    #[test]
    fn globs_expand_in_order_and_keep_names() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["b.txt", "a.txt", "c.log"] {
            std::fs::write(dir.path().join(n), "x\n").unwrap();
        }
        let pat = format!("{}/*.txt", dir.path().display());
        let files = expand_inputs(&[pat]).unwrap();
        let names: Vec<&str> = files
            .iter()
            .map(|f| f.name.rsplit('/').next().unwrap())
            .collect();
        assert_eq!(names, ["a.txt", "b.txt"]);
        assert!(files.iter().all(|f| f.len == 2 && f.path.is_absolute()));
    }
}
