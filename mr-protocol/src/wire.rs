//! The transport under both services: TCP, encrypted and authenticated with
//! TLS 1.3 (rustls) unless a job runs with `--no-tls`.
//!
//! No certificate authority is involved. Each server (the coordinator, and
//! every worker's shuffle service) makes itself a self-signed certificate;
//! a client pins the one it expects by its SHA-256 [`Fingerprint`], which it
//! learned out of band: a worker from its join secret (`mrj1:<token>:<fp>`),
//! a reducer from the coordinator, which hands out each holder's address as
//! `host:port#<fp>`. A certificate with any other fingerprint ends the
//! handshake, so the token, which travels only inside the encrypted
//! channel, is never shown to anyone but the real server. Clients do not
//! present certificates: the token inside the channel says who they are.
//!
//! The crypto provider is ring, which the object-store client's HTTPS uses
//! too: aws-lc-rs built three times as long (its C library was most of a
//! cold build). This wire narrows it to one cipher suite (AES-128-GCM,
//! SHA-256) and one key exchange (P-256), and neither end keeps sessions
//! for resumption: see [`provider`].

use crate::join::Fingerprint;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

pub use crate::framing::{transport, FrameCodec, Frames};

/// How long a TLS handshake may take before the connection is dropped: a
/// peer that connects and says nothing must not hold a server's task.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The wire's version, negotiated as the TLS application protocol (ALPN):
/// peers from builds whose messages differ fail the handshake, saying so,
/// instead of misreading each other's frames (a stale worker binary would
/// otherwise fail every task it is given). Change it with anything that
/// crosses the wire; `tests::the_wire_sources_are_locked` says when.
pub const WIRE_VERSION: &str = "mapreduce-wire/7";

/// The file in which [`Identity::load_or_create`] keeps a certificate.
pub const IDENTITY_FILE: &str = "tls.der";

/// A byte stream a transport runs over: plain TCP or TLS over it.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A connection, whichever kind.
pub type Stream = Box<dyn Io>;

/// A TLS stream whose peer hanging up without TLS's closing message
/// (`close_notify`) reads as an ordinary end of stream. Every worker that
/// exits does that, and rustls reports it as an error that tarpc logs as a
/// warning on the other side at the end of every job. Nothing is lost by
/// accepting it: frames carry their own length, so a stream cut inside a
/// frame still fails as truncated, and a cut between frames is what closing
/// the TCP connection, which anyone on the path can do, already means.
struct EofIsClose<S>(S);

impl<S: AsyncRead + Unpin> AsyncRead for EofIsClose<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match std::pin::Pin::new(&mut self.0).poll_read(cx, buf) {
            std::task::Poll::Ready(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                std::task::Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for EofIsClose<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

/// ring, narrowed to one cipher suite and one key exchange. Both ends of
/// every connection come from the same build (the ALPN check says so), so
/// there is nothing to negotiate, and the choice is the cheapest handshake:
/// at a join storm of 10,000 workers the handshakes were most of the
/// coordinator's time. AES-128-GCM with SHA-256 (SHA-256 has instructions
/// of its own on x86-64 and ARMv8; ring's SHA-384 runs in plain code) and
/// KX_GROUP for the key exchange.
fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring as r;
    static PROVIDER: std::sync::OnceLock<Arc<CryptoProvider>> = std::sync::OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            Arc::new(CryptoProvider {
                cipher_suites: vec![r::cipher_suite::TLS13_AES_128_GCM_SHA256],
                kx_groups: vec![KX_GROUP],
                ..r::default_provider()
            })
        })
        .clone()
}

/// The key exchange of [`provider`]: ECDHE on P-256, whose ring code is
/// hand-written assembly on x86-64, where its X25519 is portable code. At a
/// join storm of 10,000 workers on this 2-core machine the coordinator's CPU
/// went from 4.2-4.7 s (X25519) to 3.6-4.1 s, the load generator's (the
/// clients' side) from 4.8 to 4.15 s.
const KX_GROUP: &dyn rustls::crypto::SupportedKxGroup = rustls::crypto::ring::kx_group::SECP256R1;

