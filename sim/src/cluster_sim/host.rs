//! Hosting the nodes: starting a process over its disk, feeding it inputs on its own clock,
//! draining its outputs, its timer, its disk, peer messages, crashes and restarts.

use super::*;
use seedlog_core::broker::{ApiRange, BrokerConfig, BrokerEvent, FlushPolicy, TopicConfig};
use seedlog_core::cluster::{Endpoint, NodeConfig, NodeEvent, NodeInput, NodeOutput, PeerMessage};
use seedlog_core::io::{DiskCompletion, DiskOp};
use seedlog_net::PeerFrameDecoder;

/// The largest peer frame either side accepts.
const PEER_FRAME_BYTES_MAX: u32 = seedlog_net::SOCKET_REQUEST_MAX_BYTES_DEFAULT;

impl ClusterSim {
    fn node_config(&self, id: NodeId) -> NodeConfig {
        let p = &self.params;
        let endpoint = Endpoint {
            host: format!("node-{id}"),
            port: 9092,
        };
        let topic_defaults = TopicConfig {
            // Small segments, so rolling, multi-segment reads and truncation across segments
            // happen within a short run.
            max_message_bytes: 8 * 1024,
            segment_bytes: 32 * 1024,
            ..TopicConfig::default()
        };
        let broker = BrokerConfig {
            node_id: id as i32,
            advertised_host: endpoint.host.clone(),
            advertised_port: i32::from(endpoint.port),
            cluster_id: "seedlog-sim".to_owned(),
            auto_create_topics_enable: false,
            num_partitions: 1,
            default_replication_factor: 1,
            flush_policy: FlushPolicy::GroupCommit,
            topic_defaults,
            api_versions: seedlog_net::SUPPORTED_APIS
                .iter()
                .map(|api| ApiRange {
                    api_key: api.api_key as i16,
                    min_version: api.min_version,
                    max_version: api.max_version,
                })
                .collect(),
            ..BrokerConfig::default()
        };
        let ms = Duration::from_millis;
        let mut config = NodeConfig::new(id, p.voters.clone(), endpoint, broker);
        config.heartbeat_interval = ms(p.heartbeat_ms);
        config.session_timeout = ms(p.session_timeout_ms);
        config.replica_lag_time_max = ms(p.replica_lag_ms);
        config.replica_fetch_wait_max = ms(p.replica_fetch_wait_ms);
        config.replica_fetch_backoff = ms(p.replica_fetch_backoff_ms);
        config.raft_timing = (
            ms(p.election_timeout_min_ms),
            ms(2 * p.election_timeout_min_ms),
            ms(p.raft_heartbeat_ms.max(1)),
        );
        config.canaries = p.canaries;
        config
    }

    /// Starts a new process on node `id` over whatever its disk holds.
    pub(super) fn start_node(&mut self, id: NodeId) {
        let config = self.node_config(id);
        let seed = self.rng.nodes.next_u64();
        let now = self.now;
        let node = self.node(id);
        assert!(node.node.is_none(), "node {id} is already running");
        node.incarnation += 1;
        node.timer_at = None;
        node.restart_pending = false;
        node.shutting_down = None;
        node.disk_free_at = now;
        node.server_conns.clear();
        let local = node.clock.local(now);
        node.node = Some(Node::new(config, seed, local));
        self.trace.add(&[now.0, 10, u64::from(id)]);
        tracing::debug!(at = ?now, node = id, "node start");
        self.drain(id);
    }

    /// Feeds one input to node `id` at its local time and handles what it says.
    pub(super) fn feed(&mut self, id: NodeId, input: NodeInput) {
        let now = self.now;
        let node = self.node(id);
        let local = node.clock.local(now);
        let Some(process) = node.node.as_mut() else {
            return;
        };
        process.handle(local, input);
        self.drain(id);
    }

