//! The tokio driver around the node state machine (`seedlog node`, `seedlog dev`).
//!
//! The driver is deliberately thin. It owns the [`Node`] and feeds it one input at a time on
//! a single task; everything else is plumbing:
//! - an acceptor task, and per connection a reader and a writer task (`conn.rs`) that frame,
//!   decode, encode and write, so codec work runs in parallel with the state machine;
//! - the peer transport (`peer.rs`) for a node in a cluster: a listener for the other nodes,
//!   and a bounded queue and a sending task per peer, so a slow or dead peer never blocks the
//!   state machine (a full queue drops; the peer protocols retry);
//! - the disk threads (`disk.rs`), which execute disk requests in order and fsync on their own
//!   thread so writes continue while a group commit's fsync runs;
//! - the clock: `now` is wall-clock nanoseconds since the Unix epoch as of process start,
//!   advanced by the monotonic clock (retention compares record timestamps with it, and a
//!   wall-clock jump must not move it backwards; a restarted node's clock starts later than
//!   the previous process's did, which its incarnation relies on).
//!
//! After each input the driver drains every output (responses to writers, peer messages to
//! the transport, disk requests to the IO thread) and then sleeps until the next event or the
//! node's next deadline. SIGTERM or SIGINT stops the acceptor and the readers, lets the node
//! finish in-flight work (moving its leaderships away, in a cluster) and sync every log, then
//! exits 0; a second signal exits at once, which is as safe as a crash. A kill -9 loses nothing
//! acknowledged: acknowledged data was synced, and the node's recovery runs at the next start.
//!
//! `seedlog dev` runs several drivers in one process, one per node, each with its own state
//! machine, data directory, listeners and disk threads; they talk over real loopback sockets,
//! exactly as separate processes would.

mod conn;
pub mod disk;
pub mod peer;

use crate::config::ServerConfig;
use anyhow::{Context, Result};
use conn::WriterMsg;
use disk::DiskIo;
use peer::{Deliver, Inbound, PeerSettings, PeerTransport};
use seedlog_core::broker::{BrokerEvent, ConnectionId, RequestContext};
use seedlog_core::cluster::{Node, NodeEvent, NodeInput, NodeOutput, PeerMessage};
use seedlog_core::io::DiskCompletion;
use seedlog_core::raft::NodeId;
use seedlog_net::kafka_protocol::messages::RequestKind;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit};
use tracing::Instrument;

/// What the driver task receives.
// Requests are moved once through the channel; boxing them would add an allocation each.
#[allow(clippy::large_enum_variant)]
pub enum DriverEvent {
    /// A connection was accepted; responses for it go to `writer`.
    Opened {
        /// The connection.
        connection: ConnectionId,
        /// Its writer task.
        writer: mpsc::UnboundedSender<WriterMsg>,
    },
    /// A decoded request.
    Request {
        /// The connection.
        connection: ConnectionId,
        /// Its header.
        context: RequestContext,
        /// Its body.
        body: RequestKind,
    },
    /// The connection's reader stopped.
    Closed {
        /// The connection.
        connection: ConnectionId,
    },
    /// A message from another node (or, looped back, from this one).
    Peer {
        /// The sender.
        from: NodeId,
        /// The message.
        message: PeerMessage,
        /// Holds a slot of the sender's connection until the node handled the message.
        permit: Option<OwnedSemaphorePermit>,
    },
    /// A disk request finished.
    Disk(DiskCompletion),
    /// SIGTERM or SIGINT.
    Shutdown,
}

/// Events handled per wake-up before the driver yields, so one busy source cannot starve
/// timers.
const EVENTS_PER_TURN: usize = 1024;

/// How long the writers get to flush the last responses before the process exits.
const WRITER_FLUSH: std::time::Duration = std::time::Duration::from_millis(100);

/// The driver's clock: epoch nanoseconds at start plus monotonic time since.
struct Clock {
    start: std::time::Instant,
    epoch_nanos: u64,
}

