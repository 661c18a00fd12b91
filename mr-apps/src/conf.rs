//! Job parameters: the `--conf KEY=VALUE` pairs a job gives its app.
//!
//! The coordinator (or `mrsequential`) takes them from its command line,
//! ships them to every worker in the job's settings, records them in the
//! report and puts them in every cache key; an app receives them once,
//! through [`App::configure`](crate::App::configure), before it maps or
//! reduces anything. Keys are kept in order, so two jobs given the same
//! pairs in another order are the same job.

use std::collections::BTreeMap;

/// A job's parameters, by key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Conf {
    pairs: BTreeMap<String, String>,
}

/// Why an app cannot run with the parameters it was given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfError {
    /// A key the app needs was not given.
    #[error("needs --conf {key}=... ({what})")]
    Missing {
        /// The key.
        key: String,
        /// What its value is, for the message.
        what: String,
    },
    /// A key's value is not one the app accepts.
    #[error("--conf {key}={value}: {reason}")]
    Invalid {
        /// The key.
        key: String,
        /// The value given.
        value: String,
        /// What is wrong with it, and what would do.
        reason: String,
    },
}

impl Conf {
    /// The parameters of `pairs` (a later pair replaces an earlier one of
    /// the same key, as a later flag overrides an earlier one).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Conf {
        Conf {
            pairs: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// Parses one `KEY=VALUE` flag: the key is what precedes the first `=`,
    /// non-empty, of letters, digits, `.`, `_` and `-`; the value is the
    /// rest, any text (empty too).
    pub fn parse_flag(flag: &str) -> Result<(String, String), String> {
        let Some((key, value)) = flag.split_once('=') else {
            return Err(format!(
                "'{flag}' is not KEY=VALUE (say --conf pattern=needle)"
            ));
        };
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(format!(
                "'{key}' is not a parameter name: use letters, digits, '.', '_' and '-'"
            ));
        }
        Ok((key.to_string(), value.to_string()))
    }

    /// The value of `key`, if given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.get(key).map(String::as_str)
    }

    /// The value of `key`, which the app needs: `what` says what it is, for
    /// the refusal when it is missing.
    pub fn require(&self, key: &str, what: &str) -> Result<&str, ConfError> {
        self.get(key).ok_or_else(|| ConfError::Missing {
            key: key.to_string(),
            what: what.to_string(),
        })
    }

    /// The pairs, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The pairs as owned tuples, in key order (for the wire and the report).
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        self.pairs
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Whether no parameter was given.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// An unambiguous encoding, `key NUL value NUL` per pair in key order:
    /// what cache keys and the plugin ABI carry (neither a key nor a value
    /// from a command line can hold a NUL).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in &self.pairs {
            out.extend_from_slice(k.as_bytes());
            out.push(0);
            out.extend_from_slice(v.as_bytes());
            out.push(0);
        }
        out
    }

    /// The parameters of an [`encode`](Conf::encode)d buffer; None if it is
    /// not one.
    pub fn decode(bytes: &[u8]) -> Option<Conf> {
        if bytes.is_empty() {
            return Some(Conf::default());
        }
        let fields: Vec<&[u8]> = bytes.strip_suffix(&[0])?.split(|&b| b == 0).collect();
        if !fields.len().is_multiple_of(2) {
            return None;
        }
        let text = |b: &[u8]| std::str::from_utf8(b).ok().map(str::to_string);
        let mut pairs = BTreeMap::new();
        for kv in fields.chunks(2) {
            pairs.insert(text(kv[0])?, text(kv[1])?);
        }
        Some(Conf { pairs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_at_the_first_equals_sign() {
        assert_eq!(
            Conf::parse_flag("pattern=a=b").unwrap(),
            ("pattern".into(), "a=b".into())
        );
        assert_eq!(Conf::parse_flag("k=").unwrap(), ("k".into(), "".into()));
        for bad in ["novalue", "=x", "a b=c", "k\0=v"] {
            assert!(Conf::parse_flag(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn encoding_round_trips_and_ignores_order() {
        let a = Conf::from_pairs([("b", "2"), ("a", ""), ("c", "x=y")]);
        let b = Conf::from_pairs([("c", "x=y"), ("a", ""), ("b", "2")]);
        assert_eq!(a.encode(), b.encode());
        assert_eq!(Conf::decode(&a.encode()), Some(a.clone()));
        assert_eq!(Conf::decode(b""), Some(Conf::default()));
        assert_eq!(Conf::decode(b"a\0"), None);
        assert_eq!(Conf::decode(b"a\0b"), None);
    }

    #[test]
    fn a_missing_key_names_the_flag_to_give() {
        let err = Conf::default()
            .require("pattern", "the text to find")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "needs --conf pattern=... (the text to find)"
        );
    }
}
