//! The metadata image the controller quorum replicates, and the records that change it.
//!
//! The controller's Raft log carries [`MetadataBatch`]es (postcard-encoded): each is a list of
//! [`MetadataRecord`]s proposed together by the active controller and applied atomically, in
//! log order, by every voter. Applying is a pure, deterministic function of the image and the
//! record, so every voter (and every broker that receives the image) holds the same state at
//! the same offset. A record that no longer fits the image (a partition change whose expected
//! partition epoch is stale, a broker record for an older incarnation) is skipped, never
//! half-applied: the active controller may propose from a view that a concurrent change made
//! stale, and the check at apply time is what keeps that safe (KRaft's partition epoch).

use crate::raft::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where clients reach a broker (Kafka's advertised listener).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// A registered broker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    /// The broker's incarnation: a new value on every process start (KRaft's broker epoch).
    pub incarnation: u64,
    /// Its client endpoint.
    pub endpoint: Endpoint,
    /// Fenced brokers lead nothing and join no ISR.
    pub fenced: bool,
    /// The identity of its data directory (0: not known). A broker that registers with a
    /// different one lost its disk.
    pub storage: u64,
}

/// One partition's replication state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionInfo {
    /// The replica set, preferred leader first.
    pub replicas: Vec<NodeId>,
    /// In-sync replicas, a subset of `replicas`. Fencing never empties it (the last member
    /// stays, so an unclean election is never implied); only a member that lost its disk
    /// leaves an empty ISR behind.
    pub isr: Vec<NodeId>,
    /// Eligible leader replicas (KIP-966): members that left the ISR while it was smaller than
    /// `min.insync.replicas`. The leader's high watermark does not advance while the ISR is
    /// that small, so each holds everything committed and can be elected cleanly when no ISR
    /// member is alive.
    pub elr: Vec<NodeId>,
    /// The leader, if any replica can lead.
    pub leader: Option<NodeId>,
    /// Bumped whenever the leader changes (Kafka's leader epoch).
    pub leader_epoch: i32,
    /// Bumped on every change to this partition (KRaft's partition epoch).
    pub partition_epoch: i32,
    /// Replicas being added by a reassignment (already in `replicas`).
    pub adding: Vec<NodeId>,
    /// Replicas being removed by a reassignment (still in `replicas`).
    pub removing: Vec<NodeId>,
}

/// A topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicInfo {
    /// Topic id (Kafka's topic UUID).
    pub id: [u8; 16],
    /// Per-topic config overrides (`min.insync.replicas`, `unclean.leader.election.enable`, …).
    pub configs: BTreeMap<String, String>,
    /// Partitions, by index.
    pub partitions: Vec<PartitionInfo>,
}

impl TopicInfo {
    /// A config override parsed as `T`, if present and valid.
    pub fn config<T: std::str::FromStr>(&self, key: &str) -> Option<T> {
        self.configs.get(key)?.parse().ok()
    }
}

/// The cluster's metadata at one offset of the metadata log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    /// Raft index of the last applied entry (0: nothing applied).
    pub offset: u64,
    /// Registered brokers.
    pub brokers: BTreeMap<NodeId, BrokerInfo>,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicInfo>,
}

/// A change to one partition, applied only if the partition is still at
/// `expected_partition_epoch`. Fields left `None` stay as they are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionChange {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// The partition epoch the change was computed from.
    pub expected_partition_epoch: i32,
    /// New leader (`Some(None)`: no leader). A different leader bumps the leader epoch.
    pub leader: Option<Option<NodeId>>,
    /// New ISR.
    pub isr: Option<Vec<NodeId>>,
    /// New eligible leader replicas.
    pub elr: Option<Vec<NodeId>>,
    /// New replica set.
    pub replicas: Option<Vec<NodeId>>,
    /// New reassignment state `(adding, removing)`.
    pub reassignment: Option<(Vec<NodeId>, Vec<NodeId>)>,
}

/// One change to the metadata image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// A broker started (a new incarnation replaces the old one and starts fenced).
    RegisterBroker {
        /// Broker id.
        id: NodeId,
        /// Its incarnation.
        incarnation: u64,
        /// Its client endpoint.
        endpoint: Endpoint,
        /// Its data directory's identity (0: not known). One different from the registered
        /// one means the disk was lost: the broker leaves every ISR and ELR, and any
        /// leadership, at once.
        storage: u64,
    },
    /// Fence (or unfence) the given incarnation of a broker.
    SetFenced {
        /// Broker id.
        id: NodeId,
        /// The incarnation this applies to; ignored for any other.
        incarnation: u64,
        /// Fenced or not.
        fenced: bool,
    },
    /// Create a topic (ignored if the name exists).
    CreateTopic {
        /// Name.
        name: String,
        /// Id.
        id: [u8; 16],
        /// Config overrides.
        configs: BTreeMap<String, String>,
        /// Replica assignment per partition; each starts with ISR = replicas and the first
        /// replica as leader, at leader and partition epoch 0.
        assignments: Vec<Vec<NodeId>>,
    },
    /// Delete a topic (ignored unless the name has this id).
    DeleteTopic {
        /// Name.
        name: String,
        /// Id.
        id: [u8; 16],
    },
    /// Change one partition.
    ChangePartition(PartitionChange),
}