/// Environment variable that shifts this process's clock by a signed number of milliseconds:
/// how the real-process tests skew one node's clock without touching the host's.
pub const CLOCK_OFFSET_ENV: &str = "SEEDLOG_CLOCK_OFFSET_MS";

impl Clock {
    fn new() -> Clock {
        let mut epoch_nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        if let Some(raw) = std::env::var_os(CLOCK_OFFSET_ENV) {
            match raw.to_str().and_then(|s| s.trim().parse::<i64>().ok()) {
                Some(ms) => {
                    tracing::warn!(
                        "{CLOCK_OFFSET_ENV}={ms}: this node's clock is shifted by {ms} ms"
                    );
                    let shift = ms.unsigned_abs().saturating_mul(1_000_000);
                    epoch_nanos = if ms < 0 {
                        epoch_nanos.saturating_sub(shift)
                    } else {
                        epoch_nanos.saturating_add(shift)
                    };
                }
                None => tracing::warn!(
                    "{CLOCK_OFFSET_ENV} is not a whole number of milliseconds; ignored"
                ),
            }
        }
        Clock {
            start: std::time::Instant::now(),
            epoch_nanos,
        }
    }

    fn now(&self) -> seedlog_core::Instant {
        seedlog_core::Instant(self.epoch_nanos + self.start.elapsed().as_nanos() as u64)
    }

    fn tokio_instant(&self, at: seedlog_core::Instant) -> tokio::time::Instant {
        let offset = at.0.saturating_sub(self.epoch_nanos);
        tokio::time::Instant::from_std(self.start + std::time::Duration::from_nanos(offset))
    }
}

/// How a started node tells the operator (and scripts) where it listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Announce {
    /// `seedlog node`: the one line scripts and tests wait for.
    Node,
    /// `seedlog dev`: a line per node.
    Dev,
}

fn runtime(worker_threads: usize) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads)
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

/// Runs one node until SIGTERM/SIGINT; returns after a clean shutdown.
pub fn run(config: ServerConfig) -> Result<()> {
    runtime(2)?.block_on(async {
        let (stop, stopped) = watch::channel(false);
        stop_on_signals(Arc::new(stop));
        serve(config, stopped, Announce::Node).await
    })
}

/// Runs several nodes in this process (`seedlog dev`) until SIGTERM/SIGINT stops them all.
/// A node that stops on its own (it could not bind its ports, or hit a fatal fault) stops the
/// others too: a dev cluster short of a node is not the cluster that was asked for.
pub fn run_cluster(configs: Vec<ServerConfig>) -> Result<()> {
    runtime(2 + configs.len())?.block_on(async {
        let (stop, stopped) = watch::channel(false);
        let stop = Arc::new(stop);
        stop_on_signals(stop.clone());
        let mut nodes = tokio::task::JoinSet::new();
        for config in configs {
            let id = config.cluster.node_id;
            let span = tracing::info_span!("node", id);
            let node = serve(config, stopped.clone(), Announce::Dev).instrument(span);
            nodes.spawn(async move { (id, node.await) });
        }
        let mut failed = Vec::new();
        while let Some(joined) = nodes.join_next().await {
            let (id, outcome) =
                joined.map_err(|panic| anyhow::anyhow!("a node panicked: {panic}"))?;
            if let Err(error) = outcome {
                eprintln!("seedlog dev: node {id}: {error:#}");
                failed.push(id);
            }
            if !*stopped.borrow() {
                tracing::warn!(node = id, "a node stopped on its own; stopping the others");
                let _ = stop.send(true);
            }
        }
        if !failed.is_empty() {
            anyhow::bail!("nodes {failed:?} failed");
        }
        Ok(())
    })
}

