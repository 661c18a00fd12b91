//! What went wrong with a store call, typed so that callers decide by
//! kind (is the object gone, are the credentials refused, did a condition
//! fail, may trying later help) and messages name the fix that fits.
//!
//! The kind comes from the client's typed errors where it has them (not
//! found, permission, precondition), from its transport errors (no answer
//! at all), and otherwise from the S3 error document the store sent back:
//! its `<Code>` is part of the S3 API (`SlowDown`, `AccessDenied`, ...),
//! parsed as XML, once, here.

use serde::Deserialize;

/// Why an object could not be listed, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is not `s3://BUCKET/KEY`.
    #[error("'{url}' is not a valid object URL ({why}); write s3://BUCKET/KEY or s3://BUCKET/prefix/*.txt")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The store could not be set up from the environment.
    #[error("cannot use the object store for {url}: {reason}; set AWS_ENDPOINT_URL, AWS_REGION and credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)")]
    Config {
        /// The URL.
        url: String,
        /// What the client said.
        reason: String,
    },
    /// The object is not there.
    #[error("object {url} does not exist")]
    Missing {
        /// The URL.
        url: String,
    },
    /// A pattern matched no object.
    #[error("no object matches {0}; check the bucket, prefix and pattern")]
    NoMatch(String),
    /// The object changed since the job was planned.
    #[error("object {url} changed since the job was planned (its ETag is no longer {etag}); inputs must not change during a job")]
    Changed {
        /// The URL.
        url: String,
        /// The ETag planned.
        etag: String,
    },
    /// Objects cannot be written under an output prefix.
    #[error("cannot write objects under {url}: {reason}; {}", kind.write_hint())]
    NotWritable {
        /// The prefix.
        url: String,
        /// What kind of failure it was.
        kind: ErrorKind,
        /// What the store said.
        reason: String,
    },
    /// A local file an object was copied from or to could not be used.
    #[error("cannot use {path} for object {url}: {source}")]
    Local {
        /// The object's URL.
        url: String,
        /// The local file.
        path: std::path::PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Anything else the store or the network said.
    #[error("object store error on {url}: {reason}{}", kind.hint())]
    Store {
        /// The URL.
        url: String,
        /// What kind of failure it was.
        kind: ErrorKind,
        /// What went wrong, in the store's words (shortened).
        reason: String,
    },
}

impl StoreError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Missing { .. } | StoreError::NoMatch(_) => ErrorKind::NotFound,
            StoreError::Changed { .. } => ErrorKind::PreconditionFailed,
            StoreError::NotWritable { kind, .. } | StoreError::Store { kind, .. } => *kind,
            StoreError::BadUrl { .. } | StoreError::Config { .. } | StoreError::Local { .. } => {
                ErrorKind::Other
            }
        }
    }

    /// A failure of the store itself (kind `Other`) at `url`, with `reason`.
    pub fn other(url: &str, reason: impl std::fmt::Display) -> StoreError {
        StoreError::Store {
            url: url.to_string(),
            kind: ErrorKind::Other,
            reason: reason.to_string(),
        }
    }
}

/// What kind of failure a store call met: what a caller decides by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The object, bucket or upload is not there.
    NotFound,
    /// The credentials are missing, wrong or not allowed to do this.
    AccessDenied,
    /// A condition of the request did not hold: the object changed, or
    /// already exists.
    PreconditionFailed,
    /// The store asked for fewer requests, or failed inside, through all
    /// the client's retries: later may pass. Known from the store's error
    /// document; a reply without one (to a HEAD) is `Other`, since the
    /// client does not expose its status.
    Throttled,
    /// No answer: the endpoint could not be reached or did not reply in
    /// time, through all the client's retries: later may pass.
    Unreachable,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// Whether the same call may pass later (the client has already tried
    /// again a few times within seconds).
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorKind::Throttled | ErrorKind::Unreachable)
    }

    /// What to do about it, appended to a store error's message.
    fn hint(self) -> &'static str {
        match self {
            ErrorKind::AccessDenied => "; check that the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) are valid and allowed there",
            ErrorKind::Throttled => "; the store is overloaded or failing: run again later, or with fewer workers",
            ErrorKind::Unreachable => "; check AWS_ENDPOINT_URL and that the store is up and reachable",
            ErrorKind::NotFound | ErrorKind::PreconditionFailed | ErrorKind::Other => "",
        }
    }

    /// What to do when objects cannot be written under a prefix.
    fn write_hint(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "check that the bucket exists",
            ErrorKind::AccessDenied => "check that the credentials may write there",
            ErrorKind::Unreachable => {
                "check AWS_ENDPOINT_URL and that the store is up and reachable"
            }
            ErrorKind::Throttled => "the store is overloaded or failing: run again later",
            ErrorKind::PreconditionFailed | ErrorKind::Other => {
                "check that the bucket exists and the credentials may write there"
            }
        }
    }
}

