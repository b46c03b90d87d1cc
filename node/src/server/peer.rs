//! The peer transport: [`PeerMessage`]s between nodes over TCP, for the one state-machine task
//! that drives a [`Node`](seedlog_core::cluster::Node).
//!
//! # Connections
//!
//! Every node dials every other node once and uses that connection only to send; it receives
//! on the connections the others dialled. Two nodes are thus joined by two TCP connections, one
//! per direction, and no tie-break is needed when both dial at once. The first frame on a
//! connection is a [`PeerHello`] naming the cluster, the sender and the node it meant to reach; the
//! receiver checks all three (a peer of another cluster, or a port map pointing at the wrong
//! node, is refused instead of being believed). A second connection from the same peer replaces
//! the first: a peer dials one connection at a time, so the older one is dead (the peer
//! restarted, or the network dropped it without a reset).
//!
//! Frames are `net::peer` frames: a 4-byte length, then postcard, with the
//! `socket.request.max.bytes` limit of the client listener. A frame that breaks the framing or
//! does not decode closes that connection only; the dialler reconnects.
//!
//! # Never blocking the state machine
//!
//! [`PeerTransport::send`] only pushes onto the destination's bounded queue and never waits:
//! when the queue is full (the peer is slow or unreachable) the message is dropped and counted.
//! That is safe because every peer protocol retries on its timers and tolerates loss,
//! duplication and reordering, exactly as the simulator's network does. A queue is also
//! emptied when its connection fails, since what was waiting for a dead peer is stale by the
//! time it returns; reconnection backs off exponentially with jitter, from
//! `peer.reconnect.backoff.ms` to `peer.reconnect.backoff.max.ms`. Encoding happens on the
//! sending task, not on the state machine's.
//!
//! Inbound messages are handed to the driver with a permit from a per-connection semaphore; the
//! permit is released once the state machine handled the message. A peer that sends faster than
//! the node handles stops being read (TCP backpressure) instead of growing the driver's queue.

use bytes::BytesMut;
use seedlog_core::cluster::PeerMessage;
use seedlog_core::raft::NodeId;
use seedlog_net::{
    encode_peer_frame, PeerFrame, PeerFrameDecoder, PeerHello, PEER_PROTOCOL_VERSION,
};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

/// How long a dialled peer has to send its hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection attempt may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one write may stall before the connection is presumed dead (a host that vanished
/// without a reset would otherwise hold it for TCP's retransmission timeout, minutes).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages of one inbound connection handed to the driver and not yet handled.
const INBOUND_MESSAGES_IN_FLIGHT_MAX: usize = 256;
/// Bytes read from a socket at a time.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Queued messages gathered into one write once this many bytes are encoded.
const COALESCE_BYTES: usize = 64 * 1024;
/// How long [`PeerTransport::shutdown`] lets the senders flush what is queued.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// A frame of this transport's connections.
type Frame = PeerFrame<PeerMessage>;

/// What the transport needs to know.
#[derive(Clone, Debug)]
pub struct PeerSettings {
    /// This node.
    pub node_id: NodeId,
    /// `cluster.id`; peers of another cluster are refused.
    pub cluster_id: String,
    /// Every other node's peer address (`host:port`), by id.
    pub peers: BTreeMap<NodeId, String>,
    /// Largest frame sent or accepted.
    pub frame_bytes_max: u32,
    /// Messages queued per peer before new ones are dropped.
    pub queue_messages_max: u32,
    /// First reconnection pause.
    pub reconnect_backoff: Duration,
    /// Longest reconnection pause.
    pub reconnect_backoff_max: Duration,
}

/// A message from a peer, with the permit that holds a slot of its connection until the state
/// machine handled it.
pub struct Inbound {
    /// The sender (authenticated by its hello on this connection).
    pub from: NodeId,
    /// The message.
    pub message: PeerMessage,
    /// Dropped after handling; lets the connection's reader read further.
    pub permit: OwnedSemaphorePermit,
}