async fn serve(
    mut config: ServerConfig,
    stop: watch::Receiver<bool>,
    announce: Announce,
) -> Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let local = listener.local_addr()?;
    // Port 0 asks the OS for a free port (tests do); clients must be told the real one.
    if config.broker.advertised_port == 0 {
        config.broker.advertised_port = i32::from(local.port());
    }
    let peer_listener = match config.cluster.peer_listen {
        Some(address) => Some(
            TcpListener::bind(address)
                .await
                .with_context(|| format!("binding the peer listener {address}"))?,
        ),
        None => None,
    };
    let (events, mut inbox) = mpsc::unbounded_channel::<DriverEvent>();
    let sink = events.clone();
    let disk = DiskIo::start(config.data_dir.clone(), move |c| {
        let _ = sink.send(DriverEvent::Disk(c));
    })
    .with_context(|| format!("opening data directory {}", config.data_dir.display()))?;
    let node_id = config.cluster.node_id;
    let transport = peer_listener.map(|listener| start_transport(&config, listener, &events));
    let peer_address = transport.as_ref().map(PeerTransport::local_addr);
    tracing::info!(node = node_id, listen = %config.listen, peers = ?peer_address, voters = ?config.cluster.voters, data = %config.data_dir.display(), policy = config.broker.flush_policy.name(), "seedlog node starting");
    announce_listening(announce, &config, local, peer_address);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let client_stats = Arc::new(conn::ClientStats::default());
    let acceptor = tokio::spawn(accept_loop(
        listener,
        events.clone(),
        config.clone(),
        shutdown_rx.clone(),
        client_stats.clone(),
    ));
    tokio::spawn(forward_stop(stop, events.clone()));
    let clock = Clock::new();
    let seed = clock.epoch_nanos
        ^ u64::from(std::process::id()).rotate_left(32)
        ^ u64::from(node_id).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut node = Node::new(config.node_config(), seed, clock.now());
    let mut driver = Driver {
        node_id,
        writers: HashMap::new(),
        disk,
        transport,
        loopback: events.clone(),
        done: false,
        failed: false,
    };
    drop(events);
    driver.drain(&mut node);
    while !driver.done {
        let event = match node.poll_timeout() {
            Some(at) => tokio::select! {
                event = inbox.recv() => event,
                _ = tokio::time::sleep_until(clock.tokio_instant(at)) => {
                    node.handle(clock.now(), NodeInput::Timeout);
                    driver.drain(&mut node);
                    continue;
                }
            },
            None => inbox.recv().await,
        };
        let Some(event) = event else { break };
        driver.on_event(&mut node, &clock, event, &shutdown_tx, &acceptor);
        for _ in 0..EVENTS_PER_TURN {
            if driver.done {
                break;
            }
            match inbox.try_recv() {
                Ok(event) => driver.on_event(&mut node, &clock, event, &shutdown_tx, &acceptor),
                Err(_) => break,
            }
        }
    }
    let Driver {
        writers,
        disk,
        transport,
        failed,
        ..
    } = driver;
    for writer in writers.values() {
        let _ = writer.send(WriterMsg::Close);
    }
    drop(writers);
    if let Some(transport) = transport {
        transport.shutdown().await;
    }
    tokio::time::sleep(WRITER_FLUSH).await;
    disk.shutdown();
    if failed {
        anyhow::bail!("node {node_id} stopped on a fatal fault (see the log above)");
    }
    let get = conn::ClientStats::get;
    tracing::info!(
        node = node_id,
        requests = get(&client_stats.requests),
        bad_requests = get(&client_stats.bad_requests),
        requests_with_ignored_content = get(&client_stats.requests_with_ignored_content),
        "seedlog node stopped cleanly"
    );
    Ok(())
}

fn announce_listening(
    announce: Announce,
    config: &ServerConfig,
    local: SocketAddr,
    peer: Option<SocketAddr>,
) {
    match announce {
        // Printed for scripts and tests that wait for the node to listen.
        Announce::Node => println!("seedlog node listening on {local}"),
        Announce::Dev => println!(
            "node {}: Kafka listener {local}, peer listener {}, data {}",
            config.cluster.node_id,
            peer.map_or_else(|| "none".to_owned(), |p| p.to_string()),
            config.data_dir.display()
        ),
    }
}

