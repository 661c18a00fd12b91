//! What a TCP connection may do before it has registered.
//!
//! Anyone who can reach the port can complete the TLS handshake (pinning
//! is the client's check, not the server's), so until `register` has
//! checked the job's token a connection is a stranger's: it must not be
//! able to make the coordinator hold much for it. Three bounds:
//!
//! - at most [`MAX_UNREGISTERED`] connections wait to register at once;
//!   past that a new one is closed at once (a worker retries its join);
//! - frames are limited to [`UNREGISTERED_FRAME`] bytes until the
//!   connection registers (a register request is a few hundred bytes),
//!   checked on each frame's length prefix as it arrives, before the
//!   codec reserves room for the frame;
//! - a connection that has not registered within [`REGISTER_WITHIN`] is
//!   closed.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Connections that may wait to register at once.
pub const MAX_UNREGISTERED: usize = 4096;

/// The largest frame an unregistered connection may send.
pub const UNREGISTERED_FRAME: usize = 64 << 10;

/// How long a connection may stay without registering.
pub const REGISTER_WITHIN: Duration = Duration::from_secs(10);

/// The count of connections waiting to register, shared by the listener.
#[derive(Default)]
pub struct Waiting(Arc<AtomicUsize>);

impl Waiting {
    /// A ticket for a new connection, or None when too many wait already.
    pub fn admit(&self) -> Option<Arc<Admission>> {
        let before = self.0.fetch_add(1, Ordering::AcqRel);
        if before >= MAX_UNREGISTERED {
            self.0.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Arc::new(Admission {
            waiting: self.0.clone(),
            limit: AtomicUsize::new(UNREGISTERED_FRAME),
            registered: AtomicBool::new(false),
        }))
    }
}

/// One connection's standing: its frame limit, and whether it registered.
pub struct Admission {
    waiting: Arc<AtomicUsize>,
    limit: AtomicUsize,
    registered: AtomicBool,
}

impl Admission {
    /// The connection registered: full-size frames from now on, no
    /// deadline, and it no longer counts as waiting.
    pub fn registered(&self) {
        if !self.registered.swap(true, Ordering::AcqRel) {
            self.limit.store(mr_protocol::MAX_FRAME, Ordering::Release);
            self.waiting.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Resolves if the connection has not registered by the deadline (and
    /// never otherwise).
    pub async fn expired(&self) {
        tokio::time::sleep(REGISTER_WITHIN).await;
        if self.registered.load(Ordering::Acquire) {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if !self.registered.load(Ordering::Acquire) {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// An incoming stream whose frames (a 4-byte big-endian length, then that
/// many bytes: the transport's framing) may not exceed the admission's
/// limit: the read that brings a longer frame's length fails.
pub struct FrameGuard<S> {
    inner: S,
    admission: Arc<Admission>,
    /// The length prefix read so far, and how many of its bytes.
    header: [u8; 4],
    have: usize,
    /// Bytes of the current frame's body still to come.
    body_left: u64,
}

impl<S> FrameGuard<S> {
    /// Guards `inner` by `admission`'s limit.
    pub fn new(inner: S, admission: Arc<Admission>) -> FrameGuard<S> {
        FrameGuard {
            inner,
            admission,
            header: [0; 4],
            have: 0,
            body_left: 0,
        }
    }

    /// Follows the framing over `bytes` just read; Err at a frame too long.
    fn follow(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let take = self.body_left.min(bytes.len() as u64);
                self.body_left -= take;
                bytes = &bytes[take as usize..];
                continue;
            }
            self.header[self.have] = bytes[0];
            self.have += 1;
            bytes = &bytes[1..];
            if self.have == 4 {
                self.have = 0;
                let len = u32::from_be_bytes(self.header) as usize;
                let limit = self.admission.limit.load(Ordering::Acquire);
                if len > limit {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("a frame of {len} bytes, over the {limit} allowed now"),
                    ));
                }
                self.body_left = len as u64;
            }
        }
        Ok(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FrameGuard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        // Registered for good: the codec's own limit is the one left, and
        // the framing need not be followed any more.
        if this.admission.registered.load(Ordering::Acquire) {
            return Poll::Ready(Ok(()));
        }
        Poll::Ready(this.follow(&buf.filled()[before..]))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FrameGuard<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: u32) -> Vec<u8> {
        let mut f = len.to_be_bytes().to_vec();
        f.extend(std::iter::repeat_n(7u8, len as usize));
        f
    }

    #[test]
    fn frames_are_followed_across_reads_and_a_long_one_is_refused_until_registered() {
        let waiting = Waiting::default();
        let a = waiting.admit().unwrap();
        let mut g = FrameGuard::new((), a.clone());
        // Small frames, cut at every byte boundary: followed.
        let mut bytes = frame(10);
        bytes.extend(frame(0));
        bytes.extend(frame(UNREGISTERED_FRAME as u32));
        for b in bytes.chunks(3) {
            g.follow(b).unwrap();
        }
        // A header promising more than allowed: refused on its last byte.
        let big = (UNREGISTERED_FRAME as u32 + 1).to_be_bytes();
        g.follow(&big[..3]).unwrap();
        assert!(g.follow(&big[3..]).is_err());
        // Registered: full-size frames pass.
        let mut g = FrameGuard::new((), a.clone());
        a.registered();
        g.follow(&(60u32 << 20).to_be_bytes()).unwrap();
        assert_eq!(waiting.0.load(Ordering::Acquire), 0);
    }

    #[test]
    fn at_most_so_many_wait_to_register() {
        let waiting = Waiting::default();
        let tickets: Vec<_> = (0..MAX_UNREGISTERED)
            .map(|_| waiting.admit().unwrap())
            .collect();
        assert!(waiting.admit().is_none());
        tickets[0].registered();
        let another = waiting.admit().expect("a registered one no longer waits");
        drop(tickets);
        drop(another);
        assert_eq!(waiting.0.load(Ordering::Acquire), 0);
    }
}
