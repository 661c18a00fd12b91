//! The MapReduce paper's grep: every input line containing a pattern
//! (`--conf pattern=STRING`, matched as bytes), each as it was, as often
//! as it occurs.
//!
//! Map searches a whole chunk for the pattern (memchr's `memmem`, not line
//! by line: the pattern is rare) and emits each matching line as a key;
//! reduce writes the line once per occurrence ([`App::values_only`]), so
//! the outputs together hold what `grep -F` prints, sorted.

use crate::{App, Conf, ConfError, Emit, Values};

/// The `grep` app.
#[derive(Debug, Default, Clone)]
pub struct Grep {
    /// The bytes to look for; None until configured.
    pattern: Option<Vec<u8>>,
}

impl Grep {
    fn pattern(&self) -> &[u8] {
        self.pattern
            .as_deref()
            .expect("grep ran without its --conf pattern=...")
    }
}

impl App for Grep {
    fn name(&self) -> &str {
        "grep"
    }

    fn configure(&mut self, conf: &Conf) -> Result<(), ConfError> {
        let p = conf.require(
            "pattern",
            "the text to look for; lines containing it are output",
        )?;
        if p.contains('\n') {
            return Err(ConfError::Invalid {
                key: "pattern".into(),
                value: p.into(),
                reason: "a pattern cannot hold a newline: lines are matched one at a time".into(),
            });
        }
        self.pattern = Some(p.as_bytes().to_vec());
        Ok(())
    }

    fn values_only(&self) -> bool {
        true
    }

    fn map(&self, _filename: &str, chunk: &[u8], emit: &mut dyn Emit) {
        let pattern = self.pattern();
        let finder = memchr::memmem::Finder::new(pattern);
        let mut at = 0;
        while at < chunk.len() {
            let Some(hit) = finder.find(&chunk[at..]) else {
                break;
            };
            let hit = at + hit;
            let start = memchr::memrchr(b'\n', &chunk[..hit]).map_or(0, |i| i + 1);
            let end = memchr::memchr(b'\n', &chunk[hit..]).map_or(chunk.len(), |i| hit + i);
            emit.emit(&chunk[start..end], b"");
            at = end + 1;
        }
    }

    fn reduce(&self, key: &[u8], values: &mut dyn Values, out: &mut Vec<u8>) {
        while values.next_value().is_some() {
            out.extend_from_slice(key);
            out.push(b'\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SliceValues, VecEmit};

    fn grep(pattern: &str) -> Grep {
        let mut g = Grep::default();
        g.configure(&Conf::from_pairs([("pattern", pattern)]))
            .unwrap();
        g
    }

    fn lines(app: &Grep, chunk: &[u8]) -> Vec<String> {
        let mut e = VecEmit::default();
        app.map("in", chunk, &mut e);
        e.pairs
            .into_iter()
            .map(|(k, _)| String::from_utf8(k).unwrap())
            .collect()
    }

    #[test]
    fn each_matching_line_once_per_line() {
        let g = grep("ab");
        let chunk = b"xab ab\nnone\nab\r\nlast ab";
        assert_eq!(lines(&g, chunk), ["xab ab", "ab\r", "last ab"]);
        assert_eq!(lines(&g, b"a\nb\n"), Vec::<String>::new());
        assert_eq!(lines(&grep(""), b"a\n\nb"), ["a", "", "b"]);
    }

    #[test]
    fn reduce_writes_the_line_as_often_as_it_occurs() {
        let mut out = Vec::new();
        grep("x").reduce(b"a x", &mut SliceValues::new(&["", ""]), &mut out);
        assert_eq!(out, b"a x\na x\n");
    }

    #[test]
    fn the_pattern_is_required() {
        let err = Grep::default().configure(&Conf::default()).unwrap_err();
        assert!(err.to_string().contains("--conf pattern="), "{err}");
    }
}
