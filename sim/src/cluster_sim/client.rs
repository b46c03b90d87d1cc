//! Simulated Kafka clients: an admin that creates the topics, producers, consumers, and in the
//! liveness phase a prober and a final reader. They speak the real protocol through
//! `seedlog_net`'s codec over the simulated network, one request at a time, and record every
//! operation in the history.
//!
//! Like Kafka's clients they bootstrap from any node, find partition leaders through Metadata
//! (ignoring answers older than the leader epoch they know, KIP-320), open one connection per
//! broker starting with ApiVersions, time requests out (closing the connection, as the Java
//! client does), and refresh metadata after an error that says it is stale. A producer retries
//! a send only after a refusal that proves nothing was appended (see
//! [`kafka::produce_fate`]); anything else ends the send as indeterminate and the producer
//! moves on with a new value.

use super::checks::Checks;
use super::conn::StreamItem;
use super::history::{consumer_process, producer_process, PartitionKey, Recorder};
use super::kafka::{self, FetchTarget, ProduceFate, Versions};
use super::network::{Addr, CLIENT_BASE};
use super::params::ClusterSimParams;
use super::{ClusterSimReport, ConnId};
use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use seedlog_core::raft::NodeId;
use seedlog_core::{Duration, Instant, Prng};
use seedlog_jepsen::{OpId, Outcome};
use seedlog_net::{kafka_protocol, FrameDecoder, SOCKET_REQUEST_MAX_BYTES_DEFAULT};
use std::collections::{BTreeMap, VecDeque};

/// Pause after an error before trying again.
const BACKOFF: Duration = Duration::from_millis(50);
/// ListOffsets timestamp for the log start offset.
const EARLIEST: i64 = -2;

/// What a client does.
#[derive(Debug)]
pub(super) enum Role {
    /// Creates the workload's topics, then idles.
    Admin { remaining: Vec<String> },
    /// Sends unique values to random partitions.
    Producer,
    /// Polls its assigned partitions.
    Consumer(Consumer),
    /// Liveness: one acks=all write to each partition in turn.
    Prober { remaining: VecDeque<PartitionKey> },
}

/// A consumer's assignment and positions.
#[derive(Debug)]
pub(super) struct Consumer {
    pub assigned: Vec<PartitionKey>,
    /// Next offset to fetch, once known.
    pub positions: BTreeMap<PartitionKey, i64>,
    /// The last high watermark each partition's leader reported.
    pub high_watermarks: BTreeMap<PartitionKey, i64>,
    assign_recorded: bool,
}

impl Consumer {
    pub(super) fn new(assigned: Vec<PartitionKey>) -> Consumer {
        Consumer {
            assigned,
            positions: BTreeMap::new(),
            high_watermarks: BTreeMap::new(),
            assign_recorded: false,
        }
    }

    /// True if every assigned partition's position reached `targets` (partition → offset).
    pub(super) fn caught_up(&self, targets: &BTreeMap<PartitionKey, i64>) -> bool {
        self.assigned.iter().all(|p| {
            let target = targets.get(p).copied().unwrap_or(0);
            self.positions.get(p).copied().unwrap_or(0) >= target
        })
    }
}

/// The settings every client shares, copied from the parameters.
#[derive(Clone, Debug)]
pub(super) struct ClientSettings {
    pub nodes: u32,
    pub partitions: Vec<PartitionKey>,
    pub request_timeout: Duration,
    pub delivery_timeout: Duration,
    pub op_gap_us: u64,
    pub acks_all_share: f64,
    pub records_per_batch_max: u32,
    pub fetch_wait_max_ms: i32,
}

impl ClientSettings {
    pub(super) fn new(params: &ClusterSimParams) -> ClientSettings {
        let partitions = params
            .topics
            .iter()
            .flat_map(|t| (0..t.partitions).map(|p| (t.name.clone(), p)))
            .collect();
        ClientSettings {
            nodes: params.nodes,
            partitions,
            request_timeout: Duration::from_millis(params.request_timeout_ms),
            delivery_timeout: Duration::from_millis(params.delivery_timeout_ms),
            op_gap_us: params.op_gap_us,
            acks_all_share: params.acks_all_share,
            records_per_batch_max: params.records_per_batch_max,
            fetch_wait_max_ms: params.fetch_wait_max_ms as i32,
        }
    }
}