/// Starts the peer transport; inbound messages go to the driver's inbox.
fn start_transport(
    config: &ServerConfig,
    listener: TcpListener,
    events: &mpsc::UnboundedSender<DriverEvent>,
) -> PeerTransport {
    let cluster = &config.cluster;
    let settings = PeerSettings {
        node_id: cluster.node_id,
        cluster_id: config.broker.cluster_id.clone(),
        peers: cluster.peers.clone(),
        frame_bytes_max: config.request_bytes_max,
        queue_messages_max: cluster.peer_queue_messages_max,
        reconnect_backoff: cluster.peer_reconnect_backoff,
        reconnect_backoff_max: cluster.peer_reconnect_backoff_max,
    };
    let inbox = events.clone();
    let deliver: Deliver = Arc::new(move |inbound: Inbound| {
        inbox
            .send(DriverEvent::Peer {
                from: inbound.from,
                message: inbound.message,
                permit: Some(inbound.permit),
            })
            .is_ok()
    });
    PeerTransport::start(settings, listener, deliver)
}

struct Driver {
    node_id: NodeId,
    writers: HashMap<ConnectionId, mpsc::UnboundedSender<WriterMsg>>,
    disk: DiskIo,
    /// `None` for a single node, which has no peers.
    transport: Option<PeerTransport>,
    /// The driver's own inbox, for messages the node addresses to itself.
    loopback: mpsc::UnboundedSender<DriverEvent>,
    done: bool,
    failed: bool,
}

impl Driver {
    fn on_event(
        &mut self,
        node: &mut Node,
        clock: &Clock,
        event: DriverEvent,
        shutdown: &watch::Sender<bool>,
        acceptor: &tokio::task::JoinHandle<()>,
    ) {
        let input = match event {
            DriverEvent::Opened { connection, writer } => {
                self.writers.insert(connection, writer);
                return;
            }
            DriverEvent::Request {
                connection,
                context,
                body,
            } => {
                if !self.writers.contains_key(&connection) {
                    return; // Closed already; nothing could be answered.
                }
                NodeInput::Request {
                    connection,
                    context,
                    body,
                }
            }
            DriverEvent::Closed { connection } => {
                if self.writers.remove(&connection).is_none() {
                    return;
                }
                NodeInput::ConnectionClosed { connection }
            }
            DriverEvent::Peer {
                from,
                message,
                permit,
            } => {
                node.handle(clock.now(), NodeInput::Peer { from, message });
                // The connection may read the next message only now that this one is handled.
                drop(permit);
                self.drain(node);
                return;
            }
            DriverEvent::Disk(completion) => NodeInput::Disk(completion),
            DriverEvent::Shutdown => {
                tracing::info!(
                    node = self.node_id,
                    "shutdown requested: finishing in-flight requests and syncing"
                );
                acceptor.abort();
                let _ = shutdown.send(true);
                NodeInput::Shutdown
            }
        };
        node.handle(clock.now(), input);
        self.drain(node);
    }

    fn drain(&mut self, node: &mut Node) {
        while let Some(output) = node.poll_output() {
            match output {
                NodeOutput::Disk(request) => self.disk.submit(request),
                NodeOutput::Response {
                    connection,
                    context,
                    body,
                } => {
                    if let Some(writer) = self.writers.get(&connection) {
                        let _ = writer.send(WriterMsg::Response(context, body));
                    }
                }
                NodeOutput::CloseConnection { connection } => {
                    if let Some(writer) = self.writers.remove(&connection) {
                        let _ = writer.send(WriterMsg::Close);
                    }
                }
                NodeOutput::Send { to, message } => self.send(to, message),
                NodeOutput::Event(event) => log_event(self.node_id, &event, &mut self.failed),
                NodeOutput::ShutdownComplete => self.done = true,
            }
        }
        if self.failed {
            self.done = true;
        }
    }

