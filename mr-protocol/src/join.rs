//! Job tokens and join secrets: what a worker must present to join a job,
//! and how it knows the coordinator it talks to is the job's.
//!
//! Each job has a token: the one given with `--token`/`MR_TOKEN`, else 128
//! random bits generated at the job's start. Workers are given it inside a
//! [`JoinSecret`], `mrj1:<token>:<fingerprint>`, whose fingerprint pins the
//! coordinator's TLS certificate (see [`crate::wire`]); the coordinator keeps
//! it in the job directory, so a restarted coordinator keeps both and its
//! workers can rejoin. Workers on the coordinator's own machine need not be
//! told: the coordinator publishes the join secret in a file only its user
//! can read, `<runtime dir>/<port>.token`, and a worker given none looks
//! there for the port it connects to. Workers on other hosts are given it
//! explicitly.
//!
//! Workers on the coordinator's machine may also reach it over its Unix
//! domain socket (the lab's `/var/tmp/5840-mr-<uid>`), where the socket's
//! permissions and the peer's uid authenticate instead of the token; an
//! [`Endpoint`] names either way in.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Environment variable that carries a token to workers (and to the coordinator).
pub const ENV: &str = "MR_TOKEN";

/// Environment variable a coordinator sets for the workers it starts
/// itself: its pid (see [`crate::RegisterRequest::embedded_by`]).
pub const EMBEDDED_BY_ENV: &str = "MR_EMBEDDED_BY";

/// Where a worker reaches its coordinator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `host:port` over TCP.
    Tcp(String),
    /// A Unix domain socket on this machine.
    Unix(PathBuf),
}

impl Endpoint {
    /// Parses an address: `unix:PATH` or an absolute path is a socket,
    /// anything else `host:port`.
    pub fn parse(s: &str) -> Endpoint {
        match s.strip_prefix("unix:") {
            Some(p) => Endpoint::Unix(PathBuf::from(p)),
            None if s.starts_with('/') => Endpoint::Unix(PathBuf::from(s)),
            None => Endpoint::Tcp(s.to_string()),
        }
    }

    /// The endpoint a worker given no address uses: the lab's socket when
    /// a coordinator has made it, else [`crate::DEFAULT_ADDR`].
    pub fn local_default() -> Endpoint {
        let sock = lab_socket();
        match std::fs::symlink_metadata(&sock) {
            Ok(m) if std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()) => {
                Endpoint::Unix(sock)
            }
            _ => Endpoint::Tcp(crate::DEFAULT_ADDR.to_string()),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp(a) => f.write_str(a),
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// The lab's coordinator socket for this user: `/var/tmp/5840-mr-<uid>`.
pub fn lab_socket() -> PathBuf {
    PathBuf::from(format!("/var/tmp/5840-mr-{}", nix::unistd::getuid()))
}

/// A fresh random token: 128 bits from the system's generator, as 32 hex
/// digits (also the tag of an object upload).
pub fn generate() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
    Ok(hex::encode(bytes))
}

/// Compares two tokens in time independent of where they differ (only
/// their lengths may tell: every token this job makes has the same).
pub fn matches(given: &str, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    given.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// The per-user directory where coordinators publish tokens for local workers:
/// `$XDG_RUNTIME_DIR/mapreduce`, else `/tmp/mapreduce-<uid>`.
pub fn runtime_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("mapreduce"),
        _ => {
            let uid = nix::unistd::getuid();
            std::env::temp_dir().join(format!("mapreduce-{uid}"))
        }
    }
}

/// The file a coordinator listening on `port` publishes its token in.
pub fn local_file(port: u16) -> PathBuf {
    runtime_dir().join(format!("{port}.token"))
}

/// Writes `token` to a 0600 file, creating it fresh (temp + rename) so no
/// other user can ever read it, even briefly.
pub fn write_private(path: &Path, token: &str) -> std::io::Result<()> {
    write_private_bytes(path, token.as_bytes())
}

/// Writes `bytes` to a 0600 file as [`write_private`] does.
pub fn write_private_bytes(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // A temporary file is made 0600 under a name of its own, then renamed.
    let mut f = tempfile::NamedTempFile::new_in(dir)?;
    f.write_all(bytes)?;
    f.as_file().sync_all()?;
    f.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Publishes the token for local workers of the coordinator on `port`.
/// The directory must be ours and closed to others, or we refuse to use it.
pub fn publish(port: u16, token: &str) -> std::io::Result<PathBuf> {
    let dir = runtime_dir();
    if let Err(e) = std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            return Err(e);
        }
    }
    let meta = std::fs::symlink_metadata(&dir)?;
    let me = nix::unistd::getuid().as_raw();
    if !meta.is_dir() || meta.uid() != me || meta.permissions().mode() & 0o077 != 0 {
        return Err(std::io::Error::other(format!(
            "{} is not a private directory of this user",
            dir.display()
        )));
    }
    let file = local_file(port);
    write_private(&file, token)?;
    Ok(file)
}

/// Reads the token a local coordinator on `port` published, if any.
pub fn discover(port: u16) -> Option<String> {
    let s = std::fs::read_to_string(local_file(port)).ok()?;
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// The SHA-256 of a certificate (its DER bytes): what pins a peer's
/// self-signed certificate, so no certificate authority is needed.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = String;

    fn from_str(s: &str) -> Result<Fingerprint, String> {
        let bad = || format!("'{s}' is not a certificate fingerprint (64 hex digits)");
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| bad())?;
        Ok(Fingerprint(out))
    }
}