/// Where inbound messages go; returns false once the driver is gone.
pub type Deliver = Arc<dyn Fn(Inbound) -> bool + Send + Sync>;

/// Counters, for the logs and for tests.
#[derive(Debug, Default)]
pub struct PeerStats {
    /// Messages handed to a connection's socket.
    pub sent: AtomicU64,
    /// Messages delivered to the driver.
    pub received: AtomicU64,
    /// Messages dropped because the peer's queue was full.
    pub dropped_queue_full: AtomicU64,
    /// Messages dropped because their connection failed before they were written.
    pub dropped_disconnected: AtomicU64,
    /// Messages for a node this one has no address for.
    pub dropped_unknown_peer: AtomicU64,
    /// Messages that could not be encoded (larger than the frame limit).
    pub dropped_unencodable: AtomicU64,
    /// Outbound connections established (the first and every reconnection).
    pub connects: AtomicU64,
    /// Inbound connections that passed the hello.
    pub accepted: AtomicU64,
    /// Inbound connections closed for a bad hello or a bad frame.
    pub rejected: AtomicU64,
}

impl PeerStats {
    fn bump(counter: &AtomicU64) -> u64 {
        counter.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A counter's current value.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// The running transport. See the module documentation.
pub struct PeerTransport {
    node_id: NodeId,
    queues: BTreeMap<NodeId, mpsc::Sender<PeerMessage>>,
    stats: Arc<PeerStats>,
    senders: Vec<JoinHandle<()>>,
    acceptor: JoinHandle<()>,
    inbound: Arc<InboundRegistry>,
    local_addr: SocketAddr,
}

impl PeerTransport {
    /// Starts accepting on `listener` and dialling every peer; inbound messages go to `deliver`.
    pub fn start(settings: PeerSettings, listener: TcpListener, deliver: Deliver) -> PeerTransport {
        assert!(settings.queue_messages_max > 0);
        assert!(
            !settings.peers.contains_key(&settings.node_id),
            "a node is not its own peer"
        );
        let local_addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let settings = Arc::new(settings);
        let stats = Arc::new(PeerStats::default());
        let inbound = Arc::new(InboundRegistry::default());
        let mut queues = BTreeMap::new();
        let mut senders = Vec::new();
        for (&to, address) in &settings.peers {
            let (queue, rx) = mpsc::channel(settings.queue_messages_max as usize);
            queues.insert(to, queue);
            let dialler = Dialler {
                settings: settings.clone(),
                stats: stats.clone(),
                to,
                address: address.clone(),
            };
            senders.push(tokio::spawn(dialler.run(rx)));
        }
        let acceptor = tokio::spawn(accept_loop(
            listener,
            settings.clone(),
            stats.clone(),
            deliver,
            inbound.clone(),
        ));
        tracing::info!(node = settings.node_id, listen = %local_addr, peers = ?settings.peers, "peer transport started");
        PeerTransport {
            node_id: settings.node_id,
            queues,
            stats,
            senders,
            acceptor,
            inbound,
            local_addr,
        }
    }

    /// Queues `message` for `to`; never waits. A full queue or an unknown node drops it.
    pub fn send(&self, to: NodeId, message: PeerMessage) {
        let Some(queue) = self.queues.get(&to) else {
            let n = PeerStats::bump(&self.stats.dropped_unknown_peer);
            if n.is_power_of_two() {
                tracing::warn!(
                    node = self.node_id,
                    to,
                    dropped = n,
                    "message for a node with no peer address dropped"
                );
            }
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = queue.try_send(message) {
            let n = PeerStats::bump(&self.stats.dropped_queue_full);
            if n.is_power_of_two() {
                tracing::warn!(
                    node = self.node_id,
                    to,
                    dropped = n,
                    "peer queue full; message dropped"
                );
            }
        }
    }

    /// The counters.
    #[cfg(test)]
    pub fn stats(&self) -> &Arc<PeerStats> {
        &self.stats
    }

    /// The peer listener's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting and reading, lets the senders flush what is queued (briefly), and stops.
    pub async fn shutdown(mut self) {
        self.acceptor.abort();
        // Aborting only requests it: wait, so the listener is closed when this returns.
        let _ = (&mut self.acceptor).await;
        self.inbound.stop_all();
        // Closing the queues lets each sender write what is queued and return.
        drop(std::mem::take(&mut self.queues));
        for mut sender in std::mem::take(&mut self.senders) {
            if tokio::time::timeout(FLUSH_TIMEOUT, &mut sender)
                .await
                .is_err()
            {
                sender.abort();
            }
        }
        let s = &self.stats;
        tracing::info!(
            node = self.node_id,
            sent = PeerStats::get(&s.sent),
            received = PeerStats::get(&s.received),
            dropped_queue_full = PeerStats::get(&s.dropped_queue_full),
            dropped_disconnected = PeerStats::get(&s.dropped_disconnected),
            connects = PeerStats::get(&s.connects),
            rejected = PeerStats::get(&s.rejected),
            "peer transport stopped"
        );
    }
}

impl Drop for PeerTransport {
    fn drop(&mut self) {
        // After `shutdown` this only stops the acceptor again; dropped without it, nothing of
        // the transport may linger.
        self.acceptor.abort();
        self.inbound.stop_all();
        for sender in &self.senders {
            sender.abort();
        }
    }
}

/// Why an outbound connection ended.
enum Ended {
    /// The transport is stopping and everything queued was written.
    Stopped,
    /// The connection broke; reconnect.
    Broken(&'static str),
}

/// The sending side for one peer: connect, hello, write queued messages, reconnect on failure.
struct Dialler {
    settings: Arc<PeerSettings>,
    stats: Arc<PeerStats>,
    to: NodeId,
    address: String,
}

impl Dialler {
    async fn run(self, mut queue: mpsc::Receiver<PeerMessage>) {
        let node = self.settings.node_id;
        let mut backoff = self.settings.reconnect_backoff;
        let mut failures: u32 = 0;
        loop {
            let connected =
                tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(self.address.as_str()))
                    .await;
            let reason = match connected {
                Ok(Ok(stream)) => {
                    PeerStats::bump(&self.stats.connects);
                    tracing::info!(node, to = self.to, address = %self.address, "connected to peer");
                    backoff = self.settings.reconnect_backoff;
                    failures = 0;
                    match self.serve(stream, &mut queue).await {
                        Ended::Stopped => return,
                        Ended::Broken(reason) => {
                            tracing::info!(node, to = self.to, reason, "peer connection lost");
                            reason
                        }
                    }
                }
                Ok(Err(_)) | Err(_) => {
                    failures += 1;
                    if failures == 1 {
                        tracing::debug!(node, to = self.to, address = %self.address, "peer unreachable; retrying with backoff");
                    }
                    "unreachable"
                }
            };
            if self.discard_queued(&mut queue).is_err() {
                return;
            }
            tracing::trace!(
                node,
                to = self.to,
                reason,
                ?backoff,
                "reconnecting after backoff"
            );
            tokio::time::sleep(jitter(backoff)).await;
            backoff = (backoff * 2).min(self.settings.reconnect_backoff_max);
        }
    }

    /// Drops what was queued for the dead connection; `Err` once the transport stopped.
    fn discard_queued(&self, queue: &mut mpsc::Receiver<PeerMessage>) -> Result<(), ()> {
        loop {
            match queue.try_recv() {
                Ok(_) => {
                    PeerStats::bump(&self.stats.dropped_disconnected);
                }
                Err(mpsc::error::TryRecvError::Empty) => return Ok(()),
                Err(mpsc::error::TryRecvError::Disconnected) => return Err(()),
            }
        }
    }

    /// Writes the hello, then queued messages, until the transport stops or the socket fails.
    async fn serve(&self, stream: TcpStream, queue: &mut mpsc::Receiver<PeerMessage>) -> Ended {
        let _ = stream.set_nodelay(true);
        let (mut reader, mut writer) = stream.into_split();
        let hello = Frame::Hello(PeerHello {
            version: PEER_PROTOCOL_VERSION,
            cluster_id: self.settings.cluster_id.clone(),
            from: self.settings.node_id,
            to: self.to,
        });
        let hello = encode_peer_frame(&hello, self.settings.frame_bytes_max)
            .expect("a hello is far below any frame limit");
        if let Err(reason) = write(&mut writer, &hello).await {
            return Ended::Broken(reason);
        }
        let mut out = BytesMut::new();
        let mut probe = [0u8; 64];
        loop {
            let first = tokio::select! {
                message = queue.recv() => message,
                // Nothing is ever sent back on this connection: a read returns only when the
                // peer closed it (or misbehaves), which is how a dead peer is noticed while idle.
                read = reader.read(&mut probe) => {
                    return Ended::Broken(match read {
                        Ok(0) => "closed by peer",
                        Ok(_) => "peer wrote on a send-only connection",
                        Err(_) => "read error",
                    });
                }
            };
            let Some(first) = first else {
                return Ended::Stopped;
            };
            let mut next = Some(first);
            while let Some(message) = next.take() {
                self.encode_into(message, &mut out);
                if out.len() < COALESCE_BYTES {
                    next = queue.try_recv().ok();
                }
            }
            if let Err(reason) = write(&mut writer, &out).await {
                return Ended::Broken(reason);
            }
            out.clear();
        }
    }

    fn encode_into(&self, message: PeerMessage, out: &mut BytesMut) {
        match encode_peer_frame(&Frame::Message(message), self.settings.frame_bytes_max) {
            Ok(frame) => {
                out.extend_from_slice(&frame);
                PeerStats::bump(&self.stats.sent);
            }
            Err(error) => {
                // Our own message broke our own limit: a bug, but not one to stop the node for.
                PeerStats::bump(&self.stats.dropped_unencodable);
                tracing::error!(node = self.settings.node_id, to = self.to, %error, "peer message not sent");
            }
        }
    }
}

async fn write(
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    bytes: &[u8],
) -> Result<(), &'static str> {
    match tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err("write error"),
        Err(_) => Err("write stalled"),
    }
}

/// `base` scaled by a random factor in [0.8, 1.2), so restarted peers do not dial in lockstep.
fn jitter(base: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let permille = 800 + random % 400;
    base * permille as u32 / 1000
}

/// The inbound connections that passed their hello, by peer, so a newer connection from the
/// same peer replaces the older one. Dropping a connection's sender ends its reader.
#[derive(Default)]
struct InboundRegistry {
    connections: Mutex<BTreeMap<NodeId, (u64, oneshot::Sender<()>)>>,
    next: AtomicU64,
    stopped: std::sync::atomic::AtomicBool,
}

impl InboundRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<NodeId, (u64, oneshot::Sender<()>)>> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a connection from `from`, ending the one it replaces; the receiver resolves
    /// when this one is replaced or the transport stops.
    fn register(&self, from: NodeId) -> (u64, oneshot::Receiver<()>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (stop, stopped) = oneshot::channel();
        let mut connections = self.lock();
        if !self.stopped.load(Ordering::Relaxed) {
            // Dropping the older sender ends the older reader.
            let _older = connections.insert(from, (id, stop));
        }
        (id, stopped)
    }

