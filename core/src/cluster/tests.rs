//! A small deterministic cluster on in-memory disks and a perfect network: the end-to-end
//! path of controller election, broker registration, topic creation, replication, acks=all
//! and failover. Faults are the simulator's job; these tests pin the happy paths.

use super::*;
use crate::broker::{BrokerConfig, ConnectionId, RequestContext};
use crate::io::mem_disk::MemDisk;
use crate::io::DiskCompletion;
use crate::raft::NodeId;
use crate::record_batch::{encode, BatchSpec, NewRecord};
use crate::time::{Duration, Instant};
use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, BTreeSet};

const NET_LATENCY: Duration = Duration::from_millis(1);

struct Cluster {
    now: Instant,
    nodes: BTreeMap<NodeId, Node>,
    disks: BTreeMap<NodeId, MemDisk>,
    down: BTreeSet<NodeId>,
    /// Messages in flight: (arrival, sequence) → (from, to, message).
    wire: BTreeMap<(Instant, u64), (NodeId, NodeId, PeerMessage)>,
    seq: u64,
    responses: Vec<(NodeId, ConnectionId, Option<Box<ResponseKind>>)>,
    correlation: i32,
    /// Nodes whose replica fetches are lost on the wire.
    fetches_lost: BTreeSet<NodeId>,
}

fn config(id: NodeId, voters: &[NodeId]) -> NodeConfig {
    let endpoint = Endpoint {
        host: "127.0.0.1".into(),
        port: 9090 + id as u16,
    };
    let mut config = NodeConfig::new(id, voters.to_vec(), endpoint, BrokerConfig::default());
    config.heartbeat_interval = Duration::from_millis(50);
    config.session_timeout = Duration::from_millis(600);
    config.replica_lag_time_max = Duration::from_millis(1_000);
    config.replica_fetch_wait_max = Duration::from_millis(100);
    config.replica_fetch_backoff = Duration::from_millis(50);
    config.raft_timing = (
        Duration::from_millis(150),
        Duration::from_millis(300),
        Duration::from_millis(50),
    );
    config
}

impl Cluster {
    fn new(size: u32) -> Cluster {
        let voters: Vec<NodeId> = (1..=size).collect();
        let now = Instant::ZERO + Duration::from_secs(1);
        let mut cluster = Cluster {
            now,
            nodes: BTreeMap::new(),
            disks: BTreeMap::new(),
            down: BTreeSet::new(),
            wire: BTreeMap::new(),
            seq: 0,
            responses: Vec::new(),
            correlation: 0,
            fetches_lost: BTreeSet::new(),
        };
        for id in &voters {
            cluster.disks.insert(*id, MemDisk::default());
            let node = Node::new(config(*id, &voters), u64::from(*id), now);
            cluster.nodes.insert(*id, node);
            cluster.drain(*id);
        }
        cluster
    }

    fn drain(&mut self, id: NodeId) {
        loop {
            let Some(node) = self.nodes.get_mut(&id) else {
                return;
            };
            let Some(output) = node.poll_output() else {
                return;
            };
            match output {
                NodeOutput::Disk(request) => {
                    let result = self.disks.get_mut(&id).expect("disk").execute(request.op);
                    let completion = DiskCompletion {
                        id: request.id,
                        result,
                    };
                    let now = self.now;
                    self.nodes
                        .get_mut(&id)
                        .expect("node")
                        .handle(now, NodeInput::Disk(completion));
                }
                NodeOutput::Send { to, message } => {
                    self.seq += 1;
                    self.wire
                        .insert((self.now + NET_LATENCY, self.seq), (id, to, message));
                }
                NodeOutput::Response {
                    connection, body, ..
                } => self.responses.push((id, connection, body)),
                _ => {}
            }
        }
    }

