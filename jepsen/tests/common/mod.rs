//! A small DSL for hand-made histories: each call appends one operation that runs for 5 ns,
//! 10 ns after the previous one, unless explicit times are given.

#![allow(dead_code)]

use seedlog_jepsen::{
    check, CheckOptions, History, MicroOp, OpId, OpKind, Outcome, Record, Verdict, Workload,
};

pub struct H {
    pub h: History,
    t: u64,
}

impl H {
    pub fn new() -> H {
        H {
            h: History::new(),
            t: 0,
        }
    }

    fn next_time(&mut self) -> (u64, u64) {
        self.t += 10;
        (self.t, self.t + 5)
    }

    pub fn push(&mut self, process: u64, outcome: Outcome, kind: OpKind) -> OpId {
        let (a, b) = self.next_time();
        self.h
            .push_complete(process, a, Some(b), outcome, kind)
            .expect("test times are ordered")
    }

    pub fn push_at(
        &mut self,
        process: u64,
        invoke: u64,
        complete: Option<u64>,
        outcome: Outcome,
        kind: OpKind,
    ) -> OpId {
        self.t = self.t.max(complete.unwrap_or(invoke));
        self.h
            .push_complete(process, invoke, complete, outcome, kind)
            .expect("test times are ordered")
    }

    pub fn send(&mut self, process: u64, key: &str, value: i64, offset: Option<i64>) -> OpId {
        let key = self.h.key(key).unwrap();
        self.push(process, Outcome::Ok, OpKind::Send { key, value, offset })
    }

    pub fn send_outcome(
        &mut self,
        process: u64,
        key: &str,
        value: i64,
        offset: Option<i64>,
        outcome: Outcome,
    ) -> OpId {
        let key = self.h.key(key).unwrap();
        self.push(process, outcome, OpKind::Send { key, value, offset })
    }

    pub fn records(&mut self, records: &[(&str, i64, i64)]) -> Vec<Record> {
        records
            .iter()
            .map(|(k, o, v)| Record {
                key: self.h.key(k).unwrap(),
                offset: *o,
                value: *v,
            })
            .collect()
    }

    pub fn poll(&mut self, process: u64, records: &[(&str, i64, i64)]) -> OpId {
        let records = self.records(records);
        self.push(
            process,
            Outcome::Ok,
            OpKind::Poll {
                records,
                rebalanced: false,
            },
        )
    }

    pub fn poll_rebalanced(&mut self, process: u64, records: &[(&str, i64, i64)]) -> OpId {
        let records = self.records(records);
        self.push(
            process,
            Outcome::Ok,
            OpKind::Poll {
                records,
                rebalanced: true,
            },
        )
    }

    pub fn assign(&mut self, process: u64, keys: &[&str]) -> OpId {
        let keys = keys.iter().map(|k| self.h.key(k).unwrap()).collect();
        self.push(process, Outcome::Ok, OpKind::Assign { keys })
    }

    pub fn send_mop(&mut self, key: &str, value: i64, offset: i64) -> MicroOp {
        MicroOp::Send {
            key: self.h.key(key).unwrap(),
            value,
            offset: Some(offset),
        }
    }

    pub fn poll_mop(&mut self, records: &[(&str, i64, i64)]) -> MicroOp {
        MicroOp::Poll {
            records: self.records(records),
        }
    }

    pub fn txn(&mut self, process: u64, outcome: Outcome, mops: Vec<MicroOp>) -> OpId {
        self.push(process, outcome, OpKind::Txn { mops })
    }

    pub fn txn_at(&mut self, process: u64, invoke: u64, complete: u64, mops: Vec<MicroOp>) -> OpId {
        self.push_at(
            process,
            invoke,
            Some(complete),
            Outcome::Ok,
            OpKind::Txn { mops },
        )
    }
}

/// Checks with the given workload, queue and cycle analyses only.
pub fn check_queue(h: &History, workload: Workload) -> Verdict {
    let options = CheckOptions {
        workload,
        linearizability: false,
        ..CheckOptions::default()
    };
    check(h, &options)
}

/// The classes found (with counts), as report names.
pub fn counts(v: &Verdict) -> Vec<(&'static str, u64)> {
    v.counts.iter().map(|(c, n)| (c.name(), *n)).collect()
}

pub fn txn_workload() -> Workload {
    Workload {
        transactions: true,
        ..Workload::default()
    }
}