    fn unregister(&self, from: NodeId, id: u64) {
        let mut connections = self.lock();
        if connections
            .get(&from)
            .is_some_and(|(current, _)| *current == id)
        {
            connections.remove(&from);
        }
    }

    fn stop_all(&self) {
        let mut connections = self.lock();
        self.stopped.store(true, Ordering::Relaxed);
        connections.clear();
    }
}

async fn accept_loop(
    listener: TcpListener,
    settings: Arc<PeerSettings>,
    stats: Arc<PeerStats>,
    deliver: Deliver,
    registry: Arc<InboundRegistry>,
) {
    loop {
        let (stream, address) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(node = settings.node_id, %error, "peer accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let receiver = Receiver {
            settings: settings.clone(),
            stats: stats.clone(),
            deliver: deliver.clone(),
            registry: registry.clone(),
            address,
        };
        tokio::spawn(receiver.run(stream));
    }
}

/// The receiving side of one inbound connection.
struct Receiver {
    settings: Arc<PeerSettings>,
    stats: Arc<PeerStats>,
    deliver: Deliver,
    registry: Arc<InboundRegistry>,
    address: SocketAddr,
}

/// Unregisters a connection however its reader ends.
struct Registration {
    registry: Arc<InboundRegistry>,
    from: NodeId,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.unregister(self.from, self.id);
    }
}

