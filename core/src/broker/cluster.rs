//! The broker as a member of a cluster: topics come from the controller's metadata image,
//! CreateTopics and DeleteTopics are forwarded to the controller, and Metadata describes the
//! whole cluster.
//!
//! The image is the only source of topics and roles: a broker keeps a log for every partition
//! of every topic in the image (empty for partitions it does not replicate), creates them
//! through its registry exactly as a single broker does (so they survive a restart before the
//! next image arrives), and removes topics the image no longer has.

use super::config::TopicConfig;
use super::errors;
use super::{Broker, BrokerEvent, BrokerOutput, PeerTarget, Token, Work};
use crate::cluster::metadata::MetadataImage;
use crate::cluster::peer::{PeerMessage, TopicResult, TopicSpec};
use crate::constants::{AUTO_CREATES_PENDING_MAX, REQUEST_TOPICS_MAX};
use crate::raft::NodeId;
use crate::time::Instant;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    MetadataResponse, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use uuid::Uuid;

/// A CreateTopics or DeleteTopics waiting for the controller.
#[derive(Debug)]
pub(super) struct ForwardState {
    version: i16,
    create: bool,
    /// Topic names in request order (for the NOT_CONTROLLER answer).
    names: Vec<String>,
    /// The controller's answer, held until the local image reaches its offset.
    answer: Option<(Vec<TopicResult>, u64)>,
    /// When to give up waiting for the controller.
    deadline: Instant,
    /// The forwarded message, sent again while the controller answers NOT_CONTROLLER (it is
    /// being elected, or moved): clients see that error only once the deadline passed.
    message: PeerMessage,
    /// Send `message` again on the next tick.
    resend: bool,
}

/// Auto-created topics are sent to the controller under request tags with this bit set, so
/// their answers are never taken for a client request's.
const AUTO_CREATE_TAG: u64 = 1 << 63;

/// A topic creation a Metadata request started.
#[derive(Debug)]
pub(super) struct AutoCreate {
    /// The tag the creation was sent under.
    tag: u64,
    /// When it was sent; it is sent again only after `admin_timeout`.
    sent_at: Instant,
    /// The controller's refusal, shown to the next Metadata request for the topic.
    refused: Option<i16>,
}

fn s(value: impl Into<String>) -> StrBytes {
    StrBytes::from_string(value.into())
}

impl Broker {
    /// A newer metadata image.
    pub(super) fn on_image(&mut self, now: Instant, image: MetadataImage) {
        if self
            .image
            .as_ref()
            .is_some_and(|i| i.offset >= image.offset)
            || image.offset < self.image_floor
        {
            return;
        }
        self.image = Some(image);
        if self.is_ready() {
            self.sync_topics_with_image(now);
            self.refresh_roles(now);
        }
        self.check_forwards(now);
        if !self.admitted && self.image_lists_me() {
            self.admitted = true;
            self.outbox
                .push_back(BrokerOutput::Event(BrokerEvent::Admitted));
            self.replay_held(now);
        }
    }

    /// Whether the image shows this very process registered and unfenced.
    pub(super) fn image_lists_me(&self) -> bool {
        let replication = self.replication();
        self.image.as_ref().is_some_and(|image| {
            image
                .brokers
                .get(&replication.node_id)
                .is_some_and(|b| b.incarnation == replication.incarnation && !b.fenced)
        })
    }

