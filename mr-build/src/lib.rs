//! The identity of this build of the framework.
//!
//! A version string says what a build claims to be, not what it runs: two
//! builds of 0.1.0 may map or reduce differently. The build id is the
//! SHA-256 of what the code is made from (every source file of the crates
//! that make a job's outputs, `Cargo.lock` and the manifests, the
//! compiler's `rustc -vV`, the profile, target and flags; see `build.rs`),
//! so the binaries of one build share it and any change to them changes it.
//! It goes into every cache key of a built-in app's outputs, and a
//! coordinator refuses workers of another build.

/// This build's id: 64 hex digits.
pub const BUILD_ID: &str = env!("MR_BUILD_ID");

/// What `--version` prints: the package version and the build id.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (build ",
    env!("MR_BUILD_ID"),
    ")"
);

/// How many files the id was made from (a sanity check: the id of a build
/// that found no sources would name nothing).
pub const BUILD_FILES: &str = env!("MR_BUILD_FILES");

/// The id's first 12 digits, for messages.
pub fn short() -> &'static str {
    &BUILD_ID[..12]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_a_sha256_made_from_the_sources() {
        assert_eq!(BUILD_ID.len(), 64);
        assert!(BUILD_ID.bytes().all(|b| b.is_ascii_hexdigit()));
        // Eight crates' manifests and sources, the lock file: far more
        // than 8 files, or the build script looked in the wrong place.
        let files: usize = BUILD_FILES.parse().unwrap();
        assert!(files > 50, "the build id was made from {files} files");
        assert_eq!(short(), &BUILD_ID[..12]);
    }
}