impl Receiver {
    async fn run(self, stream: TcpStream) {
        let node = self.settings.node_id;
        let _ = stream.set_nodelay(true);
        let (mut reader, _writer) = stream.into_split();
        let mut decoder = PeerFrameDecoder::<Frame>::new(self.settings.frame_bytes_max);
        let mut buffer = BytesMut::with_capacity(READ_CHUNK_BYTES);
        let hello = tokio::time::timeout(
            HELLO_TIMEOUT,
            next_frame(&mut reader, &mut decoder, &mut buffer),
        )
        .await;
        let from = match hello
            .unwrap_or(Err("no hello in time"))
            .and_then(|f| self.check_hello(f))
        {
            Ok(from) => from,
            Err(reason) => {
                PeerStats::bump(&self.stats.rejected);
                tracing::warn!(node, address = %self.address, reason, "peer connection refused");
                return;
            }
        };
        let (id, replaced) = self.registry.register(from);
        let _registration = Registration {
            registry: self.registry.clone(),
            from,
            id,
        };
        PeerStats::bump(&self.stats.accepted);
        tracing::info!(node, from, address = %self.address, "peer connected");
        let reason = tokio::select! {
            reason = self.read_messages(from, reader, decoder, buffer) => reason,
            _ = replaced => "replaced by a newer connection, or stopping",
        };
        tracing::info!(node, from, reason, "peer connection closed");
    }