/// Records proposed and applied together: one Raft entry.
pub type MetadataBatch = Vec<MetadataRecord>;

impl MetadataImage {
    /// Applies one record. Returns false if it was skipped as stale (see the module docs).
    pub fn apply(&mut self, record: &MetadataRecord) -> bool {
        match record {
            MetadataRecord::RegisterBroker {
                id,
                incarnation,
                endpoint,
                storage,
            } => {
                let mut known = 0;
                if let Some(old) = self.brokers.get(id) {
                    if old.incarnation > *incarnation {
                        return false;
                    }
                    known = old.storage;
                }
                if known != 0 && *storage != 0 && known != *storage {
                    self.forget_replica_data(*id);
                }
                self.brokers.insert(
                    *id,
                    BrokerInfo {
                        incarnation: *incarnation,
                        endpoint: endpoint.clone(),
                        fenced: true,
                        storage: if *storage != 0 { *storage } else { known },
                    },
                );
                true
            }
            MetadataRecord::SetFenced {
                id,
                incarnation,
                fenced,
            } => match self.brokers.get_mut(id) {
                Some(broker) if broker.incarnation == *incarnation => {
                    broker.fenced = *fenced;
                    true
                }
                _ => false,
            },
            MetadataRecord::CreateTopic {
                name,
                id,
                configs,
                assignments,
            } => {
                if self.topics.contains_key(name) || assignments.is_empty() {
                    return false;
                }
                let partitions = assignments
                    .iter()
                    .map(|replicas| PartitionInfo {
                        replicas: replicas.clone(),
                        isr: replicas.clone(),
                        elr: Vec::new(),
                        leader: replicas.first().copied(),
                        leader_epoch: 0,
                        partition_epoch: 0,
                        adding: Vec::new(),
                        removing: Vec::new(),
                    })
                    .collect();
                self.topics.insert(
                    name.clone(),
                    TopicInfo {
                        id: *id,
                        configs: configs.clone(),
                        partitions,
                    },
                );
                true
            }
            MetadataRecord::DeleteTopic { name, id } => {
                if self.topics.get(name).is_some_and(|t| t.id == *id) {
                    self.topics.remove(name);
                    true
                } else {
                    false
                }
            }
            MetadataRecord::ChangePartition(change) => self.apply_partition_change(change),
        }
    }

    /// The unfenced brokers: those that may lead and join ISRs.
    pub fn live_brokers(&self) -> impl Iterator<Item = (NodeId, &BrokerInfo)> {
        self.brokers
            .iter()
            .filter(|(_, b)| !b.fenced)
            .map(|(id, b)| (*id, b))
    }

    /// Broker `id` lost its disk: it holds none of the data its ISR or ELR memberships
    /// promised, so it leaves them (and any leadership) in every partition.
    fn forget_replica_data(&mut self, id: NodeId) {
        for topic in self.topics.values_mut() {
            for p in &mut topic.partitions {
                if !p.isr.contains(&id) && !p.elr.contains(&id) && p.leader != Some(id) {
                    continue;
                }
                p.isr.retain(|r| *r != id);
                p.elr.retain(|r| *r != id);
                if p.leader == Some(id) {
                    p.leader = None;
                    p.leader_epoch += 1;
                }
                p.partition_epoch += 1;
            }
        }
    }

    fn apply_partition_change(&mut self, change: &PartitionChange) -> bool {
        let Some(p) = self
            .topics
            .get_mut(&change.topic)
            .and_then(|t| t.partitions.get_mut(change.partition as usize))
        else {
            return false;
        };
        if p.partition_epoch != change.expected_partition_epoch {
            return false;
        }
        if let Some(leader) = change.leader {
            if leader != p.leader {
                p.leader = leader;
                p.leader_epoch += 1;
            }
        }
        if let Some(isr) = &change.isr {
            p.isr = isr.clone();
        }
        if let Some(elr) = &change.elr {
            p.elr = elr.clone();
        }
        if let Some(replicas) = &change.replicas {
            p.replicas = replicas.clone();
        }
        if let Some((adding, removing)) = &change.reassignment {
            p.adding = adding.clone();
            p.removing = removing.clone();
        }
        p.partition_epoch += 1;
        true
    }

    /// The partition, if it exists.
    pub fn partition(&self, topic: &str, partition: u32) -> Option<&PartitionInfo> {
        self.topics.get(topic)?.partitions.get(partition as usize)
    }
}
