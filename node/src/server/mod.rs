//! The tokio driver around the broker state machine (`seedlog node`).
//!
//! The driver is deliberately thin. It owns the [`Broker`] and feeds it one input at a time on
//! a single task; everything else is plumbing:
//! - an acceptor task, and per connection a reader and a writer task (`conn.rs`) that frame,
//!   decode, encode and write, so codec work runs in parallel with the broker;
//! - the disk threads (`disk.rs`), which execute disk requests in order and fsync on their own
//!   thread so writes continue while a group commit's fsync runs;
//! - the clock: `now` is wall-clock milliseconds since the Unix epoch as of process start,
//!   advanced by the monotonic clock (retention compares record timestamps with it, and a
//!   wall-clock jump must not move it backwards).
//!
//! After each input the driver drains every output (responses to writers, disk requests to
//! the IO thread) and then sleeps until the next event or the broker's next deadline. SIGTERM
//! or SIGINT stops the acceptor and the readers, lets the broker finish in-flight work and
//! sync every log, then exits 0. A kill -9 loses nothing acknowledged: acknowledged data was
//! synced, and the broker's recovery runs at the next start.

mod conn;
pub mod disk;

use crate::config::NodeConfig;
use anyhow::{Context, Result};
use conn::WriterMsg;
use disk::DiskIo;
use seedlog_core::broker::{
    Broker, BrokerEvent, BrokerInput, BrokerOutput, ConnectionId, RequestContext,
};
use seedlog_core::io::DiskCompletion;
use seedlog_net::kafka_protocol::messages::RequestKind;
use std::collections::HashMap;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

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
    /// A disk request finished.
    Disk(DiskCompletion),
    /// SIGTERM or SIGINT.
    Shutdown,
}

/// Events handled per wake-up before the driver yields, so one busy source cannot starve
/// timers.
const EVENTS_PER_TURN: usize = 1024;

/// The driver's clock: epoch milliseconds at start plus monotonic time since.
struct Clock {
    start: std::time::Instant,
    epoch_nanos: u64,
}

impl Clock {
    fn new() -> Clock {
        let epoch_nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
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

/// Runs the node until SIGTERM/SIGINT; returns after a clean shutdown.
pub fn run(config: NodeConfig) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(mut config: NodeConfig) -> Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let local = listener.local_addr()?;
    // Port 0 asks the OS for a free port (tests do); clients must be told the real one.
    if config.broker.advertised_port == 0 {
        config.broker.advertised_port = i32::from(local.port());
    }
    let (events, mut inbox) = mpsc::unbounded_channel::<DriverEvent>();
    let sink = events.clone();
    let disk = DiskIo::start(config.data_dir.clone(), move |c| {
        let _ = sink.send(DriverEvent::Disk(c));
    })
    .with_context(|| format!("opening data directory {}", config.data_dir.display()))?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    tracing::info!(listen = %config.listen, data = %config.data_dir.display(), policy = config.broker.flush_policy.name(), "seedlog node starting");
    // Printed for scripts and tests that wait for the node to listen.
    println!("seedlog node listening on {local}");
    let acceptor = tokio::spawn(accept_loop(
        listener,
        events.clone(),
        config.clone(),
        shutdown_rx.clone(),
    ));
    tokio::spawn(signal_loop(events.clone()));
    let clock = Clock::new();
    let seed = clock.epoch_nanos ^ u64::from(std::process::id()).rotate_left(32);
    let mut broker = Broker::new(config.broker.clone(), seed, clock.now());
    let mut driver = Driver {
        writers: HashMap::new(),
        disk,
        done: false,
        failed: false,
    };
    driver.drain(&mut broker);
    while !driver.done {
        let event = match broker.poll_timeout() {
            Some(at) => tokio::select! {
                event = inbox.recv() => event,
                _ = tokio::time::sleep_until(clock.tokio_instant(at)) => {
                    broker.handle(clock.now(), BrokerInput::Timeout);
                    driver.drain(&mut broker);
                    continue;
                }
            },
            None => inbox.recv().await,
        };
        let Some(event) = event else { break };
        driver.on_event(&mut broker, &clock, event, &shutdown_tx, &acceptor);
        for _ in 0..EVENTS_PER_TURN {
            match inbox.try_recv() {
                Ok(event) => driver.on_event(&mut broker, &clock, event, &shutdown_tx, &acceptor),
                Err(_) => break,
            }
            if driver.done {
                break;
            }
        }
    }
    let Driver {
        writers,
        disk,
        failed,
        ..
    } = driver;
    for writer in writers.values() {
        let _ = writer.send(WriterMsg::Close);
    }
    drop(writers);
    // Give writers a moment to flush the last responses before the process exits.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    disk.shutdown();
    if failed {
        anyhow::bail!("the broker could not start (see the log above)");
    }
    tracing::info!("seedlog node stopped cleanly");
    Ok(())
}

struct Driver {
    writers: HashMap<ConnectionId, mpsc::UnboundedSender<WriterMsg>>,
    disk: DiskIo,
    done: bool,
    failed: bool,
}

impl Driver {
    fn on_event(
        &mut self,
        broker: &mut Broker,
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
                BrokerInput::Request {
                    connection,
                    context,
                    body,
                }
            }
            DriverEvent::Closed { connection } => {
                if self.writers.remove(&connection).is_none() {
                    return;
                }
                BrokerInput::ConnectionClosed { connection }
            }
            DriverEvent::Disk(completion) => BrokerInput::Disk(completion),
            DriverEvent::Shutdown => {
                tracing::info!("shutdown requested: finishing in-flight requests and syncing");
                acceptor.abort();
                let _ = shutdown.send(true);
                BrokerInput::Shutdown
            }
        };
        broker.handle(clock.now(), input);
        self.drain(broker);
    }

    fn drain(&mut self, broker: &mut Broker) {
        while let Some(output) = broker.poll_output() {
            match output {
                BrokerOutput::Disk(request) => self.disk.submit(request),
                BrokerOutput::Response {
                    connection,
                    context,
                    body,
                } => {
                    if let Some(writer) = self.writers.get(&connection) {
                        let _ = writer.send(WriterMsg::Response(context, body));
                    }
                }
                BrokerOutput::CloseConnection { connection } => {
                    if let Some(writer) = self.writers.remove(&connection) {
                        let _ = writer.send(WriterMsg::Close);
                    }
                }
                BrokerOutput::Event(event) => log_event(&event, &mut self.failed),
                BrokerOutput::ShutdownComplete => self.done = true,
            }
        }
        if self.failed {
            self.done = true;
        }
    }
}

fn log_event(event: &BrokerEvent, failed: &mut bool) {
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
    config: NodeConfig,
    shutdown: watch::Receiver<bool>,
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
        };
        conn::spawn(stream, setup);
    }
}

async fn signal_loop(events: mpsc::UnboundedSender<DriverEvent>) {
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
    let _ = events.send(DriverEvent::Shutdown);
}