    /// Creates the topics of the image this broker lacks and deletes those it no longer has.
    pub(super) fn sync_topics_with_image(&mut self, now: Instant) {
        let Some(image) = self.image.clone() else {
            return;
        };
        let stale: Vec<String> = self
            .topics
            .iter()
            .filter(|(name, t)| {
                image
                    .topics
                    .get(*name)
                    .is_none_or(|info| Uuid::from_bytes(info.id) != t.id)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            self.delete_topic(now, &name);
            self.replica_ops.retain(|_, (topic, _, _)| *topic != name);
        }
        for (name, info) in &image.topics {
            if self.topics.contains_key(name)
                || self.tombstones.iter().any(|t| &t.record.name == name)
            {
                continue; // Present, or its old files are still being removed.
            }
            let config = TopicConfig::with_overrides(&self.config.topic_defaults, &info.configs)
                .unwrap_or_else(|_| self.config.topic_defaults.clone());
            let count = info.partitions.len() as i32;
            self.insert_topic_with_id(
                name,
                count,
                info.configs.clone(),
                config,
                Uuid::from_bytes(info.id),
            );
        }
    }

    // ---- forwarded admin requests ----

    pub(super) fn forward_create_topics(
        &mut self,
        now: Instant,
        token: Token,
        request: CreateTopicsRequest,
        version: i16,
    ) {
        let topics: Vec<TopicSpec> = request
            .topics
            .into_iter()
            .take(REQUEST_TOPICS_MAX)
            .map(|t| TopicSpec {
                name: t.name.0.to_string(),
                partitions: t.num_partitions,
                replication_factor: t.replication_factor,
                assignments: {
                    let mut a: Vec<_> = t.assignments.into_iter().collect();
                    a.sort_by_key(|a| a.partition_index);
                    a.into_iter()
                        .map(|a| a.broker_ids.into_iter().map(|b| b.0 as NodeId).collect())
                        .collect()
                },
                configs: t
                    .configs
                    .into_iter()
                    .filter_map(|c| Some((c.name.to_string(), c.value?.to_string())))
                    .collect(),
                validate_only: request.validate_only,
            })
            .collect();
        let names = topics.iter().map(|t| t.name.clone()).collect();
        let message = PeerMessage::CreateTopics {
            request: token,
            topics,
        };
        self.start_forward(now, token, version, true, names, message.clone());
        self.send_peer_controller(message);
    }

    pub(super) fn forward_delete_topics(
        &mut self,
        now: Instant,
        token: Token,
        request: DeleteTopicsRequest,
        version: i16,
    ) {
        let mut names: Vec<String> = if version >= 6 {
            let image = self.image.as_ref();
            request
                .topics
                .into_iter()
                .filter_map(|t| match t.name {
                    Some(name) => Some(name.0.to_string()),
                    None => image.and_then(|i| {
                        i.topics
                            .iter()
                            .find(|(_, info)| Uuid::from_bytes(info.id) == t.topic_id)
                            .map(|(name, _)| name.clone())
                    }),
                })
                .collect()
        } else {
            request
                .topic_names
                .into_iter()
                .map(|n| n.0.to_string())
                .collect()
        };
        names.truncate(REQUEST_TOPICS_MAX);
        let message = PeerMessage::DeleteTopics {
            request: token,
            names: names.clone(),
        };
        self.start_forward(now, token, version, false, names, message.clone());
        self.send_peer_controller(message);
    }

    fn send_peer_controller(&mut self, message: PeerMessage) {
        self.outbox.push_back(super::BrokerOutput::Send {
            to: PeerTarget::Controller,
            message,
        });
    }

    fn start_forward(
        &mut self,
        now: Instant,
        token: Token,
        version: i16,
        create: bool,
        names: Vec<String>,
        message: PeerMessage,
    ) {
        let deadline = now + self.config.admin_timeout;
        self.set_work(
            token,
            Work::Forwarded(ForwardState {
                version,
                create,
                names,
                answer: None,
                deadline,
                message,
                resend: false,
            }),
        );
        self.forwards.insert(token);
    }

    /// Starts creating `name` with the defaults (`num.partitions`,
    /// `default.replication.factor`) for a Metadata request, unless a creation is already on
    /// its way, and returns the error the request reports for it meanwhile: LEADER_NOT_AVAILABLE
    /// (retry) while it is being created, or the controller's refusal, once, as Kafka's
    /// `AutoTopicCreationManager` reports it.
    pub(super) fn auto_create_topic(&mut self, now: Instant, name: &str) -> i16 {
        let timeout = self.config.admin_timeout;
        if let Some(pending) = self.auto_creates.get_mut(name) {
            if let Some(error) = pending.refused.take() {
                self.auto_creates.remove(name);
                return error;
            }
            if now < pending.sent_at + timeout {
                return errors::LEADER_NOT_AVAILABLE;
            }
        }
        if self.auto_creates.len() >= AUTO_CREATES_PENDING_MAX {
            // Every slot is taken by creations in flight: the client retries.
            return errors::LEADER_NOT_AVAILABLE;
        }
        let tag = AUTO_CREATE_TAG | self.next_token;
        self.next_token += 1;
        let spec = TopicSpec {
            name: name.to_owned(),
            partitions: -1,
            replication_factor: -1,
            assignments: Vec::new(),
            configs: BTreeMap::new(),
            validate_only: false,
        };
        let message = PeerMessage::CreateTopics {
            request: tag,
            topics: vec![spec],
        };
        self.send_peer_controller(message);
        let pending = AutoCreate {
            tag,
            sent_at: now,
            refused: None,
        };
        self.auto_creates.insert(name.to_owned(), pending);
        errors::LEADER_NOT_AVAILABLE
    }

    /// The controller answered an auto-creation: a created topic arrives with the image; a
    /// refusal is kept for the next Metadata request to report.
    fn on_auto_create_response(&mut self, tag: u64, results: &[TopicResult]) {
        for result in results {
            let Some(pending) = self.auto_creates.get_mut(&result.name) else {
                continue;
            };
            if pending.tag != tag {
                continue;
            }
            match result.error {
                errors::NONE | errors::TOPIC_ALREADY_EXISTS => {
                    self.auto_creates.remove(&result.name);
                }
                // Not yet elected: the next Metadata request sends it again.
                errors::NOT_CONTROLLER | errors::REQUEST_TIMED_OUT => {
                    pending.sent_at = Instant::ZERO;
                }
                error => pending.refused = Some(error),
            }
        }
    }

    /// The controller answered a forwarded request.
    pub(super) fn on_topics_response(
        &mut self,
        now: Instant,
        request: u64,
        results: Vec<TopicResult>,
        metadata_offset: u64,
    ) {
        if request & AUTO_CREATE_TAG != 0 {
            return self.on_auto_create_response(request, &results);
        }
        if let Some(Work::Forwarded(state)) = self.requests.get_mut(&request).map(|r| &mut r.work) {
            let not_controller =
                !results.is_empty() && results.iter().all(|r| r.error == errors::NOT_CONTROLLER);
            if not_controller && now < state.deadline {
                state.resend = true;
            } else if state.answer.is_none() {
                state.answer = Some((results, metadata_offset));
            }
        }
        self.check_forwards(now);
    }

    /// Sends again the forwarded requests a non-active controller refused (on the tick, so a
    /// controller election is waited out rather than raced).
    pub(super) fn resend_forwards(&mut self) {
        let mut resends = Vec::new();
        for token in &self.forwards {
            if let Some(Work::Forwarded(state)) = self.requests.get_mut(token).map(|r| &mut r.work)
            {
                if state.resend && state.answer.is_none() {
                    state.resend = false;
                    resends.push(state.message.clone());
                }
            }
        }
        for message in resends {
            self.send_peer_controller(message);
        }
    }

    /// Answers forwarded requests whose answer the local image reflects, or that timed out.
    pub(super) fn check_forwards(&mut self, now: Instant) {
        let offset = self.image.as_ref().map_or(0, |i| i.offset);
        let tokens: Vec<Token> = self.forwards.iter().copied().collect();
        for token in tokens {
            let Some(Work::Forwarded(state)) = self.requests.get(&token).map(|r| &r.work) else {
                self.forwards.remove(&token);
                continue;
            };
            let response = match &state.answer {
                Some((results, at)) if *at <= offset || now >= state.deadline => {
                    forwarded_response(state, results)
                }
                None if now >= state.deadline => {
                    let results: Vec<TopicResult> = state
                        .names
                        .iter()
                        .map(|name| TopicResult {
                            name: name.clone(),
                            error: errors::REQUEST_TIMED_OUT,
                            message: Some("the controller did not answer in time".into()),
                            id: [0; 16],
                            partitions: -1,
                            replication_factor: -1,
                        })
                        .collect();
                    forwarded_response(state, &results)
                }
                _ => continue,
            };
            self.forwards.remove(&token);
            self.finish(token, Some(response));
        }
    }

    // ---- Metadata ----

    /// Metadata from the image: every live broker, every partition's leader and ISR.
    pub(super) fn cluster_metadata(
        &self,
        names: Option<Vec<String>>,
        version: i16,
    ) -> MetadataResponse {
        let empty = MetadataImage::default();
        let image = self.image.as_ref().unwrap_or(&empty);
        let brokers = image
            .brokers
            .iter()
            .filter(|(_, b)| !b.fenced)
            .map(|(id, b)| {
                let mut broker = MetadataResponseBroker::default()
                    .with_node_id(BrokerId(*id as i32))
                    .with_host(s(b.endpoint.host.clone()))
                    .with_port(i32::from(b.endpoint.port));
                if version >= 1 {
                    broker = broker.with_rack(None);
                }
                broker
            })
            .collect();
        let names: Vec<String> = names.unwrap_or_else(|| image.topics.keys().cloned().collect());
        let live = |id: &NodeId| image.brokers.get(id).is_some_and(|b| !b.fenced);
        let topics = names
            .into_iter()
            .map(|name| {
                let mut topic =
                    MetadataResponseTopic::default().with_name(Some(TopicName(s(name.clone()))));
                let Some(info) = image.topics.get(&name) else {
                    return topic.with_error_code(errors::UNKNOWN_TOPIC_OR_PARTITION);
                };
                if version >= 10 {
                    topic = topic.with_topic_id(Uuid::from_bytes(info.id));
                }
                let partitions = info
                    .partitions
                    .iter()
                    .enumerate()
                    .map(|(index, p)| {
                        let ids = |v: &[NodeId]| -> Vec<BrokerId> {
                            v.iter().map(|id| BrokerId(*id as i32)).collect()
                        };
                        let (error, leader) = match p.leader {
                            Some(leader) => (errors::NONE, BrokerId(leader as i32)),
                            None => (errors::LEADER_NOT_AVAILABLE, BrokerId(-1)),
                        };
                        let mut partition = MetadataResponsePartition::default()
                            .with_error_code(error)
                            .with_partition_index(index as i32)
                            .with_leader_id(leader)
                            .with_replica_nodes(ids(&p.replicas))
                            .with_isr_nodes(ids(&p.isr));
                        if version >= 7 {
                            partition = partition.with_leader_epoch(p.leader_epoch);
                        }
                        if version >= 5 {
                            let offline: Vec<NodeId> =
                                p.replicas.iter().copied().filter(|id| !live(id)).collect();
                            partition = partition.with_offline_replicas(ids(&offline));
                        }
                        partition
                    })
                    .collect();
                topic.with_partitions(partitions)
            })
            .collect();
        let controller = self.controller_hint.map_or(-1, |id| id as i32);
        let mut response = MetadataResponse::default()
            .with_brokers(brokers)
            .with_topics(topics);
        if version >= 1 {
            response = response.with_controller_id(BrokerId(controller));
        }
        if version >= 2 {
            response = response.with_cluster_id(Some(s(self.config.cluster_id.clone())));
        }
        response
    }

    /// `(id, host, port)` of every live broker, for DescribeCluster.
    pub(super) fn cluster_brokers(&self) -> Vec<(i32, String, i32)> {
        self.image
            .iter()
            .flat_map(|image| image.live_brokers())
            .map(|(id, b)| {
                (
                    id as i32,
                    b.endpoint.host.clone(),
                    i32::from(b.endpoint.port),
                )
            })
            .collect()
    }
}

fn forwarded_response(state: &ForwardState, results: &[TopicResult]) -> ResponseKind {
    let version = state.version;
    let by_name: BTreeMap<&str, &TopicResult> =
        results.iter().map(|r| (r.name.as_str(), r)).collect();
    if state.create {
        let topics = state
            .names
            .iter()
            .map(|name| {
                let r = by_name.get(name.as_str());
                let (error, message) = match r {
                    Some(r) => (r.error, r.message.clone()),
                    None => (errors::NOT_CONTROLLER, None),
                };
                let mut result = CreatableTopicResult::default()
                    .with_name(TopicName(s(name.clone())))
                    .with_error_code(error)
                    .with_error_message(message.map(StrBytes::from_string));
                if version >= 7 {
                    result =
                        result.with_topic_id(r.map_or(Uuid::nil(), |r| Uuid::from_bytes(r.id)));
                }
                if version >= 5 {
                    let (partitions, rf) = r
                        .filter(|r| r.error == errors::NONE)
                        .map_or((-1, -1), |r| (r.partitions, r.replication_factor));
                    result = result
                        .with_num_partitions(partitions)
                        .with_replication_factor(rf);
                }
                result
            })
            .collect();
        ResponseKind::CreateTopics(CreateTopicsResponse::default().with_topics(topics))
    } else {
        let responses = state
            .names
            .iter()
            .map(|name| {
                let r = by_name.get(name.as_str());
                let mut result = DeletableTopicResult::default()
                    .with_name(Some(TopicName(s(name.clone()))))
                    .with_error_code(r.map_or(errors::NOT_CONTROLLER, |r| r.error));
                if version >= 5 {
                    result = result.with_error_message(r.and_then(|r| r.message.clone()).map(s));
                }
                if version >= 6 {
                    result =
                        result.with_topic_id(r.map_or(Uuid::nil(), |r| Uuid::from_bytes(r.id)));
                }
                result
            })
            .collect();
        ResponseKind::DeleteTopics(DeleteTopicsResponse::default().with_responses(responses))
    }
}