/// The client's error for the object at `url`, as ours: missing objects
/// are [`StoreError::Missing`], the rest a [`StoreError::Store`] of the
/// kind the client's error says.
pub(crate) fn store_error(url: &str, e: object_store::Error) -> StoreError {
    match e {
        object_store::Error::NotFound { .. } => StoreError::Missing {
            url: url.to_string(),
        },
        other => StoreError::Store {
            url: url.to_string(),
            kind: kind_of(&other),
            reason: concise(&other.to_string()),
        },
    }
}

/// An `io::Error` met while reading or writing `url` as ours: the store
/// error inside it (our readers and writers carry theirs so), or else a
/// failure of kind `Other`.
pub(crate) fn from_io(url: &str, e: std::io::Error) -> StoreError {
    carried(e).unwrap_or_else(|e| StoreError::other(url, e))
}

/// The store error an `io::Error` carries, or the error back if it
/// carries none (it came from a local file).
pub(crate) fn carried(e: std::io::Error) -> Result<StoreError, std::io::Error> {
    e.downcast::<StoreError>()
}

/// The kind of the client's error `e`: a 404 is not found whatever it
/// says; otherwise the store's own error document says, when it sent one
/// (its code is finer than the status: a 403 may be an archived object
/// or a skewed clock, not refused credentials); else the client's typed
/// error, or a transport error in the chain (no reply at all).
pub(crate) fn kind_of(e: &object_store::Error) -> ErrorKind {
    use object_store::Error as E;
    if let E::NotFound { .. } = e {
        return ErrorKind::NotFound;
    }
    if let Some(document) = ErrorDocument::find(&e.to_string()) {
        return document.kind();
    }
    match e {
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => return ErrorKind::AccessDenied,
        E::Precondition { .. } | E::AlreadyExists { .. } | E::NotModified { .. } => {
            return ErrorKind::PreconditionFailed
        }
        _ => {}
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(http) = c.downcast_ref::<object_store::client::HttpError>() {
            return transport_kind(http);
        }
        cause = c.source();
    }
    ErrorKind::Other
}

/// The kind of a request that got no usable reply: `Unreachable` when
/// the endpoint could not be reached, dropped the connection or did not
/// answer in time (not when the reply could not be decoded).
pub(crate) fn transport_kind(e: &object_store::client::HttpError) -> ErrorKind {
    use object_store::client::HttpErrorKind as H;
    match e.kind() {
        H::Connect | H::Request | H::Timeout | H::Interrupted => ErrorKind::Unreachable,
        _ => ErrorKind::Other,
    }
}

/// An S3 error response's body: `<Error><Code>..</Code><Message>..`.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct ErrorDocument {
    /// The error's code, e.g. `NoSuchBucket`.
    pub(crate) code: String,
    /// What it says to a person.
    pub(crate) message: String,
}

impl ErrorDocument {
    /// The error document within `text` (the client puts the body of a
    /// failed response at the end of its message), if there is one.
    pub(crate) fn find(text: &str) -> Option<ErrorDocument> {
        let at = text.find("<?xml").or_else(|| text.find("<Error>"))?;
        let doc: ErrorDocument = quick_xml::de::from_str(&text[at..]).ok()?;
        (!doc.code.is_empty()).then_some(doc)
    }

    /// The kind of failure its code names (S3's documented codes; a store
    /// of another make that uses its own is `Other`).
    pub(crate) fn kind(&self) -> ErrorKind {
        match self.code.as_str() {
            "NoSuchKey" | "NoSuchBucket" | "NoSuchUpload" => ErrorKind::NotFound,
            "AccessDenied"
            | "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "ExpiredToken"
            | "InvalidToken"
            | "AllAccessDisabled" => ErrorKind::AccessDenied,
            "PreconditionFailed" | "ConditionalRequestConflict" => ErrorKind::PreconditionFailed,
            "SlowDown"
            | "Throttling"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "TooManyRequests"
            | "ServiceUnavailable"
            | "InternalError" => ErrorKind::Throttled,
            _ => ErrorKind::Other,
        }
    }
}