    fn send(&mut self, to: NodeId, message: PeerMessage) {
        if to == self.node_id {
            // Handled as the next input, never inside this one: one input at a time.
            let _ = self.loopback.send(DriverEvent::Peer {
                from: to,
                message,
                permit: None,
            });
        } else if let Some(transport) = &self.transport {
            transport.send(to, message);
        } else {
            tracing::debug!(
                node = self.node_id,
                to,
                "no peers configured; message dropped"
            );
        }
    }
}

fn log_event(node: NodeId, event: &NodeEvent, failed: &mut bool) {
    match event {
        NodeEvent::Broker(event) => log_broker_event(event, failed),
        NodeEvent::QuorumLeader { term, leader } => {
            tracing::info!(node, term, leader = ?leader, "controller quorum leader")
        }
        NodeEvent::QuorumFaulted => {
            tracing::error!(
                node,
                "controller quorum storage failed; stopping so the node can be restarted"
            );
            *failed = true;
        }
        other => tracing::info!(node, event = ?other, "cluster"),
    }
}

fn log_broker_event(event: &BrokerEvent, failed: &mut bool) {
    match event {
        BrokerEvent::PartitionRecovered {
            topic,
            partition,
            report,
        } => {
            if report.durable_data_lost.is_some()
                || report.cut.is_some()
                || report.checkpoint_damaged
            {
                tracing::warn!(
                    topic,
                    partition,
                    ?report,
                    "partition recovered with repairs"
                );
            } else {
                tracing::debug!(
                    topic,
                    partition,
                    log_end_offset = report.log_end_offset,
                    "partition recovered"
                );
            }
        }
        BrokerEvent::Ready => tracing::info!("broker ready"),
        BrokerEvent::Admitted => {
            tracing::info!("registered and unfenced by the controller: serving clients")
        }
        BrokerEvent::RegistryLoaded { topics, partitions } => {
            tracing::info!(
                topics,
                partitions,
                "topic registry loaded; recovering partitions"
            )
        }
        BrokerEvent::RegistryUnreadable => {
            tracing::error!("both topic registry slots are unreadable; refusing to serve");
            *failed = true;
        }
        BrokerEvent::ConnectionClosed { connection, reason } => {
            tracing::debug!(connection, reason, "closing connection")
        }
        other => tracing::warn!(?other, "broker event"),
    }
}

async fn accept_loop(
    listener: TcpListener,
    events: mpsc::UnboundedSender<DriverEvent>,
    config: ServerConfig,
    shutdown: watch::Receiver<bool>,
    stats: Arc<conn::ClientStats>,
) {
    let mut next_id: ConnectionId = 1;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let connection = next_id;
        next_id += 1;
        tracing::debug!(connection, %peer, "accepted");
        let (writer_tx, writer_rx) = mpsc::unbounded_channel();
        if events
            .send(DriverEvent::Opened {
                connection,
                writer: writer_tx.clone(),
            })
            .is_err()
        {
            return;
        }
        let setup = conn::Setup {
            id: connection,
            writer_tx,
            writer_rx,
            driver: events.clone(),
            frame_bytes_max: config.request_bytes_max,
            requests_max: config.connection_requests_max,
            shutdown: shutdown.clone(),
            stats: stats.clone(),
        };
        conn::spawn(stream, setup);
    }
}

/// Sets `stop` at the first SIGTERM or SIGINT; a second one exits at once.
fn stop_on_signals(stop: Arc<watch::Sender<bool>>) {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::warn!("cannot install signal handlers; stop the node with kill -9");
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        let _ = stop.send(true);
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        // Nothing acknowledged is lost by stopping now: acknowledged data is synced.
        eprintln!("seedlog: second signal; exiting without waiting for a clean shutdown");
        std::process::exit(130);
    });
}

/// Turns the stop flag into a [`DriverEvent::Shutdown`] for one node.
async fn forward_stop(mut stop: watch::Receiver<bool>, events: mpsc::UnboundedSender<DriverEvent>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
    let _ = events.send(DriverEvent::Shutdown);
}
