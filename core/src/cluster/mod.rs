//! A Seedlog cluster node: the controller quorum, the active controller and the replicated
//! partitions of one broker behind one `handle/poll` face (DESIGN §2, §3).

pub mod controller;
pub mod metadata;
pub mod node;
pub mod peer;
#[cfg(test)]
mod tests;

pub use metadata::{
    BrokerInfo, Endpoint, MetadataBatch, MetadataImage, MetadataRecord, PartitionChange,
    PartitionInfo, TopicInfo,
};
pub use node::{Node, NodeConfig, NodeEvent, NodeInput, NodeOutput};
pub use peer::PeerMessage;