    /// Delivers messages until the connection ends; returns why it ended.
    async fn read_messages(
        &self,
        from: NodeId,
        mut reader: tokio::net::tcp::OwnedReadHalf,
        mut decoder: PeerFrameDecoder<Frame>,
        mut buffer: BytesMut,
    ) -> &'static str {
        let permits = Arc::new(Semaphore::new(INBOUND_MESSAGES_IN_FLIGHT_MAX));
        loop {
            let frame = match next_frame(&mut reader, &mut decoder, &mut buffer).await {
                Ok(frame) => frame,
                Err(reason) => {
                    if reason == "bad frame" {
                        PeerStats::bump(&self.stats.rejected);
                    }
                    return reason;
                }
            };
            let Frame::Message(message) = frame else {
                PeerStats::bump(&self.stats.rejected);
                return "second hello";
            };
            let permit = permits
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            if !(self.deliver)(Inbound {
                from,
                message,
                permit,
            }) {
                return "node stopped";
            }
            PeerStats::bump(&self.stats.received);
        }
    }

    fn check_hello(&self, frame: Frame) -> Result<NodeId, &'static str> {
        let Frame::Hello(hello) = frame else {
            return Err("message before hello");
        };
        if hello.version != PEER_PROTOCOL_VERSION {
            return Err("peer protocol version differs");
        }
        if hello.cluster_id != self.settings.cluster_id {
            return Err("peer of another cluster");
        }
        if hello.to != self.settings.node_id {
            return Err("peer dialled another node id at this address");
        }
        if !self.settings.peers.contains_key(&hello.from) {
            return Err("peer id not in this node's configuration");
        }
        Ok(hello.from)
    }
}