/// What a client asks the simulation to do.
#[derive(Debug)]
pub(super) enum ClientOut {
    /// Send bytes on a connection (opened by this send when `open`).
    Send {
        conn: ConnId,
        node: NodeId,
        open: bool,
        frame: Bytes,
    },
    /// Close a connection.
    Close { conn: ConnId },
    /// Wake the client at this time (this generation; older wakes are void).
    Wake { at: Instant, generation: u64 },
}

/// The simulation state a client works with during one step.
pub(super) struct Ctx<'a> {
    pub now: Instant,
    pub prng: &'a mut Prng,
    pub recorder: &'a mut Recorder,
    pub checks: &'a mut Checks,
    pub settings: &'a ClientSettings,
    pub next_conn: &'a mut ConnId,
    pub next_value: &'a mut i64,
    pub report: &'a mut ClusterSimReport,
    /// Producers start no new sends (the liveness phase).
    pub producing: bool,
    pub out: Vec<ClientOut>,
}

/// Why a request was sent.
#[derive(Debug)]
enum Purpose {
    ApiVersions,
    Metadata,
    CreateTopics,
    Produce,
    Fetch {
        op: Option<OpId>,
        targets: Vec<FetchTarget>,
        invoked: Instant,
    },
    ListOffsets {
        partition: PartitionKey,
    },
}

#[derive(Debug)]
struct Pending {
    correlation: i32,
    api: ApiKey,
    version: i16,
    purpose: Purpose,
    deadline: Instant,
}

#[derive(Debug)]
struct ClientConn {
    conn: ConnId,
    decoder: FrameDecoder,
    pending: VecDeque<Pending>,
}

/// A send in progress: its values, their history operations, and when it began.
#[derive(Debug)]
struct SendOp {
    partition: PartitionKey,
    acks: i16,
    values: Vec<i64>,
    ops: Vec<Option<OpId>>,
    started: Instant,
}

/// One partition's leader as this client knows it.
#[derive(Clone, Copy, Debug)]
struct LeaderInfo {
    leader: Option<NodeId>,
    epoch: i32,
}

/// A simulated Kafka client.
#[derive(Debug)]
pub(super) struct Client {
    pub index: usize,
    pub role: Role,
    name: String,
    versions: Versions,
    conns: BTreeMap<NodeId, ClientConn>,
    leaders: BTreeMap<PartitionKey, LeaderInfo>,
    metadata_stale: bool,
    send: Option<SendOp>,
    /// A request (other than ApiVersions) is in flight.
    busy: bool,
    next_at: Instant,
    correlation: i32,
    wake_generation: u64,
    wake_at: Option<Instant>,
}

impl Client {
    pub(super) fn new(index: usize, role: Role, prng: &mut Prng, start: Instant) -> Client {
        Client {
            index,
            role,
            name: format!("client-{index}"),
            versions: Versions::draw(prng),
            conns: BTreeMap::new(),
            leaders: BTreeMap::new(),
            metadata_stale: true,
            send: None,
            busy: false,
            next_at: start,
            correlation: 0,
            wake_generation: 0,
            wake_at: None,
        }
    }

    /// The client's network address.
    pub(super) fn addr(&self) -> Addr {
        CLIENT_BASE + self.index as Addr
    }

    /// The wake scheduled as `generation` fired: step, unless a later wake replaced it.
    pub(super) fn on_wake(&mut self, generation: u64, ctx: &mut Ctx) {
        if generation == self.wake_generation {
            self.wake_at = None;
            self.step(ctx);
        }
    }

    /// Does whatever is due now, then asks to be woken for what comes next.
    pub(super) fn step(&mut self, ctx: &mut Ctx) {
        self.expire(ctx);
        if !self.busy && ctx.now >= self.next_at {
            self.act(ctx);
        }
        self.arm_wake(ctx);
    }