/// The client's error text with an S3 error document (XML, request ids)
/// replaced by its code and message: what a person needs to read.
pub(crate) fn concise(text: &str) -> String {
    let Some(at) = text.find("<?xml").or_else(|| text.find("<Error>")) else {
        return text.to_string();
    };
    let head = text[..at].trim_end().trim_end_matches(':');
    let said = match ErrorDocument::find(text) {
        Some(d) if d.message.is_empty() => d.code,
        Some(d) => format!("{} ({})", d.code, d.message),
        None => return head.to_string(),
    };
    match head.is_empty() {
        true => said,
        false => format!("{head}: {said}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_BUCKET: &str = "Error performing POST http://h/b/k?uploads= - Server returned non-2xx status code: 404 Not Found: <?xml version=\"1.0\"?>\n<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><RequestId>XYZ</RequestId></Error>";

    #[test]
    fn s3_error_documents_shrink_to_code_and_message() {
        assert_eq!(
            concise(NO_BUCKET),
            "Error performing POST http://h/b/k?uploads= - Server returned non-2xx status code: 404 Not Found: NoSuchBucket (The specified bucket does not exist)"
        );
        assert_eq!(concise("plain words"), "plain words");
        assert_eq!(
            concise("failed: <Error><Code>SlowDown</Code></Error>"),
            "failed: SlowDown"
        );
        // Not XML after all: the text up to it, not a panic.
        assert_eq!(concise("bad: <Error><Code>x"), "bad");
        // A body that is only the document.
        assert_eq!(
            concise("<Error><Code>SlowDown</Code><Message>m</Message></Error>"),
            "SlowDown (m)"
        );
    }

    #[test]
    fn error_codes_give_kinds_callers_decide_by() {
        let kind = |code: &str| {
            let text = format!("503: <Error><Code>{code}</Code><Message>m</Message></Error>");
            ErrorDocument::find(&text).map(|d| d.kind())
        };
        assert_eq!(
            ErrorDocument::find(NO_BUCKET).map(|d| d.kind()),
            Some(ErrorKind::NotFound)
        );
        assert_eq!(kind("AccessDenied"), Some(ErrorKind::AccessDenied));
        assert_eq!(kind("SignatureDoesNotMatch"), Some(ErrorKind::AccessDenied));
        assert_eq!(kind("SlowDown"), Some(ErrorKind::Throttled));
        assert_eq!(
            kind("PreconditionFailed"),
            Some(ErrorKind::PreconditionFailed)
        );
        assert_eq!(kind("SomethingNew"), Some(ErrorKind::Other));
        assert_eq!(ErrorDocument::find("no document here"), None);
        assert!(ErrorKind::Throttled.is_transient() && ErrorKind::Unreachable.is_transient());
        assert!(!ErrorKind::AccessDenied.is_transient() && !ErrorKind::NotFound.is_transient());
    }

    #[test]
    fn a_stores_code_is_finer_than_its_status_and_a_dropped_call_is_unreachable() {
        use object_store::client::{HttpError, HttpErrorKind};
        use object_store::Error as E;
        let denied = |body: &str| E::PermissionDenied {
            path: "k".into(),
            source: body.to_string().into(),
        };
        // A 403 whose code says the object is archived: not the credentials.
        let archived = denied("403: <Error><Code>InvalidObjectState</Code></Error>");
        assert_eq!(kind_of(&archived), ErrorKind::Other);
        assert_eq!(kind_of(&denied("403 Forbidden")), ErrorKind::AccessDenied);
        let missing = E::NotFound {
            path: "k".into(),
            source: "<Error><Code>AccessDenied</Code></Error>".into(),
        };
        assert_eq!(kind_of(&missing), ErrorKind::NotFound);
        let dropped = |kind| E::Generic {
            store: "S3",
            source: Box::new(HttpError::new(kind, std::io::Error::other("reset"))),
        };
        assert_eq!(
            kind_of(&dropped(HttpErrorKind::Connect)),
            ErrorKind::Unreachable
        );
        assert_eq!(
            kind_of(&dropped(HttpErrorKind::Request)),
            ErrorKind::Unreachable
        );
        assert_eq!(kind_of(&dropped(HttpErrorKind::Decode)), ErrorKind::Other);
        // A store error carried through an io::Error comes back whole.
        let carried_back = from_io(
            "s3://b/k",
            std::io::Error::other(StoreError::other("s3://b/k", "x")),
        );
        assert!(matches!(carried_back, StoreError::Store { .. }));
        let local = carried(std::io::Error::other("disk"));
        assert!(local.is_err());
    }

    #[test]
    fn messages_name_the_fix_that_fits_the_kind() {
        let e = |kind| {
            StoreError::Store {
                url: "s3://b/k".into(),
                kind,
                reason: "r".into(),
            }
            .to_string()
        };
        assert!(e(ErrorKind::AccessDenied).contains("AWS_ACCESS_KEY_ID"));
        assert!(e(ErrorKind::Unreachable).contains("AWS_ENDPOINT_URL"));
        assert!(e(ErrorKind::Throttled).contains("later"));
        assert_eq!(e(ErrorKind::Other), "object store error on s3://b/k: r");
        let w = StoreError::NotWritable {
            url: "s3://b/".into(),
            kind: ErrorKind::NotFound,
            reason: "NoSuchBucket".into(),
        };
        assert!(
            w.to_string().ends_with("check that the bucket exists"),
            "{w}"
        );
        assert_eq!(w.kind(), ErrorKind::NotFound);
    }
}