/// The next frame from an inbound connection; `Err` names why the connection ends.
async fn next_frame(
    reader: &mut tokio::net::tcp::OwnedReadHalf,
    decoder: &mut PeerFrameDecoder<Frame>,
    buffer: &mut BytesMut,
) -> Result<Frame, &'static str> {
    loop {
        match decoder.next_message() {
            Ok(Some(frame)) => return Ok(frame),
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, "bad peer frame");
                return Err("bad frame");
            }
        }
        buffer.clear();
        buffer.reserve(READ_CHUNK_BYTES);
        match reader.read_buf(buffer).await {
            Ok(0) => return Err("closed by peer"),
            Ok(_) => decoder.feed(buffer),
            Err(_) => return Err("read error"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::Instant;
    use tokio::sync::mpsc::UnboundedReceiver;

    fn message(i: u32) -> PeerMessage {
        PeerMessage::AlterPartitionResponse {
            topic: format!("t{i}"),
            partition: i,
            error: 0,
        }
    }

    fn settings(node_id: NodeId, peers: &[(NodeId, SocketAddr)]) -> PeerSettings {
        PeerSettings {
            node_id,
            cluster_id: "test-cluster".into(),
            peers: peers.iter().map(|(id, a)| (*id, a.to_string())).collect(),
            frame_bytes_max: 1024 * 1024,
            queue_messages_max: 1024,
            reconnect_backoff: Duration::from_millis(10),
            reconnect_backoff_max: Duration::from_millis(100),
        }
    }

    async fn bind() -> TcpListener {
        TcpListener::bind("127.0.0.1:0").await.expect("bind")
    }

    /// A transport whose inbound messages land in a channel (permits released at once).
    fn start(
        settings: PeerSettings,
        listener: TcpListener,
    ) -> (PeerTransport, UnboundedReceiver<(NodeId, PeerMessage)>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let deliver: Deliver =
            Arc::new(move |inbound: Inbound| tx.send((inbound.from, inbound.message)).is_ok());
        (PeerTransport::start(settings, listener, deliver), rx)
    }

    async fn receive(rx: &mut UnboundedReceiver<(NodeId, PeerMessage)>) -> (NodeId, PeerMessage) {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a message within 10 s")
            .expect("transport alive")
    }

    /// Frames forged by hand, as a confused or hostile process would send them.
    fn forge(frame: &Frame) -> Bytes {
        encode_peer_frame(frame, u32::MAX).expect("encodable")
    }

    fn hello(from: NodeId, to: NodeId, cluster_id: &str) -> Bytes {
        forge(&Frame::Hello(PeerHello {
            version: PEER_PROTOCOL_VERSION,
            cluster_id: cluster_id.into(),
            from,
            to,
        }))
    }

    /// Waits until the server closes `stream` (a read returns end of file).
    async fn closed_by_server(stream: &mut TcpStream) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    /// Two nodes exchange messages both ways, each attributed to its sender and, within one
    /// direction, in the order sent (one connection per direction keeps TCP's order).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_transports_exchange_messages() {
        let (la, lb) = (bind().await, bind().await);
        let (aa, ab) = (la.local_addr().unwrap(), lb.local_addr().unwrap());
        let (a, mut a_rx) = start(settings(1, &[(2, ab)]), la);
        let (b, mut b_rx) = start(settings(2, &[(1, aa)]), lb);
        for i in 0..500 {
            a.send(2, message(i));
        }
        b.send(1, message(7));
        for i in 0..500 {
            assert_eq!(receive(&mut b_rx).await, (1, message(i)));
        }
        assert_eq!(receive(&mut a_rx).await, (2, message(7)));
        assert_eq!(PeerStats::get(&a.stats().sent), 500);
        assert_eq!(PeerStats::get(&b.stats().received), 500);
        assert_eq!(PeerStats::get(&a.stats().dropped_queue_full), 0);
        a.shutdown().await;
        b.shutdown().await;
    }

    /// A peer that restarts (its process gone, a new one on the same address) is redialled
    /// with backoff, and messages flow again without anything done by the sender's node.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restarted_peer_is_reconnected() {
        let (la, lb) = (bind().await, bind().await);
        let (aa, ab) = (la.local_addr().unwrap(), lb.local_addr().unwrap());
        let (a, _a_rx) = start(settings(1, &[(2, ab)]), la);
        let (b, mut b_rx) = start(settings(2, &[(1, aa)]), lb);
        a.send(2, message(1));
        assert_eq!(receive(&mut b_rx).await, (1, message(1)));
        b.shutdown().await;
        drop(b_rx);
        let lb = TcpListener::bind(ab)
            .await
            .expect("rebind the restarted peer's address");
        let (b, mut b_rx) = start(settings(2, &[(1, aa)]), lb);
        // Messages sent while the peer is away may be dropped; keep sending until one lands.
        let deadline = Instant::now() + Duration::from_secs(10);
        let got = loop {
            assert!(
                Instant::now() < deadline,
                "no message reached the restarted peer"
            );
            a.send(2, message(2));
            if let Ok(Some(got)) =
                tokio::time::timeout(Duration::from_millis(50), b_rx.recv()).await
            {
                break got;
            }
        };
        assert_eq!(got, (1, message(2)));
        assert!(PeerStats::get(&a.stats().connects) >= 2);
        a.shutdown().await;
        b.shutdown().await;
    }

    /// A garbage frame, an oversized length prefix, a message before the hello and a hello
    /// from another cluster each close their own connection, and the healthy connection from
    /// a real peer keeps delivering throughout: bad input from one peer stops nobody else.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bad_frame_closes_only_its_connection() {
        let (la, lb) = (bind().await, bind().await);
        let (aa, ab) = (la.local_addr().unwrap(), lb.local_addr().unwrap());
        let nobody: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let (a, _a_rx) = start(settings(1, &[(2, ab)]), la);
        let (b, mut b_rx) = start(settings(2, &[(1, aa), (3, nobody)]), lb);
        a.send(2, message(0));
        assert_eq!(receive(&mut b_rx).await, (1, message(0)));
        let garbage: Vec<Vec<u8>> = vec![
            [
                hello(3, 2, "test-cluster").to_vec(),
                vec![0, 0, 0, 3, 0xff, 0xff, 0xff],
            ]
            .concat(),
            [
                hello(3, 2, "test-cluster").to_vec(),
                vec![0x7f, 0xff, 0xff, 0xff],
            ]
            .concat(),
            forge(&Frame::Message(message(9))).to_vec(),
            hello(3, 2, "another-cluster").to_vec(),
            hello(3, 4, "test-cluster").to_vec(),
            hello(5, 2, "test-cluster").to_vec(),
        ];
        for (i, bytes) in garbage.iter().enumerate() {
            let mut raw = TcpStream::connect(ab).await.expect("connect");
            raw.write_all(bytes).await.expect("write");
            assert!(
                closed_by_server(&mut raw).await,
                "case {i} left its connection open"
            );
            a.send(2, message(i as u32 + 1));
            assert_eq!(
                receive(&mut b_rx).await,
                (1, message(i as u32 + 1)),
                "case {i}"
            );
        }
        assert_eq!(PeerStats::get(&b.stats().rejected), garbage.len() as u64);
        assert_eq!(
            PeerStats::get(&a.stats().connects),
            1,
            "the healthy connection never broke"
        );
        a.shutdown().await;
        b.shutdown().await;
    }

    /// With the peer unreachable, sending never waits: beyond the queue's bound messages are
    /// dropped and counted, and the state machine's task goes on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sending_to_an_unreachable_peer_drops_instead_of_blocking() {
        let listener = bind().await;
        let closed = bind().await.local_addr().unwrap(); // bound, then dropped: refuses
        let mut config = settings(1, &[(2, closed)]);
        config.queue_messages_max = 4;
        let (a, _rx) = start(config, listener);
        let started = Instant::now();
        for i in 0..10_000 {
            a.send(2, message(i));
        }
        a.send(9, message(0));
        assert!(started.elapsed() < Duration::from_secs(1), "send waited");
        let stats = a.stats();
        let dropped =
            PeerStats::get(&stats.dropped_queue_full) + PeerStats::get(&stats.dropped_disconnected);
        assert!(dropped >= 10_000 - 8, "only {dropped} dropped");
        assert_eq!(PeerStats::get(&stats.dropped_unknown_peer), 1);
        a.shutdown().await;
    }
}
