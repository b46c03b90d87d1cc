//! Seedlog's history checkers: the evidence behind its consistency claims.
//!
//! A [`History`] records what clients did (sends, polls, transactions, assignments, offset
//! commits, crashes, log and register operations), when, and how each ended: ok, fail, or info
//! (indeterminate). [`check`] runs every applicable analysis and classifies what it finds with
//! Seedlog's written semantics (`SEMANTICS.md`, generated from [`semantics`]):
//!
//! - [`queue`]: the anomalies of Jepsen's Kafka workload (inconsistent offsets, duplicates, lost
//!   and unseen writes, poll and send ordering, aborted and precommitted reads, realtime lag);
//! - [`cycle`]: Elle-style dependency cycles (G0, G1c and their process/realtime variants) over
//!   transactional histories;
//! - [`linear`]: per-partition and per-register linearizability, by a search-free fast path that
//!   takes the offsets a log returned as the witness order, or by a Wing–Gong–Lowe search whose
//!   memo entries are 128-bit fingerprints (O(1) each, so a hot partition does not exhaust
//!   memory).
//!
//! The checking code does no IO; [`format`] converts to and from text, [`report`] renders a
//! self-contained HTML page, and [`cli`] (the one module that reads files) backs
//! `seedlog check`.
//!
//! ```
//! use seedlog_jepsen::{check, CheckOptions, History, OpKind, Outcome, Record, Validity};
//!
//! let mut h = History::new();
//! let p0 = h.key("orders-0").unwrap();
//! let send = h.invoke(1, 10, OpKind::Send { key: p0, value: 7, offset: None }).unwrap();
//! h.complete(send, 20, Outcome::Ok, Some(OpKind::Send { key: p0, value: 7, offset: Some(0) })).unwrap();
//! let poll = h.invoke(2, 30, OpKind::Poll { records: vec![], rebalanced: false }).unwrap();
//! let records = vec![Record { key: p0, offset: 0, value: 7 }];
//! h.complete(poll, 40, Outcome::Ok, Some(OpKind::Poll { records, rebalanced: false })).unwrap();
//!
//! let verdict = check(&h, &CheckOptions::default());
//! assert_eq!(verdict.validity, Validity::Valid);
//! ```

#![warn(missing_docs)]

pub mod anomaly;
pub mod cli;
pub mod cycle;
pub mod format;
pub mod gen;
#[cfg(feature = "harness")]
pub mod harness;
pub mod history;
pub mod linear;
pub mod queue;
pub mod report;
pub mod semantics;
pub mod util;
pub mod verdict;

pub use anomaly::{Anomaly, AnomalyClass, EdgeKind};
pub use history::{History, HistoryError, KeyId, MicroOp, Op, OpId, OpKind, Outcome, Record};
pub use semantics::{Rule, Workload};
pub use verdict::{check, CheckOptions, CycleMode, Finding, Validity, Verdict};
