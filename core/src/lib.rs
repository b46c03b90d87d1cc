//! Seedlog's broker logic as sans-IO state machines.
//!
//! Nothing here reads a clock, touches a file or a socket, spawns a thread or draws unseeded
//! randomness: time, randomness, network and disk come in through each state machine's
//! `handle(now, input)` / `poll_output()` / `poll_timeout()` face. The same code therefore runs
//! under the deterministic simulator (`seedlog-sim`) and the tokio driver (`seedlog-node`).
#![warn(missing_docs)]

pub mod prng;
pub mod record_batch;
pub mod time;

pub use prng::Prng;
pub use time::{Duration, Instant};
pub mod broker;
pub mod canary;
pub mod cluster;
pub mod constants;
pub mod group;
pub mod io;
pub mod log;
pub mod raft;
pub mod timer;