    /// Handles every output of node `id`, then arms its timer and runs the per-event checks.
    fn drain(&mut self, id: NodeId) {
        let incarnation = self.node(id).incarnation;
        loop {
            let Some(process) = self.node(id).node.as_mut() else {
                return;
            };
            let outputs: Vec<NodeOutput> = std::iter::from_fn(|| process.poll_output()).collect();
            if outputs.is_empty() {
                break;
            }
            for output in outputs {
                // A handler may have stopped the process (a fault it reported): whatever it
                // said after that never left it.
                if self.node(id).incarnation != incarnation {
                    return;
                }
                self.on_output(id, output);
            }
        }
        self.arm_timer(id);
        if let Some(process) = self.nodes[(id - 1) as usize].node.as_ref() {
            let incarnation = self.nodes[(id - 1) as usize].incarnation;
            self.checks
                .after_node_event(self.now, id, incarnation, process);
        }
    }

    fn on_output(&mut self, id: NodeId, output: NodeOutput) {
        match output {
            NodeOutput::Response {
                connection,
                context,
                body,
            } => self.respond(id, connection, context, body),
            NodeOutput::CloseConnection { connection } => self.node_close(id, connection),
            NodeOutput::Send { to, message } => self.send_peer(id, to, message),
            NodeOutput::Disk(request) => self.submit_disk(id, request),
            NodeOutput::Event(event) => self.on_node_event(id, event),
            NodeOutput::ShutdownComplete => self.on_shutdown_complete(id),
        }
    }

    fn on_node_event(&mut self, id: NodeId, event: NodeEvent) {
        tracing::debug!(at = ?self.now, node = id, ?event, "node event");
        match event {
            NodeEvent::QuorumLeader { term, leader } => {
                self.trace.add(&[self.now.0, 12, u64::from(id), term]);
                self.checks.on_quorum_leader(id, term, leader);
            }
            NodeEvent::ControllerActive(active) => {
                self.trace
                    .add(&[self.now.0, 13, u64::from(id), u64::from(active)]);
            }
            // A node whose storage failed must be restarted from its disk, as an operator (or
            // a supervisor) would.
            NodeEvent::QuorumFaulted
            | NodeEvent::Broker(BrokerEvent::PartitionFaulted { .. })
            | NodeEvent::Broker(BrokerEvent::RegistryFaulted)
            | NodeEvent::Broker(BrokerEvent::RegistryUnreadable) => self.restart_soon(id),
            NodeEvent::Broker(BrokerEvent::Ready) => {
                self.trace.add(&[self.now.0, 14, u64::from(id)]);
            }
            NodeEvent::Broker(_) => {}
        }
    }

    /// Crashes node `id` (a process crash) and restarts it shortly after.
    fn restart_soon(&mut self, id: NodeId) {
        if self.node(id).node.is_some() && !self.node(id).restart_pending {
            self.crash(id, false, Duration::from_millis(1));
        }
    }

    fn send_peer(&mut self, from: NodeId, to: NodeId, message: PeerMessage) {
        self.checks.on_peer_send(from, to, &message);
        if to == 0 || to > self.params.nodes || to == from {
            return self
                .checks
                .violation(format!("node {from} sent a peer message to node {to}"));
        }
        let frame = match seedlog_net::encode_peer_frame(&message, PEER_FRAME_BYTES_MAX) {
            Ok(frame) => frame,
            Err(e) => {
                return self
                    .checks
                    .violation(format!("node {from}'s peer message cannot be encoded: {e}"))
            }
        };
        let bytes = frame.len() as u64;
        for at in self.net.route(from, to, self.now, bytes, &mut self.rng.net) {
            let frame = frame.clone();
            self.schedule(at, Event::Peer { from, to, frame });
        }
    }

