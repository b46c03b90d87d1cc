//! One client connection: a reader task that frames and decodes requests, and a writer task
//! that encodes and writes responses in request order.
//!
//! The broker emits the responses of a connection in request order. The only replies that do
//! not come from the broker are the codec's own (an ApiVersions request of a version we do
//! not serve gets a v0 answer, KIP-511); the reader queues a slot for every request so the
//! writer slots those replies in at the right place. Every request the broker will answer
//! takes one of `queued.max.requests.per.connection` permits, returned when its response is
//! written, so a client that pipelines faster than the broker answers stops being read
//! (backpressure instead of an unbounded queue). A frame that breaks the framing, or a
//! request the codec cannot parse, closes this connection only.

use super::DriverEvent;
use bytes::{Bytes, BytesMut};
use seedlog_core::broker::{ConnectionId, RequestContext};
use seedlog_net::kafka_protocol::messages::ResponseKind;
use seedlog_net::{decode_request, encode_response, ErrorReply, FrameDecoder, ResponseContext};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Semaphore};

/// Bytes read from the socket at a time.
const READ_CHUNK_BYTES: usize = 256 * 1024;
/// Responses smaller than this are gathered into one write.
const COALESCE_BYTES: usize = 64 * 1024;

/// What the writer task is told.
pub enum WriterMsg {
    /// A request was passed to the broker; its response fills the next slot.
    Expect,
    /// A reply the codec produced, in request order.
    Immediate(Bytes),
    /// The broker's response to the oldest expected request (`None`: no response is sent).
    Response(RequestContext, Option<Box<ResponseKind>>),
    /// Stop after writing what is ready.
    Close,
}

/// Counters over every client connection, for the logs, tests and metrics.
#[derive(Debug, Default)]
pub struct ClientStats {
    /// Requests decoded and passed to the broker.
    pub requests: AtomicU64,
    /// Requests that carried bytes after their known fields or unknown tagged fields, which
    /// were skipped as Kafka skips them.
    pub requests_with_ignored_content: AtomicU64,
    /// Bytes after requests' known fields, skipped.
    pub trailing_bytes_ignored: AtomicU64,
    /// Unknown tagged fields in requests, skipped.
    pub tagged_fields_ignored: AtomicU64,
    /// Requests the codec could not parse (the connection was answered or closed).
    pub bad_requests: AtomicU64,
}

impl ClientStats {
    /// A counter's current value.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    fn add(counter: &AtomicU64, amount: u64) {
        counter.fetch_add(amount, Ordering::Relaxed);
    }
}

/// Everything a new connection's tasks need besides the socket.
pub struct Setup {
    /// The connection's id.
    pub id: ConnectionId,
    /// The writer task's inbox (the driver holds a clone).
    pub writer_tx: mpsc::UnboundedSender<WriterMsg>,
    /// The writer task's end of it.
    pub writer_rx: mpsc::UnboundedReceiver<WriterMsg>,
    /// The driver.
    pub driver: mpsc::UnboundedSender<DriverEvent>,
    /// `socket.request.max.bytes`.
    pub frame_bytes_max: u32,
    /// `queued.max.requests.per.connection`.
    pub requests_max: u32,
    /// Flips to true when the node shuts down: stop reading.
    pub shutdown: watch::Receiver<bool>,
    /// Counters shared by every connection.
    pub stats: Arc<ClientStats>,
}

/// Starts the reader and writer tasks of an accepted connection.
pub fn spawn(stream: TcpStream, setup: Setup) {
    let _ = stream.set_nodelay(true);
    let (read_half, write_half) = stream.into_split();
    let permits = Arc::new(Semaphore::new(setup.requests_max as usize));
    let Setup {
        id,
        writer_tx,
        writer_rx,
        driver,
        frame_bytes_max,
        shutdown,
        stats,
        ..
    } = setup;
    tokio::spawn(write_loop(write_half, writer_rx, permits.clone()));
    let reader = Reader {
        id,
        writer: writer_tx,
        driver,
        frame_bytes_max,
        permits,
        shutdown,
        stats,
    };
    tokio::spawn(read_loop(read_half, reader));
}

/// What the reader task owns besides the socket.
struct Reader {
    id: ConnectionId,
    writer: mpsc::UnboundedSender<WriterMsg>,
    driver: mpsc::UnboundedSender<DriverEvent>,
    frame_bytes_max: u32,
    permits: Arc<Semaphore>,
    shutdown: watch::Receiver<bool>,
    stats: Arc<ClientStats>,
}

async fn read_loop(mut socket: OwnedReadHalf, reader: Reader) {
    let Reader {
        id,
        writer,
        driver,
        frame_bytes_max,
        permits,
        mut shutdown,
        stats,
    } = reader;
    let mut decoder = FrameDecoder::new(frame_bytes_max);
    let mut buffer = BytesMut::with_capacity(READ_CHUNK_BYTES);
    let reason = 'outer: loop {
        buffer.clear();
        buffer.reserve(READ_CHUNK_BYTES);
        let read = tokio::select! {
            read = socket.read_buf(&mut buffer) => read,
            _ = shutdown.changed() => break 'outer "broker shutting down",
        };
        match read {
            Ok(0) => break "closed by client",
            Ok(_) => decoder.feed(&buffer),
            Err(_) => break "read error",
        }
        loop {
            let frame = match decoder.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(error) => {
                    tracing::debug!(connection = id, %error, "bad frame");
                    break 'outer "bad frame";
                }
            };
            if let Err(reason) = dispatch(id, frame, &writer, &driver, &permits, &stats).await {
                break 'outer reason;
            }
        }
    };
    tracing::debug!(connection = id, reason, "connection reader done");
    let _ = writer.send(WriterMsg::Close);
    let _ = driver.send(DriverEvent::Closed { connection: id });
}