    /// Advances simulated time to `until`, delivering messages and timeouts in order.
    fn run_until(&mut self, until: Instant) {
        loop {
            let next_message = self.wire.keys().next().map(|(at, _)| *at);
            let next_timer = self
                .nodes
                .iter()
                .filter_map(|(id, n)| n.poll_timeout().map(|at| (at, *id)))
                .min();
            let next = match (next_message, next_timer) {
                (Some(m), Some((t, _))) => m.min(t),
                (Some(m), None) => m,
                (None, Some((t, _))) => t,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            if next_message == Some(next) {
                let key = *self.wire.keys().next().expect("checked");
                let (from, to, message) = self.wire.remove(&key).expect("checked");
                if self.down.contains(&to) || self.down.contains(&from) {
                    continue;
                }
                if self.fetches_lost.contains(&from) && matches!(message, PeerMessage::Fetch(_)) {
                    continue;
                }
                if let Some(node) = self.nodes.get_mut(&to) {
                    node.handle(self.now, NodeInput::Peer { from, message });
                    self.drain(to);
                }
            } else if let Some((_, id)) = next_timer {
                let now = self.now;
                self.nodes
                    .get_mut(&id)
                    .expect("node")
                    .handle(now, NodeInput::Timeout);
                self.drain(id);
            }
        }
        self.now = self.now.max(until);
    }

    fn run_for(&mut self, duration: Duration) {
        let until = self.now + duration;
        self.run_until(until);
    }

    /// Sends a request to `node` and runs until it is answered (or `limit` passes).
    fn request(
        &mut self,
        node: NodeId,
        api_key: ApiKey,
        version: i16,
        body: RequestKind,
    ) -> Option<ResponseKind> {
        self.correlation += 1;
        let connection = 1_000 + self.correlation as u64;
        let context = RequestContext {
            api_key,
            api_version: version,
            correlation_id: self.correlation,
        };
        let now = self.now;
        self.nodes.get_mut(&node)?.handle(
            now,
            NodeInput::Request {
                connection,
                context,
                body,
            },
        );
        self.drain(node);
        let deadline = self.now + Duration::from_secs(10);
        while self.now < deadline {
            if let Some(pos) = self
                .responses
                .iter()
                .position(|(n, c, _)| *n == node && *c == connection)
            {
                let (_, _, body) = self.responses.remove(pos);
                return body.map(|b| *b);
            }
            self.run_for(Duration::from_millis(5));
        }
        None
    }

    fn crash(&mut self, id: NodeId) {
        self.down.insert(id);
        self.nodes.remove(&id);
        self.disks.get_mut(&id).expect("disk").crash();
    }

    fn restart(&mut self, id: NodeId) {
        self.down.remove(&id);
        let voters: Vec<NodeId> = self.disks.keys().copied().collect();
        let node = Node::new(config(id, &voters), 100 + u64::from(id), self.now);
        self.nodes.insert(id, node);
        self.drain(id);
    }

    fn image(&self, id: NodeId) -> MetadataImage {
        self.nodes[&id]
            .broker()
            .image()
            .cloned()
            .unwrap_or_default()
    }

    fn leader_of(&self, observer: NodeId, topic: &str) -> Option<(NodeId, i32)> {
        let image = self.image(observer);
        let p = image.partition(topic, 0)?;
        Some((p.leader?, p.leader_epoch))
    }
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

fn create_topic(rf: i16, min_isr: &str) -> RequestKind {
    let topic = CreatableTopic::default()
        .with_name(name("t"))
        .with_num_partitions(1)
        .with_replication_factor(rf)
        .with_configs(vec![CreatableTopicConfig::default()
            .with_name(StrBytes::from_static_str("min.insync.replicas"))
            .with_value(Some(StrBytes::from_string(min_isr.to_owned())))]);
    RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(vec![topic]))
}

fn produce(value: &str) -> RequestKind {
    produce_with_acks(value, -1)
}

fn produce_with_acks(value: &str, acks: i16) -> RequestKind {
    let records = encode(
        &BatchSpec::default(),
        &[NewRecord {
            timestamp: 1,
            key: None,
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            headers: vec![],
        }],
    );
    let data = PartitionProduceData::default()
        .with_index(0)
        .with_records(Some(records));
    let topic = TopicProduceData::default()
        .with_name(name("t"))
        .with_partition_data(vec![data]);
    RequestKind::Produce(
        ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(5_000)
            .with_topic_data(vec![topic]),
    )
}

fn fetch(offset: i64) -> RequestKind {
    let part = FetchPartition::default()
        .with_partition(0)
        .with_fetch_offset(offset)
        .with_partition_max_bytes(1 << 20);
    let topic = FetchTopic::default()
        .with_topic(name("t"))
        .with_partitions(vec![part]);
    RequestKind::Fetch(
        FetchRequest::default()
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 24)
            .with_session_epoch(-1)
            .with_topics(vec![topic]),
    )
}