    pub(super) fn on_peer(&mut self, from: NodeId, to: NodeId, frame: Bytes) {
        if self.node(to).node.is_none() {
            return;
        }
        let mut decoder = PeerFrameDecoder::<PeerMessage>::new(PEER_FRAME_BYTES_MAX);
        decoder.feed(&frame);
        let message = match decoder.next_message() {
            Ok(Some(message)) => message,
            other => {
                return self.checks.violation(format!(
                    "a peer frame from node {from} did not decode: {other:?}"
                ))
            }
        };
        self.report.peer_messages += 1;
        tracing::debug!(at = ?self.now, from, to, message = %PeerSummary(&message), "peer");
        self.trace.add(&[
            self.now.0,
            1,
            u64::from(from),
            u64::from(to),
            frame.len() as u64,
        ]);
        self.feed(to, NodeInput::Peer { from, message });
    }

    /// The device runs requests one at a time, in order, each after a random latency.
    fn submit_disk(&mut self, id: NodeId, request: DiskRequest) {
        let (low, high) = self.disk_faults.latency_us;
        let mut latency = self.rng.disk.range_inclusive(low, high);
        if self.rng.disk.chance(self.disk_faults.latency_spike) {
            latency *= 100;
        }
        let now = self.now;
        let node = self.node(id);
        let at = now.max(node.disk_free_at) + Duration::from_micros(latency);
        node.disk_free_at = at;
        let incarnation = node.incarnation;
        self.schedule(
            at,
            Event::Disk {
                node: id,
                incarnation,
                request,
            },
        );
    }

    pub(super) fn on_disk(&mut self, id: NodeId, incarnation: u64, request: DiskRequest) {
        if self.node(id).incarnation != incarnation || self.node(id).node.is_none() {
            return;
        }
        let now = self.now;
        let node = &mut self.nodes[(id - 1) as usize];
        let result = node
            .disk
            .execute(now, &request.op, &self.disk_faults, &mut self.rng.disk);
        if result.is_err() && matches!(request.op, DiskOp::Sync { .. }) {
            // After a failed fsync the kernel may drop dirty pages: what the page cache showed
            // is gone.
            node.disk.power_loss(&DiskFaults::none(), &mut Prng::new(0));
        }
        self.trace.add(&[
            now.0,
            2,
            u64::from(id),
            request.id,
            u64::from(result.is_ok()),
        ]);
        if tracing::enabled!(tracing::Level::TRACE) {
            tracing::trace!(at = ?now, node = id, op = %DiskSummary(&request.op), ok = result.is_ok(), "disk");
        } else if result.is_err() {
            tracing::debug!(at = ?now, node = id, op = %DiskSummary(&request.op), ?result, "disk fault");
        }
        let completion = DiskCompletion {
            id: request.id,
            result,
        };
        self.feed(id, NodeInput::Disk(completion));
    }

    pub(super) fn on_timer(&mut self, id: NodeId, incarnation: u64, armed: u64) {
        if self.node(id).incarnation != incarnation || self.node(id).timer_armed != armed {
            return;
        }
        let now = self.now;
        let node = self.node(id);
        node.timer_at = None;
        let local = node.clock.local(now);
        let due = node
            .node
            .as_ref()
            .and_then(|n| n.poll_timeout())
            .is_some_and(|t| t <= local);
        if due {
            self.trace.add(&[now.0, 3, u64::from(id)]);
            self.feed(id, NodeInput::Timeout);
        } else {
            self.arm_timer(id);
        }
    }

    /// Schedules node `id`'s next deadline, converted from its clock to simulated time.
    pub(super) fn arm_timer(&mut self, id: NodeId) {
        let now = self.now;
        let node = self.node(id);
        let Some(deadline) = node.node.as_ref().and_then(|n| n.poll_timeout()) else {
            return;
        };
        let at = node.clock.sim_time_of(deadline, now);
        if node.timer_at.is_some_and(|t| t <= at && t >= now) {
            return;
        }
        node.timer_at = Some(at);
        node.timer_armed += 1;
        let (incarnation, armed) = (node.incarnation, node.timer_armed);
        let at = if at <= now {
            now + Duration::from_nanos(1)
        } else {
            at
        };
        self.schedule(
            at,
            Event::Timer {
                node: id,
                incarnation,
                armed,
            },
        );
    }