/// Decodes one frame and passes it on; `Err` closes the connection.
async fn dispatch(
    id: ConnectionId,
    frame: Bytes,
    writer: &mpsc::UnboundedSender<WriterMsg>,
    driver: &mpsc::UnboundedSender<DriverEvent>,
    permits: &Semaphore,
    stats: &ClientStats,
) -> Result<(), &'static str> {
    let request = match decode_request(frame) {
        Ok(request) => request,
        Err(error) => {
            ClientStats::add(&stats.bad_requests, 1);
            tracing::debug!(connection = id, %error, "bad request");
            return match error.reply() {
                ErrorReply::Respond(reply) => writer
                    .send(WriterMsg::Immediate(reply))
                    .map_err(|_| "writer gone"),
                ErrorReply::Close => Err("bad request"),
            };
        }
    };
    ClientStats::add(&stats.requests, 1);
    if request.had_ignored_content() {
        ClientStats::add(&stats.requests_with_ignored_content, 1);
        ClientStats::add(
            &stats.trailing_bytes_ignored,
            u64::from(request.trailing_bytes),
        );
        ClientStats::add(
            &stats.tagged_fields_ignored,
            u64::from(request.unknown_tagged_fields),
        );
        tracing::debug!(
            connection = id,
            api_key = ?request.api_key,
            api_version = request.api_version,
            trailing_bytes = request.trailing_bytes,
            unknown_tagged_fields = request.unknown_tagged_fields,
            "request carried content this version does not define; ignored as Kafka does"
        );
    }
    match permits.acquire().await {
        Ok(permit) => permit.forget(),
        Err(_) => return Err("writer gone"),
    }
    let context = RequestContext {
        api_key: request.api_key,
        api_version: request.api_version,
        correlation_id: request.header.correlation_id,
    };
    writer.send(WriterMsg::Expect).map_err(|_| "writer gone")?;
    let event = DriverEvent::Request {
        connection: id,
        context,
        body: request.body,
    };
    driver.send(event).map_err(|_| "driver gone")
}

enum Slot {
    Pending,
    Ready(Option<Bytes>),
}

async fn write_loop(
    mut socket: OwnedWriteHalf,
    mut inbox: mpsc::UnboundedReceiver<WriterMsg>,
    permits: Arc<Semaphore>,
) {
    let mut slots: VecDeque<Slot> = VecDeque::new();
    let mut out = BytesMut::new();
    let mut closing = false;
    while let Some(msg) = inbox.recv().await {
        let mut next = Some(msg);
        // Take everything already queued before writing, so one syscall carries many responses.
        while let Some(msg) = next.take() {
            match msg {
                WriterMsg::Expect => slots.push_back(Slot::Pending),
                WriterMsg::Immediate(frame) => slots.push_back(Slot::Ready(Some(frame))),
                WriterMsg::Response(context, body) => {
                    permits.add_permits(1);
                    match fill_slot(&mut slots, context, body) {
                        Ok(()) => {}
                        Err(()) => closing = true,
                    }
                }
                WriterMsg::Close => closing = true,
            }
            next = inbox.try_recv().ok();
        }
        if write_ready(&mut socket, &mut slots, &mut out)
            .await
            .is_err()
            || closing
        {
            break;
        }
    }
    let _ = write_ready(&mut socket, &mut slots, &mut out).await;
    let _ = socket.shutdown().await;
}

/// Encodes the broker's response into the oldest pending slot.
fn fill_slot(
    slots: &mut VecDeque<Slot>,
    context: RequestContext,
    body: Option<Box<ResponseKind>>,
) -> Result<(), ()> {
    let Some(slot) = slots.iter_mut().find(|s| matches!(s, Slot::Pending)) else {
        tracing::error!("response without a pending request");
        return Err(());
    };
    let frame = match body {
        None => None,
        Some(body) => {
            let context = ResponseContext {
                api_key: context.api_key,
                api_version: context.api_version,
                correlation_id: context.correlation_id,
            };
            match encode_response(&context, &body) {
                Ok(frame) => Some(frame),
                Err(error) => {
                    // A response we cannot encode is our bug; the client cannot be answered
                    // in order any more, so the connection goes.
                    tracing::error!(api = ?context.api_key, version = context.api_version, %error, "cannot encode response");
                    return Err(());
                }
            }
        }
    };
    *slot = Slot::Ready(frame);
    Ok(())
}

/// Writes every ready response at the head of the queue, in order.
async fn write_ready(
    socket: &mut OwnedWriteHalf,
    slots: &mut VecDeque<Slot>,
    out: &mut BytesMut,
) -> std::io::Result<()> {
    while let Some(Slot::Ready(_)) = slots.front() {
        let Some(Slot::Ready(frame)) = slots.pop_front() else {
            unreachable!("checked above")
        };
        let Some(frame) = frame else { continue };
        if frame.len() >= COALESCE_BYTES {
            if !out.is_empty() {
                socket.write_all(out).await?;
                out.clear();
            }
            socket.write_all(&frame).await?;
        } else {
            out.extend_from_slice(&frame);
            if out.len() >= COALESCE_BYTES {
                socket.write_all(out).await?;
                out.clear();
            }
        }
    }
    if !out.is_empty() {
        socket.write_all(out).await?;
        out.clear();
    }
    Ok(())
}