    /// Closes every connection whose oldest request timed out.
    fn expire(&mut self, ctx: &mut Ctx) {
        let expired: Vec<NodeId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.pending.iter().any(|p| p.deadline <= ctx.now))
            .map(|(node, _)| *node)
            .collect();
        for node in expired {
            let conn = self.conns[&node].conn;
            ctx.out.push(ClientOut::Close { conn });
            self.drop_conn(node, ctx);
        }
    }

    fn arm_wake(&mut self, ctx: &mut Ctx) {
        let deadline = self
            .conns
            .values()
            .flat_map(|c| c.pending.iter().map(|p| p.deadline))
            .min();
        let next = (!self.busy && !self.idle(ctx)).then_some(self.next_at.max(ctx.now));
        let at = match (deadline, next) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if at != self.wake_at {
            self.wake_at = at;
            self.wake_generation += 1;
            if let Some(at) = at {
                let generation = self.wake_generation;
                ctx.out.push(ClientOut::Wake { at, generation });
            }
        }
    }

    /// True if the client has nothing to do until something changes.
    fn idle(&self, ctx: &Ctx) -> bool {
        match &self.role {
            Role::Admin { remaining } => remaining.is_empty(),
            Role::Producer => !ctx.producing && self.send.is_none(),
            Role::Prober { remaining } => remaining.is_empty(),
            Role::Consumer(_) => false,
        }
    }

    /// Starts the next request the role calls for.
    fn act(&mut self, ctx: &mut Ctx) {
        if self.idle(ctx) {
            return;
        }
        if self.metadata_stale {
            return self.refresh_metadata(ctx);
        }
        match &self.role {
            Role::Admin { .. } => self.create_topics(ctx),
            Role::Producer | Role::Prober { .. } => self.produce(ctx),
            Role::Consumer(_) => self.consume(ctx),
        }
    }

    fn refresh_metadata(&mut self, ctx: &mut Ctx) {
        let node = 1 + ctx.prng.below(u64::from(ctx.settings.nodes)) as NodeId;
        let body = kafka::metadata_request(self.versions.metadata);
        self.request(node, body, Purpose::Metadata, ctx);
    }

    fn create_topics(&mut self, ctx: &mut Ctx) {
        let Role::Admin { remaining } = &self.role else {
            return;
        };
        let topics: Vec<_> = ctx
            .checks
            .topics()
            .iter()
            .filter(|t| remaining.contains(&t.name))
            .cloned()
            .collect();
        let refs: Vec<_> = topics.iter().collect();
        let timeout = ctx.settings.request_timeout.as_millis() as i32;
        let body = kafka::create_topics_request(&refs, timeout);
        let node = 1 + ctx.prng.below(u64::from(ctx.settings.nodes)) as NodeId;
        self.request(node, body, Purpose::CreateTopics, ctx);
    }

    /// Sends the current batch (starting a new one if none) to its partition's leader.
    fn produce(&mut self, ctx: &mut Ctx) {
        if self.send.is_none() {
            self.send = self.new_send(ctx);
        }
        let Some(send) = &self.send else { return };
        let partition = send.partition.clone();
        let Some(leader) = self.leader_of(&partition) else {
            self.metadata_stale = true;
            self.next_at = ctx.now + BACKOFF;
            return;
        };
        let timestamp = (ctx.now.0 / 1_000_000) as i64;
        let batch = kafka::batch(&send.values, timestamp);
        let timeout = ctx.settings.request_timeout.as_millis() as i32;
        let body = kafka::produce_request(&partition, send.acks, timeout, batch);
        self.request(leader.0, body, Purpose::Produce, ctx);
    }

    fn new_send(&mut self, ctx: &mut Ctx) -> Option<SendOp> {
        let (partition, acks, count) = match &mut self.role {
            Role::Prober { remaining } => (remaining.front()?.clone(), -1, 1),
            Role::Producer if ctx.producing => {
                let all = &ctx.settings.partitions;
                let partition = all[ctx.prng.below(all.len() as u64) as usize].clone();
                let acks = if ctx.prng.chance(ctx.settings.acks_all_share) {
                    -1
                } else {
                    1
                };
                let max = u64::from(ctx.settings.records_per_batch_max);
                (partition, acks, ctx.prng.range_inclusive(1, max) as u32)
            }
            _ => return None,
        };
        let mut values = Vec::with_capacity(count as usize);
        let mut ops = Vec::with_capacity(count as usize);
        for slot in 0..count {
            *ctx.next_value += 1;
            let value = *ctx.next_value;
            ctx.checks.on_send(value, &partition);
            let process = producer_process(self.index, slot);
            ops.push(
                ctx.recorder
                    .invoke_send(process, ctx.now.0, &partition, value),
            );
            values.push(value);
        }
        Some(SendOp {
            partition,
            acks,
            values,
            ops,
            started: ctx.now,
        })
    }

    fn consume(&mut self, ctx: &mut Ctx) {
        let Role::Consumer(consumer) = &mut self.role else {
            return;
        };
        if !consumer.assign_recorded {
            consumer.assign_recorded = true;
            let process = consumer_process(self.index);
            ctx.recorder.assign(process, ctx.now.0, &consumer.assigned);
        }
        let unknown = consumer
            .assigned
            .iter()
            .find(|p| !consumer.positions.contains_key(*p))
            .cloned();
        if let Some(partition) = unknown {
            let Some((leader, epoch)) = self.leader_of(&partition) else {
                self.metadata_stale = true;
                self.next_at = ctx.now + BACKOFF;
                return;
            };
            let body = kafka::list_offsets_request(
                self.versions.list_offsets,
                &partition,
                epoch,
                EARLIEST,
            );
            return self.request(leader, body, Purpose::ListOffsets { partition }, ctx);
        }
        self.poll(ctx);
    }

    /// One Fetch to the leader of a random assigned partition, covering every assigned
    /// partition that node leads.
    fn poll(&mut self, ctx: &mut Ctx) {
        let Role::Consumer(consumer) = &self.role else {
            return;
        };
        let pick = &consumer.assigned[ctx.prng.below(consumer.assigned.len() as u64) as usize];
        let Some((leader, _)) = self.leader_of(pick) else {
            self.metadata_stale = true;
            self.next_at = ctx.now + BACKOFF;
            return;
        };
        let targets: Vec<FetchTarget> = consumer
            .assigned
            .iter()
            .filter_map(|p| {
                let (node, epoch) = self.leader_of(p)?;
                // The epoch travels only from Fetch v9 (KIP-320); -1 marks it as unsent.
                let leader_epoch = if self.versions.fetch >= 9 { epoch } else { -1 };
                (node == leader).then(|| FetchTarget {
                    partition: p.clone(),
                    offset: consumer.positions[p],
                    leader_epoch,
                })
            })
            .collect();
        let op = ctx
            .recorder
            .invoke_poll(consumer_process(self.index), ctx.now.0);
        let max_wait = ctx.settings.fetch_wait_max_ms;
        let body = kafka::fetch_request(self.versions.fetch, max_wait, &targets);
        let purpose = Purpose::Fetch {
            op,
            targets,
            invoked: ctx.now,
        };
        self.request(leader, body, purpose, ctx);
    }

    fn leader_of(&self, partition: &PartitionKey) -> Option<(NodeId, i32)> {
        let info = self.leaders.get(partition)?;
        info.leader.map(|leader| (leader, info.epoch))
    }

    /// Encodes and sends a request to `node`, opening a connection (ApiVersions first) if
    /// none is open.
    fn request(&mut self, node: NodeId, body: RequestKind, purpose: Purpose, ctx: &mut Ctx) {
        let open = !self.conns.contains_key(&node);
        if open {
            let conn = *ctx.next_conn;
            *ctx.next_conn += 1;
            self.conns.insert(
                node,
                ClientConn {
                    conn,
                    decoder: FrameDecoder::new(SOCKET_REQUEST_MAX_BYTES_DEFAULT),
                    pending: VecDeque::new(),
                },
            );
            let hello = kafka::api_versions_request(self.versions.api_versions);
            self.send_on(node, hello, Purpose::ApiVersions, true, ctx);
        }
        self.busy = true;
        self.send_on(node, body, purpose, false, ctx);
    }

    fn send_on(
        &mut self,
        node: NodeId,
        body: RequestKind,
        purpose: Purpose,
        open: bool,
        ctx: &mut Ctx,
    ) {
        let api = kafka::api_of(&body);
        let version = self.versions.of(api);
        self.correlation = self.correlation.wrapping_add(1);
        let correlation = self.correlation;
        let frame = match kafka::encode(api, version, correlation, &self.name, &body) {
            Ok(frame) => frame,
            Err(e) => {
                ctx.checks
                    .violation(format!("{api:?} v{version} request cannot be encoded: {e}"));
                return;
            }
        };
        let mut deadline = ctx.now + ctx.settings.request_timeout;
        if api == ApiKey::Fetch {
            deadline = deadline + Duration::from_millis(ctx.settings.fetch_wait_max_ms as u64);
        }
        let c = self.conns.get_mut(&node).expect("opened above");
        c.pending.push_back(Pending {
            correlation,
            api,
            version,
            purpose,
            deadline,
        });
        ctx.report.requests += 1;
        let conn = c.conn;
        tracing::debug!(at = ?ctx.now, client = self.index, node, conn, "{api:?} v{version} #{correlation} {}", purpose_summary(&c.pending.back().expect("pushed").purpose, self.send.as_ref()));
        ctx.out.push(ClientOut::Send {
            conn,
            node,
            open,
            frame,
        });
    }

    /// Bytes or a close arrived on connection `conn`.
    pub(super) fn on_item(&mut self, conn: ConnId, item: StreamItem, ctx: &mut Ctx) {
        let Some(node) = self
            .conns
            .iter()
            .find(|(_, c)| c.conn == conn)
            .map(|(n, _)| *n)
        else {
            return;
        };
        match item {
            StreamItem::Frame(bytes) => self.on_bytes(node, &bytes, ctx),
            StreamItem::Close => self.drop_conn(node, ctx),
        }
        self.step(ctx);
    }

    fn on_bytes(&mut self, node: NodeId, bytes: &[u8], ctx: &mut Ctx) {
        let c = self.conns.get_mut(&node).expect("found by the caller");
        c.decoder.feed(bytes);
        loop {
            let Some(c) = self.conns.get_mut(&node) else {
                return;
            };
            let frame = match c.decoder.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => return,
                Err(e) => {
                    return ctx
                        .checks
                        .violation(format!("node {node} sent a broken frame: {e}"))
                }
            };
            let Some(pending) = c.pending.pop_front() else {
                return ctx.checks.violation(format!(
                    "node {node} answered a request that was never sent"
                ));
            };
            match seedlog_net::codec::response_correlation_id(&frame) {
                Ok(id) if id == pending.correlation => {}
                other => {
                    return ctx.checks.violation(format!(
                        "node {node} answered out of order: correlation {other:?}, expected {}",
                        pending.correlation
                    ))
                }
            }
            match seedlog_net::decode_response(frame, pending.api, pending.version) {
                Ok((_, body)) => self.on_response(node, pending, body, ctx),
                Err(e) => ctx.checks.violation(format!(
                    "node {node}'s {:?} v{} response does not decode: {e}",
                    pending.api, pending.version
                )),
            }
        }
    }

    /// The connection to `node` is gone: every request on it failed.
    fn drop_conn(&mut self, node: NodeId, ctx: &mut Ctx) {
        let Some(c) = self.conns.remove(&node) else {
            return;
        };
        for pending in c.pending {
            self.on_failure(pending.purpose, ctx);
        }
    }

    fn on_failure(&mut self, purpose: Purpose, ctx: &mut Ctx) {
        if matches!(purpose, Purpose::ApiVersions) {
            return;
        }
        tracing::debug!(at = ?ctx.now, client = self.index, "no answer: {}", purpose_summary(&purpose, self.send.as_ref()));
        self.busy = false;
        self.next_at = ctx.now + BACKOFF;
        self.metadata_stale = true;
        match purpose {
            Purpose::Produce => self.abandon_send(ctx),
            Purpose::Fetch { op: Some(op), .. } => ctx.recorder.complete_poll(op, ctx.now.0, None),
            _ => {}
        }
    }

    fn on_response(&mut self, node: NodeId, pending: Pending, body: ResponseKind, ctx: &mut Ctx) {
        if !matches!(pending.purpose, Purpose::ApiVersions) {
            self.busy = false;
            self.next_at = ctx.now;
        }
        let api = pending.api;
        let handled = match pending.purpose {
            Purpose::ApiVersions => match body {
                ResponseKind::ApiVersions(r) if r.error_code == 0 => true,
                ResponseKind::ApiVersions(r) => {
                    ctx.checks.violation(format!(
                        "node {node} refused ApiVersions v{}: {}",
                        pending.version,
                        kafka::error_name(r.error_code)
                    ));
                    true
                }
                _ => false,
            },
            Purpose::Metadata => kafka::read_metadata(body)
                .map(|view| {
                    tracing::debug!(at = ?ctx.now, client = self.index, node, "metadata: {}", view
                        .partitions
                        .iter()
                        .map(|p| format!("{}-{} leader {} epoch {} isr {:?} err {}", p.partition.0, p.partition.1, p.leader, p.leader_epoch, p.isr, p.error))
                        .collect::<Vec<_>>()
                        .join("; "));
                    ctx.checks.on_metadata(ctx.now, node, &view);
                    self.update_leaders(&view);
                })
                .is_some(),
            Purpose::CreateTopics => kafka::read_create_topics(body)
                .map(|results| self.on_create_topics(results, ctx))
                .is_some(),
            Purpose::Produce => self.on_produce_response(node, body, ctx),
            Purpose::Fetch {
                op,
                targets,
                invoked,
            } => kafka::read_fetch(body, &targets)
                .map(|(error, parts)| self.on_fetch(node, op, &targets, invoked, error, parts, ctx))
                .is_some(),
            Purpose::ListOffsets { partition } => kafka::read_list_offsets(body, &partition)
                .map(|(error, offset)| self.on_list_offsets(node, partition, error, offset, ctx))
                .is_some(),
        };
        if !handled {
            ctx.checks.violation(format!(
                "node {node}'s {api:?} response lacks what was asked"
            ));
        }
    }

    fn update_leaders(&mut self, view: &kafka::MetadataView) {
        for p in &view.partitions {
            let leader = (p.leader >= 1).then_some(p.leader as NodeId);
            let entry = self
                .leaders
                .entry(p.partition.clone())
                .or_insert(LeaderInfo {
                    leader,
                    epoch: p.leader_epoch,
                });
            // KIP-320: an answer from a broker with an older view must not undo a newer one.
            if p.leader_epoch >= entry.epoch || p.leader_epoch < 0 {
                *entry = LeaderInfo {
                    leader,
                    epoch: p.leader_epoch,
                };
            }
        }
        self.metadata_stale = false;
    }

    fn on_create_topics(&mut self, results: Vec<(String, i16)>, ctx: &mut Ctx) {
        let Role::Admin { remaining } = &mut self.role else {
            return;
        };
        for (name, error) in results {
            if error == kafka::NONE || error == kafka::TOPIC_ALREADY_EXISTS {
                remaining.retain(|r| *r != name);
            } else {
                tracing::debug!(at = ?ctx.now, %name, error = %kafka::error_name(error), "create topic refused");
            }
        }
        if !remaining.is_empty() {
            self.next_at = ctx.now + BACKOFF;
            self.metadata_stale = true;
        }
    }

    fn on_produce_response(&mut self, node: NodeId, body: ResponseKind, ctx: &mut Ctx) -> bool {
        let Some(send) = &self.send else {
            return true;
        };
        let Some((error, base_offset)) = kafka::read_produce(body, &send.partition) else {
            return false;
        };
        tracing::debug!(at = ?ctx.now, client = self.index, node, "produce {}-{} values {:?}: {} base offset {base_offset}", send.partition.0, send.partition.1, send.values, kafka::error_name(error));
        if error == kafka::NONE {
            if send.acks == -1 {
                for (i, value) in send.values.iter().enumerate() {
                    let offset = base_offset + i as i64;
                    ctx.checks
                        .on_acked(ctx.now, node, &send.partition, offset, *value);
                }
                ctx.report.acked += send.values.len() as u64;
                if let Role::Prober { remaining } = &mut self.role {
                    remaining.pop_front();
                }
                self.end_send(Outcome::Ok, Some(base_offset), ctx);
            } else {
                self.end_send(Outcome::Info, None, ctx);
            }
            let gap = ctx.prng.range_inclusive(1, 2 * ctx.settings.op_gap_us);
            self.next_at = ctx.now + Duration::from_micros(gap);
            return true;
        }
        if kafka::invalidates_metadata(error) {
            self.metadata_stale = true;
        }
        self.next_at = ctx.now + BACKOFF;
        match kafka::produce_fate(error) {
            ProduceFate::RetryDefinite => {
                if ctx.now.saturating_since(send.started) > ctx.settings.delivery_timeout {
                    self.end_send(Outcome::Fail, None, ctx);
                }
            }
            ProduceFate::Ambiguous => self.end_send(Outcome::Info, None, ctx),
            ProduceFate::Refused => {
                ctx.checks.violation(format!(
                    "node {node} refused a valid produce to {}-{}: {}",
                    send.partition.0,
                    send.partition.1,
                    kafka::error_name(error)
                ));
                self.end_send(Outcome::Fail, None, ctx);
            }
        }
        true
    }

    /// The current send got no answer: its operations stay open forever.
    fn abandon_send(&mut self, ctx: &mut Ctx) {
        let Some(send) = self.send.take() else { return };
        for (slot, op) in send.ops.iter().enumerate() {
            if op.is_some() {
                let process = producer_process(self.index, slot as u32);
                ctx.recorder.abandon(process, ctx.now.0);
            }
        }
    }

    /// Completes every operation of the current send.
    fn end_send(&mut self, outcome: Outcome, base_offset: Option<i64>, ctx: &mut Ctx) {
        let Some(send) = self.send.take() else { return };
        for (i, op) in send.ops.iter().enumerate() {
            if let Some(op) = op {
                let offset = base_offset.map(|b| b + i as i64);
                ctx.recorder.complete_send(*op, ctx.now.0, outcome, offset);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_fetch(
        &mut self,
        node: NodeId,
        op: Option<OpId>,
        targets: &[FetchTarget],
        invoked: Instant,
        error: i16,
        parts: Vec<kafka::FetchedPartition>,
        ctx: &mut Ctx,
    ) {
        let mut polled = Vec::new();
        if error != kafka::NONE {
            self.metadata_stale = true;
            self.next_at = ctx.now + BACKOFF;
        }
        let Role::Consumer(consumer) = &mut self.role else {
            return;
        };
        for part in parts {
            let Some(target) = targets.iter().find(|t| t.partition == part.partition) else {
                ctx.checks.violation(format!(
                    "node {node} answered a fetch of {}-{} nobody asked for",
                    part.partition.0, part.partition.1
                ));
                continue;
            };
            tracing::debug!(at = ?ctx.now, client = self.index, node, "fetch {}-{} @{} epoch {}: {} hw {} records {:?}", part.partition.0, part.partition.1, target.offset, target.leader_epoch, kafka::error_name(part.error), part.high_watermark, part.records.first().zip(part.records.last()).map(|(a, b)| (a.0, b.0)));
            ctx.checks.on_fetch(ctx.now, invoked, node, target, &part);
            if part.error != kafka::NONE {
                if kafka::invalidates_metadata(part.error) {
                    self.metadata_stale = true;
                }
                if part.error == kafka::OFFSET_OUT_OF_RANGE {
                    // Start over from the log start, as auto.offset.reset=earliest does; the
                    // history sees a new assignment, so the jump is not a poll anomaly (the
                    // checks decide whether the reset itself was legitimate).
                    consumer.positions.clear();
                    consumer.assign_recorded = false;
                }
                self.next_at = ctx.now + BACKOFF;
                continue;
            }
            consumer
                .high_watermarks
                .insert(part.partition.clone(), part.high_watermark);
            if let Some((last, _)) = part.records.last() {
                consumer.positions.insert(part.partition.clone(), last + 1);
            }
            for (offset, value) in &part.records {
                if let Some(value) = value {
                    polled.push((part.partition.clone(), *offset, *value));
                }
            }
        }
        ctx.report.polled += polled.len() as u64;
        if let Some(op) = op {
            ctx.recorder.complete_poll(op, ctx.now.0, Some(&polled));
        }
        if polled.is_empty() && self.next_at <= ctx.now {
            // Nothing new: do not spin on an empty partition faster than the fetch wait.
            self.next_at = ctx.now + Duration::from_millis(5);
        }
    }

    fn on_list_offsets(
        &mut self,
        node: NodeId,
        partition: PartitionKey,
        error: i16,
        offset: i64,
        ctx: &mut Ctx,
    ) {
        if error != kafka::NONE {
            if kafka::invalidates_metadata(error) {
                self.metadata_stale = true;
            }
            self.next_at = ctx.now + BACKOFF;
            return;
        }
        ctx.checks.on_log_start(node, &partition, offset);
        if let Role::Consumer(consumer) = &mut self.role {
            consumer.positions.insert(partition, offset.max(0));
        }
    }
}

/// A one-line rendering of what a request was for, for the trace.
fn purpose_summary(purpose: &Purpose, send: Option<&SendOp>) -> String {
    match purpose {
        Purpose::ApiVersions => "ApiVersions".to_owned(),
        Purpose::Metadata => "metadata".to_owned(),
        Purpose::CreateTopics => "create topics".to_owned(),
        Purpose::Produce => send.map_or_else(String::new, |s| {
            format!(
                "produce {}-{} acks {} values {:?}",
                s.partition.0, s.partition.1, s.acks, s.values
            )
        }),
        Purpose::Fetch { targets, .. } => format!(
            "fetch {}",
            targets
                .iter()
                .map(|t| format!(
                    "{}-{}@{} epoch {}",
                    t.partition.0, t.partition.1, t.offset, t.leader_epoch
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Purpose::ListOffsets { partition } => {
            format!("list offsets {}-{}", partition.0, partition.1)
        }
    }
}
