//! Incremental re-runs: what a job can reuse from earlier runs without
//! computing it again, safe by construction (a reused result is
//! byte-identical to what recomputing would give).
//!
//! - [`chunk`]: content-defined split boundaries, so that an edit moves one
//!   or two splits rather than every later one.
//! - [`plan`]: splits made of those pieces, with what their content
//!   addresses are made of.
//! - [`partitions`]: a map output's partitions' addresses and segments,
//!   and a reduce's address made from them (a reduce whose partitions are
//!   unchanged is reused).
//! - [`reuse`]: which segments of an earlier reduce output still hold when
//!   a few of its inputs changed (those are copied, the rest reduced).
//! - [`identity`]: what identifies the code that makes the outputs (the
//!   build, the app, a plugin's or a streaming command's files).
//! - [`job`]: a job's cache: its tasks' addresses, what it takes from the
//!   cache and what it keeps (shared by `mrcoordinator` and `mrsequential`).
//! - [`store`]: the cache (a directory or an `s3://` prefix), entries
//!   named by [`Key`]s: the hash of
//!   everything that determines a result (a split's bytes, the app's
//!   identity, R, the partitioner, the run-file format).

pub mod chunk;
pub mod identity;
pub mod job;
pub mod partitions;
pub mod plan;
pub mod reuse;
pub mod store;

pub use store::{Cache, CacheError, Kind};

/// A content address: SHA-256 over everything that determines a result.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Key(pub [u8; 32]);

impl Key {
    /// The address of `parts`, each length-prefixed so that no two
    /// different lists of parts hash the same bytes.
    pub fn of(parts: &[&[u8]]) -> Key {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for p in parts {
            ctx.update(&(p.len() as u64).to_le_bytes());
            ctx.update(p);
        }
        let mut k = [0u8; 32];
        k.copy_from_slice(ctx.finish().as_ref());
        Key(k)
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_delimited() {
        assert_ne!(Key::of(&[b"ab", b"c"]), Key::of(&[b"a", b"bc"]));
        assert_ne!(Key::of(&[b"abc"]), Key::of(&[b"abc", b""]));
        assert_eq!(Key::of(&[b"x"]), Key::of(&[b"x"]));
        assert_eq!(Key::of(&[]).to_string().len(), 64);
    }
}