/// Says whether a failed handshake is worth a warning: the first one, then
/// at most one every ten seconds, so that a stranger who keeps connecting
/// cannot flood a server's log (the rest are for debug logs).
#[derive(Default)]
pub struct WarnLimit {
    /// When the last warning was allowed (seconds since the epoch).
    last: std::sync::atomic::AtomicU64,
}

impl WarnLimit {
    /// A limit with no warning given yet.
    pub const fn new() -> WarnLimit {
        WarnLimit {
            last: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// True if a warning may be given now.
    pub fn allow(&self) -> bool {
        use std::sync::atomic::Ordering;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.last.load(Ordering::Relaxed);
        now >= last.saturating_add(10)
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// The SHA-256 fingerprint of a DER certificate.
pub fn fingerprint(der: &[u8]) -> Fingerprint {
    let d = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    Fingerprint(out)
}

/// Why a TLS identity could not be made or loaded.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Generating the key or certificate failed.
    #[error("cannot generate a TLS certificate: {0}")]
    Generate(String),
    /// Reading or writing the saved certificate failed.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// A PEM document given on the command line: a file's path, or (from an
/// environment variable filled from a cluster's Secret) the text itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pem {
    /// A file holding it.
    File(std::path::PathBuf),
    /// The PEM text, given where a path was expected.
    Inline(String),
}

impl Pem {
    /// A path, or the PEM itself when `given` starts like one.
    pub fn parse(given: &str) -> Pem {
        match given.trim_start().starts_with("-----BEGIN ") {
            true => Pem::Inline(given.to_string()),
            false => Pem::File(given.into()),
        }
    }

    /// Its bytes.
    fn read(&self) -> Result<Vec<u8>, IdentityError> {
        match self {
            Pem::Inline(text) => Ok(text.as_bytes().to_vec()),
            Pem::File(path) => std::fs::read(path).map_err(|e| IdentityError::File {
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
        }
    }
}

impl std::fmt::Display for Pem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pem::File(path) => write!(f, "{}", path.display()),
            // Never the text itself: it may be a private key.
            Pem::Inline(_) => f.write_str("the PEM given inline"),
        }
    }
}

/// A server's own certificate and key, ready to accept TLS connections.
#[derive(Clone)]
pub struct Identity {
    fingerprint: Fingerprint,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({})", self.fingerprint)
    }
}

impl Identity {
    /// A fresh self-signed certificate (ECDSA P-256), for this process only.
    pub fn generate() -> Result<Identity, IdentityError> {
        let (cert, key) = generate_der()?;
        Identity::from_der(cert, key)
    }

    /// The certificate saved in `dir` (`tls.der`, 0600), made and saved
    /// there first if absent, so that a restarted coordinator keeps the
    /// fingerprint its remote workers were given.
    pub fn load_or_create(dir: &Path) -> Result<Identity, IdentityError> {
        let path = dir.join(IDENTITY_FILE);
        let file_err = |reason: String| IdentityError::File {
            path: path.display().to_string(),
            reason,
        };
        match std::fs::read(&path) {
            Ok(bytes) => {
                // Saved as: cert length u32 LE | cert DER | PKCS#8 key DER.
                let n = bytes
                    .get(..4)
                    .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize);
                let Some((cert, key)) = n
                    .filter(|&n| bytes.len() > 4 + n)
                    .map(|n| (bytes[4..4 + n].to_vec(), bytes[4 + n..].to_vec()))
                else {
                    return Err(file_err(
                        "damaged (remove it, or start afresh with --fresh)".into(),
                    ));
                };
                Identity::from_der(cert, key)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (cert, key) = generate_der()?;
                let mut bytes = (cert.len() as u32).to_le_bytes().to_vec();
                bytes.extend_from_slice(&cert);
                bytes.extend_from_slice(&key);
                crate::join::write_private_bytes(&path, &bytes)
                    .map_err(|e| file_err(e.to_string()))?;
                Identity::from_der(cert, key)
            }
            Err(e) => Err(file_err(e.to_string())),
        }
    }