    /// Starts a controlled shutdown of node `id`: it moves its leaderships away and syncs,
    /// then stops for `down`; if it has not finished within the timeout it is killed.
    pub(super) fn shutdown(&mut self, id: NodeId, down: Duration) {
        if self.node(id).node.is_none() || self.node(id).shutting_down.is_some() {
            return;
        }
        self.trace.add(&[self.now.0, 15, u64::from(id)]);
        tracing::debug!(at = ?self.now, node = id, "controlled shutdown");
        self.node(id).shutting_down = Some(down);
        let incarnation = self.node(id).incarnation;
        let at = self.now + Duration::from_millis(self.params.shutdown_timeout_ms.max(1));
        self.schedule(
            at,
            Event::ShutdownDeadline {
                node: id,
                incarnation,
            },
        );
        self.feed(id, NodeInput::Shutdown);
    }

    fn on_shutdown_complete(&mut self, id: NodeId) {
        self.trace.add(&[self.now.0, 11, u64::from(id)]);
        let Some(down) = self.node(id).shutting_down else {
            return self
                .checks
                .violation(format!("node {id} reported a shutdown nobody asked for"));
        };
        // The process exits cleanly: what it wrote stays in the page cache.
        self.report.shutdowns += 1;
        self.crash(id, false, down);
    }

    pub(super) fn on_shutdown_deadline(&mut self, id: NodeId, incarnation: u64) {
        let node = self.node(id);
        if node.incarnation == incarnation && node.node.is_some() {
            if let Some(down) = node.shutting_down {
                tracing::debug!(at = ?self.now, node = id, "controlled shutdown timed out: killed");
                self.crash(id, false, down);
            }
        }
    }

    /// Stops node `id` (losing unsynced writes on a power loss) and restarts it after `down`.
    pub(super) fn crash(&mut self, id: NodeId, power_loss: bool, down: Duration) {
        if self.node(id).node.is_none() {
            return;
        }
        self.report.crashes += 1;
        self.trace
            .add(&[self.now.0, 40, u64::from(id), u64::from(power_loss)]);
        tracing::debug!(at = ?self.now, node = id, power_loss, "crash");
        let faults = self.disk_faults.clone();
        let node = &mut self.nodes[(id - 1) as usize];
        if power_loss {
            node.disk.power_loss(&faults, &mut self.rng.disk);
        }
        node.node = None;
        node.incarnation += 1;
        node.shutting_down = None;
        node.timer_at = None;
        node.disk_free_at = self.now;
        // A dead process hears nothing: what waited for the pause to end is lost with it.
        node.paused_until = self.now;
        node.deferred.clear();
        node.restart_pending = true;
        let incarnation = node.incarnation;
        self.checks.on_node_down(id);
        self.reset_conns_of(id, power_loss);
        self.schedule(
            self.now + down,
            Event::Restart {
                node: id,
                incarnation,
            },
        );
    }

    pub(super) fn on_restart(&mut self, id: NodeId, incarnation: u64) {
        let node = self.node(id);
        if node.node.is_none() && node.incarnation == incarnation {
            self.start_node(id);
        }
    }

    /// Destroys node `id`'s data: every file but the controller quorum's (see the parameters'
    /// module docs for why those stay).
    pub(super) fn wipe_disk(&mut self, id: NodeId) {
        let disk = &mut self.node(id).disk;
        let doomed: Vec<String> = disk
            .paths()
            .into_iter()
            .filter(|p| !p.starts_with("raft/"))
            .collect();
        let mut scratch = Prng::new(0);
        for file in doomed {
            let op = DiskOp::Delete { file };
            let _ = disk.execute(Instant::ZERO, &op, &DiskFaults::none(), &mut scratch);
        }
        self.node(id).destroyed = true;
        self.node(id).rotted = false;
        self.report.wipes += 1;
        self.checks.on_destroyed(id);
    }
}

/// A one-line rendering of a peer message for the trace.
struct PeerSummary<'a>(&'a PeerMessage);