/// What a worker is given to join a job: the token that proves membership
/// and, when the job's wire is encrypted, the fingerprint of the
/// coordinator's certificate. Written `mrj1:<token>:<fingerprint>` (or
/// `mrj1:<token>:` for a job run with `--no-tls`); a string without the
/// `mrj1:` prefix is a bare token (no encryption).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinSecret {
    /// The job's token.
    pub token: String,
    /// The coordinator's certificate, when the job speaks TLS.
    pub pin: Option<Fingerprint>,
}

/// The prefix of a join secret (its format's version).
pub const JOIN_PREFIX: &str = "mrj1:";

impl JoinSecret {
    /// Parses a join secret or a bare token; Err says what is malformed.
    pub fn parse(s: &str) -> Result<JoinSecret, String> {
        let s = s.trim();
        let Some(rest) = s.strip_prefix(JOIN_PREFIX) else {
            return Ok(JoinSecret {
                token: s.to_string(),
                pin: None,
            });
        };
        let Some((token, pin)) = rest.rsplit_once(':') else {
            return Err(format!(
                "a join secret is {JOIN_PREFIX}<token>:<fingerprint>; this one has no fingerprint part"
            ));
        };
        // An empty token is a job run with --no-token (still pinned).
        let pin = match pin {
            "" => None,
            p => Some(
                p.parse::<Fingerprint>()
                    .map_err(|e| format!("in the join secret: {e}"))?,
            ),
        };
        Ok(JoinSecret {
            token: token.to_string(),
            pin,
        })
    }
}

impl std::fmt::Display for JoinSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{JOIN_PREFIX}{}:", self.token)?;
        match &self.pin {
            Some(p) => write!(f, "{p}"),
            None => Ok(()),
        }
    }
}

/// A peer's address as the coordinator hands it out: `addr`, followed by
/// `#<fingerprint>` when the peer speaks TLS (the inverse of [`split_pinned`]).
pub fn pinned(addr: &str, pin: Option<Fingerprint>) -> String {
    match pin {
        Some(fp) => format!("{addr}#{fp}"),
        None => addr.to_string(),
    }
}

/// Splits a peer's address as the coordinator hands it out, `host:port`
/// or `host:port#<fingerprint>` for a peer that speaks TLS, into the
/// address and the fingerprint to pin.
pub fn split_pinned(endpoint: &str) -> Result<(&str, Option<Fingerprint>), String> {
    match endpoint.split_once('#') {
        None => Ok((endpoint, None)),
        Some((addr, fp)) => Ok((addr, Some(fp.parse()?))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_and_compare_exactly() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(matches(&a, &a.clone()));
        assert!(!matches(&a, &b));
        assert!(!matches("", &a));
        assert!(!matches(&a[..31], &a));
    }

    #[test]
    fn private_files_are_owner_only() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.token");
        write_private(&p, "secret").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "secret");
    }

    #[test]
    fn endpoints_parse_sockets_and_tcp_addresses() {
        assert_eq!(
            Endpoint::parse("unix:/tmp/s"),
            Endpoint::Unix("/tmp/s".into())
        );
        assert_eq!(
            Endpoint::parse("/var/tmp/5840-mr-0"),
            Endpoint::Unix("/var/tmp/5840-mr-0".into())
        );
        assert_eq!(
            Endpoint::parse("10.0.0.1:7878"),
            Endpoint::Tcp("10.0.0.1:7878".into())
        );
        assert_eq!(Endpoint::parse("unix:/tmp/s").to_string(), "unix:/tmp/s");
        assert!(lab_socket()
            .to_string_lossy()
            .starts_with("/var/tmp/5840-mr-"));
    }

    #[test]
    fn join_secrets_carry_a_token_and_a_fingerprint() {
        let fp = "ab".repeat(32);
        let j = JoinSecret::parse(&format!("mrj1:s3cr:et:{fp}\n")).unwrap();
        assert_eq!(j.token, "s3cr:et");
        assert_eq!(j.pin.unwrap().to_string(), fp);
        assert_eq!(j.to_string(), format!("mrj1:s3cr:et:{fp}"));
        let plain = JoinSecret::parse("mrj1:tok:").unwrap();
        assert_eq!((plain.token.as_str(), plain.pin), ("tok", None));
        let bare = JoinSecret::parse("just-a-token").unwrap();
        assert_eq!((bare.token.as_str(), bare.pin), ("just-a-token", None));
        for bad in [
            "mrj1:tok",
            "mrj1::abc",
            "mrj1:tok:xyz",
            &format!("mrj1:tok:{}", &fp[1..]),
        ] {
            assert!(JoinSecret::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(split_pinned("10.0.0.1:7").unwrap(), ("10.0.0.1:7", None));
        let endpoint = format!("10.0.0.1:7#{fp}");
        let (a, p) = split_pinned(&endpoint).unwrap();
        assert_eq!((a, p.unwrap().to_string()), ("10.0.0.1:7", fp));
        assert!(split_pinned("10.0.0.1:7#zz").is_err());
        assert_eq!(pinned(a, p), endpoint);
        assert_eq!(pinned("10.0.0.1:7", None), "10.0.0.1:7");
    }
}