    /// The certificate and key an operator provisioned (`--tls-cert`,
    /// `--tls-key`: PEM, the certificate first, the key PKCS#8, PKCS#1 or
    /// SEC1), so the fingerprint workers pin is known before the job
    /// starts (a Kubernetes Secret, say).
    pub fn from_pem(cert: &Pem, key: &Pem) -> Result<Identity, IdentityError> {
        use rustls::pki_types::pem::PemObject;
        let bad = |pem: &Pem, what: &str, e: rustls::pki_types::pem::Error| IdentityError::File {
            path: pem.to_string(),
            reason: format!("not a PEM {what} ({e})"),
        };
        let cert_der = CertificateDer::from_pem_slice(&cert.read()?)
            .map_err(|e| bad(cert, "certificate", e))?;
        let key_der =
            PrivateKeyDer::from_pem_slice(&key.read()?).map_err(|e| bad(key, "private key", e))?;
        Identity::with_key(cert_der.to_vec(), key_der, WIRE_VERSION).map_err(|e| {
            IdentityError::File {
                path: format!("{cert} and {key}"),
                reason: format!("{e} (does the key belong to the certificate?)"),
            }
        })
    }

    fn from_der(cert: Vec<u8>, key: Vec<u8>) -> Result<Identity, IdentityError> {
        Identity::speaking(cert, key, WIRE_VERSION)
    }

    /// An identity whose server side offers `version` of the wire.
    fn speaking(cert: Vec<u8>, key: Vec<u8>, version: &str) -> Result<Identity, IdentityError> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key));
        Identity::with_key(cert, key, version)
    }

    fn with_key(
        cert: Vec<u8>,
        key: PrivateKeyDer<'static>,
        version: &str,
    ) -> Result<Identity, IdentityError> {
        let fingerprint = fingerprint(&cert);
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .and_then(|b| {
                b.with_no_client_auth()
                    .with_single_cert(vec![CertificateDer::from(cert)], key)
            })
            .map_err(|e| IdentityError::Generate(e.to_string()))?;
        config.alpn_protocols = vec![version.as_bytes().to_vec()];
        // No resumption: a worker's connection lives as long as the worker,
        // and tickets sent with every handshake were work for both ends
        // that no one used.
        config.send_tls13_tickets = 0;
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        Ok(Identity {
            fingerprint,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// The certificate's fingerprint, which clients pin.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Runs the server side of the handshake on an accepted connection
    /// (bounded by [`HANDSHAKE_TIMEOUT`]).
    pub async fn accept(&self, tcp: TcpStream) -> std::io::Result<Stream> {
        let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(tcp))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
            })??;
        Ok(Box::new(EofIsClose(tls)))
    }
}

fn generate_der() -> Result<(Vec<u8>, Vec<u8>), IdentityError> {
    // The name is never checked (clients pin the fingerprint instead).
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["mapreduce".to_string()])
            .map_err(|e| IdentityError::Generate(e.to_string()))?;
    Ok((cert.der().to_vec(), signing_key.serialize_der()))
}

/// Accepts a server certificate exactly when its fingerprint is the pinned
/// one, and checks the handshake's signatures as any TLS client does (which
/// proves the server holds that certificate's key).
#[derive(Debug)]
struct Pinned {
    pin: Fingerprint,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = fingerprint(end_entity);
        if got == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the server's certificate {got} is not the pinned {} (another job's server, or someone in between)",
                self.pin
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Accepts connections on `listener` for as long as the task runs. Each
/// one's TLS handshake (with `identity`; without one the stream is plain)
/// runs in a task of its own, bounded by [`HANDSHAKE_TIMEOUT`], so a peer
/// that connects and says nothing holds up no one else; `serve` then gets
/// the stream. A failed accept (out of descriptors, say) drops that one
/// connection; failed handshakes warn once per 10 s. `what` names the
/// service in the logs.
pub async fn accept_loop<F>(
    listener: tokio::net::TcpListener,
    identity: Option<Identity>,
    what: &'static str,
    serve: F,
) where
    F: Fn(Stream) + Send + Sync + 'static,
{
    let serve = Arc::new(serve);
    let limit = Arc::new(WarnLimit::new());
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("{what}: accepting a connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Requests and reports are small frames: send them at once.
        let _ = tcp.set_nodelay(true);
        let (serve, limit, identity) = (serve.clone(), limit.clone(), identity.clone());
        tokio::spawn(async move {
            let stream: Stream = match &identity {
                None => Box::new(tcp),
                Some(id) => match id.accept(tcp).await {
                    Ok(s) => s,
                    Err(e) if limit.allow() => {
                        tracing::warn!(%peer, "{what}: a connection failed the TLS handshake ({e}): a peer given another job's join secret, one of another build or of a --no-tls job, or a stranger (more such failures in the next 10 s are logged at debug level)");
                        return;
                    }
                    Err(e) => {
                        tracing::debug!(%peer, "{what}: a connection failed the TLS handshake: {e}");
                        return;
                    }
                },
            };
            serve(stream);
        });
    }
}