impl std::fmt::Display for PeerSummary<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use seedlog_core::raft::Message as M;
        match self.0 {
            PeerMessage::Raft(m) => match m {
                M::PreVote { term, .. } => write!(f, "raft pre-vote term {term}"),
                M::PreVoteResponse { term, granted, .. } => {
                    write!(f, "raft pre-vote response term {term} granted {granted}")
                }
                M::Vote { term, .. } => write!(f, "raft vote term {term}"),
                M::VoteResponse { term, granted } => {
                    write!(f, "raft vote response term {term} granted {granted}")
                }
                M::AppendEntries {
                    term,
                    prev_log_index,
                    entries,
                    leader_commit,
                    ..
                } => write!(
                    f,
                    "raft append term {term} after {prev_log_index} entries {} commit {leader_commit}",
                    entries.len()
                ),
                M::AppendEntriesResponse {
                    term,
                    success,
                    match_index,
                    ..
                } => write!(
                    f,
                    "raft append response term {term} success {success} match {match_index}"
                ),
                M::InstallSnapshot { term, .. } => write!(f, "raft snapshot term {term}"),
                M::InstallSnapshotResponse { term, .. } => {
                    write!(f, "raft snapshot response term {term}")
                }
            },
            PeerMessage::Heartbeat(h) => write!(
                f,
                "heartbeat incarnation {} metadata {}{}",
                h.incarnation,
                h.metadata_offset,
                if h.shutting_down { " shutting down" } else { "" }
            ),
            PeerMessage::HeartbeatResponse(r) => write!(
                f,
                "heartbeat response active {} controller {:?} image {:?} fenced {}",
                r.active,
                r.controller,
                r.image.as_ref().map(|i| i.offset),
                r.fenced
            ),
            PeerMessage::AlterPartition(a) => write!(
                f,
                "alter partition {}-{} epoch {}/{} isr {:?}",
                a.topic, a.partition, a.leader_epoch, a.partition_epoch, a.isr
            ),
            PeerMessage::AlterPartitionResponse {
                topic,
                partition,
                error,
            } => write!(f, "alter partition {topic}-{partition} refused {error}"),
            PeerMessage::CreateTopics { request, topics } => {
                write!(f, "create topics #{request} ({})", topics.len())
            }
            PeerMessage::DeleteTopics { request, names } => {
                write!(f, "delete topics #{request} {names:?}")
            }
            PeerMessage::TopicsResponse {
                request,
                metadata_offset,
                ..
            } => write!(f, "topics response #{request} at metadata {metadata_offset}"),
            PeerMessage::Fetch(r) => write!(
                f,
                "replica fetch {}-{} epoch {} offset {} last epoch {:?}",
                r.topic, r.partition, r.leader_epoch, r.fetch_offset, r.last_fetched_epoch
            ),
            PeerMessage::FetchResponse(r) => write!(
                f,
                "replica fetch response {}-{} epoch {} offset {} error {} hw {} diverging {:?} bytes {}",
                r.topic,
                r.partition,
                r.leader_epoch,
                r.fetch_offset,
                r.error,
                r.high_watermark,
                r.diverging,
                r.records.len()
            ),
        }
    }
}

/// A one-line rendering of a disk operation for the trace.
struct DiskSummary<'a>(&'a DiskOp);

impl std::fmt::Display for DiskSummary<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            DiskOp::List { dir } => write!(f, "list {dir}"),
            DiskOp::Read {
                file,
                position,
                len,
            } => write!(f, "read {file} @{position} +{len}"),
            DiskOp::Write {
                file,
                position,
                bytes,
            } => write!(f, "write {file} @{position} +{}", bytes.len()),
            DiskOp::Sync { file } => write!(f, "sync {file}"),
            DiskOp::Truncate { file, len } => write!(f, "truncate {file} to {len}"),
            DiskOp::Delete { file } => write!(f, "delete {file}"),
        }
    }
}