fn produce_result(response: Option<ResponseKind>) -> (i16, i64) {
    let Some(ResponseKind::Produce(r)) = response else {
        panic!("no produce response: {response:?}")
    };
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// Elects a controller, registers and unfences all brokers, creates a topic with rf=3.
fn cluster_with_topic() -> Cluster {
    let mut c = Cluster::new(3);
    c.run_for(Duration::from_secs(3));
    let image = c.image(1);
    assert_eq!(image.brokers.len(), 3, "all brokers registered: {image:?}");
    assert!(image.brokers.values().all(|b| !b.fenced), "{image:?}");
    create_topic_t(&mut c);
    c
}

/// Creates topic `t` (rf=3, min.insync.replicas=2) through node 1 and lets it settle.
fn create_topic_t(c: &mut Cluster) {
    let Some(ResponseKind::CreateTopics(r)) =
        c.request(1, ApiKey::CreateTopics, 5, create_topic(3, "2"))
    else {
        panic!("no create response")
    };
    assert_eq!(r.topics[0].error_code, 0, "{r:?}");
    c.run_for(Duration::from_millis(500));
}

#[test]
fn acks_all_is_answered_once_every_isr_member_has_the_batch() {
    let mut c = cluster_with_topic();
    let (leader, epoch) = c.leader_of(1, "t").expect("a leader");
    assert_eq!(epoch, 0);
    for i in 0..5 {
        let (code, offset) =
            produce_result(c.request(leader, ApiKey::Produce, 7, produce(&format!("v{i}"))));
        assert_eq!((code, offset), (0, i), "produce {i}");
        // Acknowledged: on every ISR member durably.
        for node in c.nodes.values() {
            let view = node
                .broker()
                .replica_views()
                .into_iter()
                .find(|v| v.topic == "t")
                .expect("replica");
            assert!(
                view.durable_offset > i,
                "node {} lacks offset {i}: {view:?}",
                node.id()
            );
        }
    }
}

#[test]
fn a_new_leader_from_the_isr_keeps_every_acknowledged_record() {
    let mut c = cluster_with_topic();
    let (leader, epoch) = c.leader_of(1, "t").expect("a leader");
    for i in 0..3 {
        let (code, _) =
            produce_result(c.request(leader, ApiKey::Produce, 7, produce(&format!("v{i}"))));
        assert_eq!(code, 0);
    }
    c.crash(leader);
    c.run_for(Duration::from_secs(3));
    let observer = *c.nodes.keys().next().expect("a live node");
    let (new_leader, new_epoch) = c.leader_of(observer, "t").expect("a new leader");
    assert_ne!(new_leader, leader);
    assert!(new_epoch > epoch);
    let (code, offset) =
        produce_result(c.request(new_leader, ApiKey::Produce, 7, produce("after")));
    assert_eq!((code, offset), (0, 3));
    let Some(ResponseKind::Fetch(r)) = c.request(new_leader, ApiKey::Fetch, 11, fetch(0)) else {
        panic!("no fetch response")
    };
    let part = &r.responses[0].partitions[0];
    assert_eq!(part.error_code, 0);
    assert_eq!(part.high_watermark, 4);
    // The old leader rejoins as a follower and catches up.
    c.restart(leader);
    c.run_for(Duration::from_secs(3));
    let view = c.nodes[&leader]
        .broker()
        .replica_views()
        .into_iter()
        .find(|v| v.topic == "t")
        .expect("replica");
    assert_eq!(view.log_end_offset, 4, "{view:?}");
}

// A follower that restarted rejoins the ISR only on a fetch from its new process (KIP-903):
// what its previous process reported says nothing about what this one holds, since a restart
// may have lost data. Registered and unfenced is not enough.
#[test]
fn a_restarted_follower_rejoins_the_isr_only_after_fetching_again() {
    let mut c = cluster_with_topic();
    let (leader, _) = c.leader_of(1, "t").expect("a leader");
    for i in 0..3 {
        let (code, _) =
            produce_result(c.request(leader, ApiKey::Produce, 7, produce(&format!("v{i}"))));
        assert_eq!(code, 0);
    }
    let follower = *c
        .nodes
        .keys()
        .find(|id| **id != leader)
        .expect("a follower");
    c.crash(follower);
    c.run_for(Duration::from_secs(2));
    let isr = |c: &Cluster| c.image(leader).partition("t", 0).expect("t-0").isr.clone();
    assert!(!isr(&c).contains(&follower), "{:?}", isr(&c));
    c.fetches_lost.insert(follower);
    c.restart(follower);
    c.run_for(Duration::from_secs(3));
    let image = c.image(leader);
    assert!(!image.brokers[&follower].fenced, "{image:?}");
    assert!(!isr(&c).contains(&follower), "{:?}", isr(&c));
    c.fetches_lost.clear();
    c.run_for(Duration::from_secs(3));
    assert!(isr(&c).contains(&follower), "{:?}", isr(&c));
}

// KIP-966: while the ISR is below min.insync.replicas the leader's high watermark stays where
// it is, even for acks=1 data, so the members that left meanwhile (eligible leader replicas)
// hold everything committed. It moves again once the ISR is back at the minimum.
#[test]
fn the_high_watermark_waits_while_the_isr_is_below_the_minimum() {
    let mut c = cluster_with_topic();
    let (leader, _) = c.leader_of(1, "t").expect("a leader");
    let (code, _) = produce_result(c.request(leader, ApiKey::Produce, 7, produce("v0")));
    assert_eq!(code, 0);
    let followers: Vec<NodeId> = c.nodes.keys().copied().filter(|id| *id != leader).collect();
    c.fetches_lost.extend(followers.iter().copied());
    let acks_one = produce_with_acks("v1", 1);
    let (code, offset) = produce_result(c.request(leader, ApiKey::Produce, 7, acks_one));
    assert_eq!((code, offset), (0, 1));
    // The followers lag behind the new record: the ISR shrinks to the leader alone.
    c.run_for(Duration::from_secs(3));
    let p = c.image(leader).partition("t", 0).expect("t-0").clone();
    let mut elr = p.elr.clone();
    elr.sort_unstable();
    assert_eq!((p.isr.clone(), elr), (vec![leader], followers.clone()));
    let hw = |c: &Cluster| {
        c.nodes[&leader]
            .broker()
            .replica_views()
            .into_iter()
            .find(|v| v.topic == "t")
            .expect("replica")
            .high_watermark
    };
    assert_eq!(
        hw(&c),
        1,
        "the acks=1 record is not committed below the minimum"
    );
    c.fetches_lost.clear();
    c.run_for(Duration::from_secs(3));
    assert_eq!(hw(&c), 2);
    let p = c.image(leader).partition("t", 0).expect("t-0").clone();
    assert_eq!((p.isr.len(), p.elr), (3, Vec::<NodeId>::new()));
}

/// The brokers and topics a Metadata request for every topic reports, asked of `node`.
fn all_metadata(c: &mut Cluster, node: NodeId) -> (Vec<i32>, Vec<String>) {
    let Some(ResponseKind::Metadata(r)) = c.request(
        node,
        ApiKey::Metadata,
        4,
        RequestKind::Metadata(MetadataRequest::default().with_topics(None)),
    ) else {
        panic!("no metadata response from node {node}")
    };
    let brokers = r.brokers.iter().map(|b| b.node_id.0).collect();
    let topics = r
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    (brokers, topics)
}

/// A broker answers clients only once the controller has registered and unfenced this very
/// process, so no client is told of an empty cluster (librdkafka gives up on one) or of a
/// restarted broker's stale image.
#[test]
fn clients_are_answered_once_the_broker_is_registered_and_unfenced() {
    let mut c = Cluster::new(3);
    let (brokers, topics) = all_metadata(&mut c, 1);
    assert!(brokers.contains(&1), "brokers {brokers:?}");
    assert!(topics.is_empty(), "{topics:?}");
    assert!(c.nodes[&1].broker().is_serving());

    c.run_for(Duration::from_secs(3));
    create_topic_t(&mut c);
    c.crash(2);
    c.run_for(Duration::from_secs(1));
    c.restart(2);
    assert!(!c.nodes[&2].broker().is_serving());
    let (brokers, topics) = all_metadata(&mut c, 2);
    assert!(brokers.contains(&2), "brokers {brokers:?}");
    assert_eq!(topics, vec!["t".to_string()]);
}