/// Connects to `addr`: over TLS pinning `pin`, or in clear without one.
/// The connect and the handshake are each bounded by `timeout`.
pub async fn connect(
    addr: &str,
    pin: Option<Fingerprint>,
    timeout: Duration,
) -> std::io::Result<(Stream, std::net::SocketAddr, std::net::SocketAddr)> {
    let timed_out =
        |what: &str| std::io::Error::new(std::io::ErrorKind::TimedOut, what.to_string());
    let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| timed_out("connect timed out"))??;
    // Small frames (task requests, reports) go out at once.
    let _ = tcp.set_nodelay(true);
    let (local, peer) = (tcp.local_addr()?, tcp.peer_addr()?);
    let Some(pin) = pin else {
        return Ok((Box::new(tcp), local, peer));
    };
    let provider = provider();
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(std::io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned { pin, provider }))
        .with_no_client_auth();
    config.alpn_protocols = vec![WIRE_VERSION.as_bytes().to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from("mapreduce").expect("a valid name");
    let tls = tokio::time::timeout(timeout, connector.connect(name, tcp))
        .await
        .map_err(|_| timed_out("TLS handshake timed out"))?
        .map_err(|e| {
            if refused_our_protocol(&e) {
                return other_version(addr);
            }
            std::io::Error::new(
                e.kind(),
                format!("TLS handshake with {addr} failed: {e} (is the join secret this job's? a job run with --no-tls needs one without a fingerprint)"),
            )
        })?;
    // A server that chose no protocol predates the check, or differs.
    if tls.get_ref().1.alpn_protocol() != Some(WIRE_VERSION.as_bytes()) {
        return Err(other_version(addr));
    }
    Ok((Box::new(EofIsClose(tls)), local, peer))
}

/// Whether a failed handshake is the server refusing this wire's version
/// (the TLS application protocol): its alert, or (had it offered one) ours
/// finding none in common.
fn refused_our_protocol(e: &std::io::Error) -> bool {
    use rustls::AlertDescription::NoApplicationProtocol;
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    matches!(
        tls,
        Some(
            rustls::Error::NoApplicationProtocol
                | rustls::Error::AlertReceived(NoApplicationProtocol)
        )
    )
}

/// The error for a server that speaks another version of the wire.
fn other_version(addr: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("the server at {addr} speaks another version of the wire than this {WIRE_VERSION}: mrcoordinator and every mrworker of a job must come from the same build"),
    )
}

