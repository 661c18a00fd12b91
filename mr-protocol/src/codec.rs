//! Compressed inputs, recognised by extension (`.gz`, `.zst`, `.bz2`), as
//! Hadoop and Spark recognise them. Both sides need the rule: the planner
//! never cuts a compressed file (a stream cannot be entered mid-way), and
//! the worker decompresses it as it maps.

/// A compression format the framework reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// gzip (`.gz`), including files of several concatenated members.
    Gzip,
    /// Zstandard (`.zst`).
    Zstd,
    /// bzip2 (`.bz2`).
    Bzip2,
}

impl Codec {
    /// The codec of the input named `name`, by its extension; None for
    /// anything else (read as it is).
    pub fn of(name: &str) -> Option<Codec> {
        let ext = name.rsplit_once('.')?.1;
        match ext.to_ascii_lowercase().as_str() {
            "gz" => Some(Codec::Gzip),
            "zst" => Some(Codec::Zstd),
            "bz2" => Some(Codec::Bzip2),
            _ => None,
        }
    }

    /// The codec's usual name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Zstd => "zstd",
            Codec::Bzip2 => "bzip2",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_by_extension() {
        assert_eq!(Codec::of("logs/a.txt.gz"), Some(Codec::Gzip));
        assert_eq!(Codec::of("A.ZST"), Some(Codec::Zstd));
        assert_eq!(Codec::of("x.bz2"), Some(Codec::Bzip2));
        for plain in ["a.txt", "gz", "a.gzip", "dir.gz/file", "noext"] {
            assert_eq!(Codec::of(plain), None, "{plain}");
        }
    }
}
