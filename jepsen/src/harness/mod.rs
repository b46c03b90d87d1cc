//! The real-process harness behind `seedlog jepsen`: real `seedlog node` processes, each in its
//! own network namespace, driven by Kafka clients while a seeded nemesis kills, pauses and
//! partitions them; the history goes through the same checkers the simulator uses.

pub mod nemesis;
pub mod netns;
#[cfg(feature = "rdkafka")]
pub mod rdkafka_client;
pub mod run;
pub mod workload;