/// Whether traffic to `addr` (`ip:port`, or `localhost:port`) stays on
/// this machine; other names count as remote (no lookup: this is called
/// on the runtime).
pub fn is_loopback(addr: &str) -> bool {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(a) => a.ip().is_loopback(),
        Err(_) => addr
            .rsplit_once(':')
            .is_some_and(|(host, _)| host == "localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn echo_server(id: Identity) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = l.accept().await {
                let id = id.clone();
                tokio::spawn(async move {
                    if let Ok(mut s) = id.accept(tcp).await {
                        let mut buf = [0u8; 5];
                        if s.read_exact(&mut buf).await.is_ok() {
                            let _ = s.write_all(&buf).await;
                            let _ = s.flush().await;
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_pinned_client_talks_to_its_server_and_refuses_any_other() {
        let id = Identity::generate().unwrap();
        let other = Identity::generate().unwrap();
        assert_ne!(id.fingerprint(), other.fingerprint());
        let addr = echo_server(id.clone()).await;
        let t = Duration::from_secs(5);
        let (mut s, _, _) = connect(&addr, Some(id.fingerprint()), t).await.unwrap();
        s.write_all(b"hello").await.unwrap();
        s.flush().await.unwrap();
        let mut back = [0u8; 5];
        s.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"hello");
        let e = match connect(&addr, Some(other.fingerprint()), t).await {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a server with another certificate was accepted"),
        };
        assert!(e.contains("not the pinned") && e.contains(&addr), "{e}");
    }

    #[tokio::test]
    async fn peers_of_another_wire_version_are_told_so() {
        let (cert, key) = generate_der().unwrap();
        let old = Identity::speaking(cert, key, "mapreduce-wire/0").unwrap();
        let addr = echo_server(old.clone()).await;
        let e = match connect(&addr, Some(old.fingerprint()), Duration::from_secs(5)).await {
            Err(e) => e,
            Ok(_) => panic!("a server of another wire version was accepted"),
        };
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("another version of the wire"), "{e}");
    }

    /// What crosses the wire is defined in these files (tests and comments
    /// aside); when they change, so may the encoding, and WIRE_VERSION must
    /// change with it. Then record the new hash here.
    #[test]
    fn the_wire_sources_are_locked() {
        let sources = [
            include_str!("messages.rs"),
            include_str!("service.rs"),
            include_str!("shuffle.rs"),
            include_str!("ids.rs"),
            include_str!("counters.rs"),
            include_str!("outputs.rs"),
        ];
        let mut text = String::new();
        for s in sources {
            let code = s.split("#[cfg(test)]").next().unwrap_or(s);
            for line in code.lines().map(str::trim) {
                if !line.is_empty() && !line.starts_with("//") {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
        let hash = fingerprint(text.as_bytes()).to_string();
        assert_eq!(
            (WIRE_VERSION, hash.as_str()),
            // Version 7: a reduce assignment names a version of the map
            // outputs list (OutputsVersion), read in pages (map_outputs).
            // Its encoding rewritten over `packed`, the same bytes
            // (`outputs::tests::the_bytes_are_the_documented_ones`).
            (WIRE_VERSION, "6b4ba9a9de0ac170da26b339ed06c53c214af79724777fb460b0f7667f1a1899"),
            "the wire's definitions changed: if their encoding did, bump WIRE_VERSION; then record the new hash here"
        );
    }

    #[test]
    fn shared_fields_encode_as_the_owned_ones_did() {
        use std::sync::Arc;
        let v = vec![1u64, 2, 3];
        let a: Arc<[u64]> = v.clone().into();
        assert_eq!(
            bincode::serialize(&a).unwrap(),
            bincode::serialize(&v).unwrap()
        );
        let s = String::from("10.0.0.2:7071");
        let a: Arc<str> = Arc::from(s.as_str());
        assert_eq!(
            bincode::serialize(&a).unwrap(),
            bincode::serialize(&s).unwrap()
        );
    }

    #[test]
    fn loopback_is_told_without_a_lookup() {
        assert!(
            is_loopback("127.0.0.1:7878") && is_loopback("[::1]:1") && is_loopback("localhost:7")
        );
        assert!(!is_loopback("10.0.0.1:7878") && !is_loopback("coordhost:7878"));
    }

    #[test]
    fn failed_handshakes_warn_once_per_ten_seconds() {
        let limit = WarnLimit::new();
        assert!(limit.allow());
        assert!(!limit.allow() && !limit.allow());
    }

    #[test]
    fn a_saved_identity_keeps_its_fingerprint_and_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let a = Identity::load_or_create(d.path()).unwrap();
        let b = Identity::load_or_create(d.path()).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        let mode = std::fs::metadata(d.path().join("tls.der"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(d.path().join("tls.der"), b"xx").unwrap();
        let e = Identity::load_or_create(d.path()).unwrap_err().to_string();
        assert!(e.contains("tls.der") && e.contains("damaged"), "{e}");
    }
}
