//! How messages cross a connection: length-delimited frames (at most
//! [`crate::MAX_FRAME`]) of bincode, decoded without letting a bad frame
//! panic the connection's task, over buffers that start small and give back
//! the room one large frame took. The connections themselves (TCP, TLS,
//! pinning) are [`crate::wire`]'s.

use tokio::io::{AsyncRead, AsyncWrite};

/// The codec of every frame: tokio-serde's bincode, except that a frame
/// whose decoding panics is refused as invalid data instead of killing the
/// connection's task. (tarpc decodes a request's deadline as a duration
/// from now, chosen by the peer, and adds it to the clock, which panics on
/// overflow: found by the `messages` fuzz target.)
pub struct FrameCodec<Item, SinkItem>(std::marker::PhantomData<fn() -> (Item, SinkItem)>);

impl<Item, SinkItem> Default for FrameCodec<Item, SinkItem> {
    fn default() -> Self {
        FrameCodec(std::marker::PhantomData)
    }
}

impl<Item, SinkItem> tarpc::tokio_serde::Deserializer<Item> for FrameCodec<Item, SinkItem>
where
    for<'a> Item: serde::Deserialize<'a>,
{
    type Error = std::io::Error;

    fn deserialize(
        self: std::pin::Pin<&mut Self>,
        src: &tarpc::tokio_util::bytes::BytesMut,
    ) -> Result<Item, std::io::Error> {
        let decode = || {
            let inner =
                std::pin::pin!(tarpc::tokio_serde::formats::Bincode::<Item, SinkItem>::default());
            tarpc::tokio_serde::Deserializer::deserialize(inner, src)
        };
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)).unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "a frame that cannot be decoded (its decoding panicked)",
            ))
        })
    }
}

impl<Item, SinkItem> tarpc::tokio_serde::Serializer<SinkItem> for FrameCodec<Item, SinkItem>
where
    SinkItem: serde::Serialize,
{
    type Error = std::io::Error;

    fn serialize(
        self: std::pin::Pin<&mut Self>,
        item: &SinkItem,
    ) -> Result<tarpc::tokio_util::bytes::Bytes, std::io::Error> {
        let inner =
            std::pin::pin!(tarpc::tokio_serde::formats::Bincode::<Item, SinkItem>::default());
        tarpc::tokio_serde::Serializer::serialize(inner, item)
    }
}

/// A tarpc transport over `io`, with the frame limit and codec both sides use.
pub fn transport<Item, SinkItem, S>(
    io: S,
) -> tarpc::tokio_serde::Framed<Frames<S>, Item, SinkItem, FrameCodec<Item, SinkItem>>
where
    S: AsyncRead + AsyncWrite + Unpin,
    Item: for<'de> serde::Deserialize<'de>,
    SinkItem: serde::Serialize,
{
    let codec = tarpc::tokio_util::codec::LengthDelimitedCodec::builder()
        .max_frame_length(crate::MAX_FRAME)
        .new_codec();
    // Small buffers to start: most frames are a few hundred bytes, and ten
    // thousand connections at tokio-util's 8 KiB each way were 160 MB of a
    // coordinator's memory, zeroed page by page as the workers joined.
    let mut framed = tarpc::tokio_util::codec::Framed::with_capacity(io, codec, FRESH_BUFFER);
    *framed.write_buffer_mut() = tarpc::tokio_util::bytes::BytesMut::with_capacity(FRESH_BUFFER);
    tarpc::tokio_serde::Framed::new(Frames(framed), FrameCodec::default())
}

/// The most buffer a connection keeps between frames, each way.
const KEPT_BUFFER: usize = 32 << 10;
/// What a connection's buffers start (and start again) with, each way.
const FRESH_BUFFER: usize = 2 << 10;

/// Length-delimited frames over a byte stream (tokio-util's), except that
/// a buffer grown for one large frame is given back once that frame is
/// through: a coordinator answers a thousand workers' reads of the map
/// outputs list with 130 KB pages, and buffers kept at their largest were
/// a quarter of its memory.
pub struct Frames<S>(
    tarpc::tokio_util::codec::Framed<S, tarpc::tokio_util::codec::LengthDelimitedCodec>,
);

/// Gives back the room a large frame grew `buffer` to, once it is through.
fn give_back(buffer: &mut tarpc::tokio_util::bytes::BytesMut) {
    if buffer.is_empty() && buffer.capacity() > KEPT_BUFFER {
        *buffer = tarpc::tokio_util::bytes::BytesMut::with_capacity(FRESH_BUFFER);
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> futures::Stream for Frames<S> {
    type Item = std::io::Result<tarpc::tokio_util::bytes::BytesMut>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let frame = futures::Stream::poll_next(std::pin::Pin::new(&mut self.0), cx);
        if frame.is_ready() {
            give_back(self.0.read_buffer_mut());
        }
        frame
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> futures::Sink<tarpc::tokio_util::bytes::Bytes>
    for Frames<S>
{
    type Error = std::io::Error;

    fn poll_ready(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        futures::Sink::<tarpc::tokio_util::bytes::Bytes>::poll_ready(
            std::pin::Pin::new(&mut self.0),
            cx,
        )
    }

    fn start_send(
        mut self: std::pin::Pin<&mut Self>,
        frame: tarpc::tokio_util::bytes::Bytes,
    ) -> std::io::Result<()> {
        futures::Sink::<tarpc::tokio_util::bytes::Bytes>::start_send(
            std::pin::Pin::new(&mut self.0),
            frame,
        )
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let flushed = futures::Sink::<tarpc::tokio_util::bytes::Bytes>::poll_flush(
            std::pin::Pin::new(&mut self.0),
            cx,
        );
        if flushed.is_ready() {
            give_back(self.0.write_buffer_mut());
        }
        flushed
    }

    fn poll_close(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        futures::Sink::<tarpc::tokio_util::bytes::Bytes>::poll_close(
            std::pin::Pin::new(&mut self.0),
            cx,
        )
    }
}
