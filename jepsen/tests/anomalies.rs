//! Hand-made histories for every anomaly class: each test builds a failing history and a
//! clean twin that differs only in the anomalous detail, and asserts the exact classes found.

mod common;

use std::time::Duration;

use common::{check_queue, counts, txn_workload, H};
use seedlog_jepsen::{
    check, AnomalyClass, CheckOptions, OpId, OpKind, Outcome, Rule, Validity, Workload,
};

fn ops_of(v: &seedlog_jepsen::Verdict, class: AnomalyClass) -> Vec<OpId> {
    v.of_class(class)
        .next()
        .map(|f| f.anomaly.ops.clone())
        .unwrap_or_default()
}

// Two values at one offset must be reported as inconsistent-offsets naming both writers and
// the reader; the unread one is also lost since offset 0 was read.
#[test]
fn inconsistent_offsets() {
    let mut t = H::new();
    let a = t.send(1, "x", 10, Some(0));
    let b = t.send(2, "x", 20, Some(0));
    let r = t.poll(3, &[("x", 0, 10)]);
    let v = check_queue(&t.h, Workload::default());
    assert_eq!(
        counts(&v),
        vec![("inconsistent-offsets", 1), ("lost-write", 1)]
    );
    assert_eq!(ops_of(&v, AnomalyClass::InconsistentOffsets), vec![a, b, r]);
    assert_eq!(v.validity, Validity::Invalid);

    let mut clean = H::new();
    clean.send(1, "x", 10, Some(0));
    clean.send(2, "x", 20, Some(1));
    clean.poll(3, &[("x", 0, 10), ("x", 1, 20)]);
    assert_eq!(counts(&check_queue(&clean.h, Workload::default())), vec![]);
}

// Inconsistent offsets and lost writes are allowed with acks=1 (the semantics table), so the
// same history is valid there.
#[test]
fn acks1_allows_truncation_anomalies() {
    let mut t = H::new();
    t.send(1, "x", 10, Some(0));
    t.send(2, "x", 20, Some(0));
    t.poll(3, &[("x", 0, 10)]);
    let v = check_queue(
        &t.h,
        Workload {
            acks_all: false,
            ..Workload::default()
        },
    );
    assert_eq!(v.validity, Validity::Valid);
    assert!(v.findings.iter().all(|f| f.rule == Rule::Allowed));
}

// One value at two offsets is a duplicate, forbidden for an idempotent producer and allowed
// without idempotence.
#[test]
fn duplicate() {
    let mut t = H::new();
    t.send(1, "x", 10, Some(0));
    t.send(1, "x", 20, Some(1));
    t.poll(2, &[("x", 0, 10), ("x", 1, 20), ("x", 2, 10)]);
    let v = check_queue(&t.h, Workload::default());
    assert_eq!(counts(&v), vec![("duplicate", 1)]);
    assert_eq!(v.validity, Validity::Invalid);
    let lax = check_queue(
        &t.h,
        Workload {
            idempotent: false,
            ..Workload::default()
        },
    );
    assert_eq!(lax.validity, Validity::Valid);

    let mut clean = H::new();
    clean.send(1, "x", 10, Some(0));
    clean.send(1, "x", 20, Some(1));
    clean.poll(2, &[("x", 0, 10), ("x", 1, 20)]);
    assert_eq!(counts(&check_queue(&clean.h, Workload::default())), vec![]);
}

// An acknowledged value never read while a later offset was read is a lost write naming its
// send.
#[test]
fn lost_write() {
    let mut t = H::new();
    let a = t.send(1, "x", 10, Some(0));
    t.send(1, "x", 20, Some(1));
    t.poll(2, &[("x", 1, 20)]);
    let v = check_queue(&t.h, Workload::default());
    assert_eq!(counts(&v), vec![("lost-write", 1)]);
    assert_eq!(ops_of(&v, AnomalyClass::LostWrite), vec![a]);

    let mut clean = H::new();
    clean.send(1, "x", 10, Some(0));
    clean.send(1, "x", 20, Some(1));
    clean.poll(2, &[("x", 0, 10), ("x", 1, 20)]);
    assert_eq!(counts(&check_queue(&clean.h, Workload::default())), vec![]);
}

// An acknowledged value that a consumer saw, and that a read invoked after its acknowledgement
// found replaced by another value, is lost too (a failover truncated it): the lost-write names
// its send and that read. When the replacing value could have been read before the
// acknowledgement, there is no real-time proof of which value the log kept, so only the
// conflict at the offset is reported.
#[test]
fn a_value_seen_then_replaced_is_a_lost_write() {
    let mut t = H::new();
    let a = t.send(1, "x", 10, Some(0));
    t.poll(2, &[("x", 0, 10)]);
    t.send(4, "x", 20, Some(0));
    let r = t.poll(3, &[("x", 0, 20)]);
    let v = check_queue(&t.h, Workload::default());
    assert_eq!(
        counts(&v),
        vec![("inconsistent-offsets", 1), ("lost-write", 1)]
    );
    assert_eq!(ops_of(&v, AnomalyClass::LostWrite), vec![a, r]);

    let mut concurrent = H::new();
    let key = concurrent.h.key("x").unwrap();
    let send = |value| OpKind::Send {
        key,
        value,
        offset: Some(0),
    };
    let records = concurrent.records(&[("x", 0, 20)]);
    concurrent.push_at(
        3,
        10,
        Some(50),
        Outcome::Ok,
        OpKind::Poll {
            records,
            rebalanced: false,
        },
    );
    concurrent.push_at(1, 20, Some(30), Outcome::Ok, send(10));
    let records = concurrent.records(&[("x", 0, 10)]);
    concurrent.push_at(
        2,
        40,
        Some(70),
        Outcome::Ok,
        OpKind::Poll {
            records,
            rebalanced: false,
        },
    );
    concurrent.push_at(4, 45, Some(60), Outcome::Ok, send(20));
    let v = check_queue(&concurrent.h, Workload::default());
    assert_eq!(counts(&v), vec![("inconsistent-offsets", 1)]);
}

// An acknowledged value never read (with nothing later read) is unseen: allowed unless the run
// was drained, and the timeline ends at the final unseen count.
#[test]
fn unseen() {
    let mut t = H::new();
    t.send(1, "x", 10, Some(0));
    let b = t.send(1, "x", 20, Some(1));
    t.poll(2, &[("x", 0, 10)]);
    let v = check_queue(&t.h, Workload::default());
    assert_eq!(counts(&v), vec![("unseen", 1)]);
    assert_eq!(ops_of(&v, AnomalyClass::Unseen), vec![b]);
    assert_eq!(v.validity, Validity::Valid);
    assert_eq!(v.queue.unseen_final, 1);
    assert_eq!(v.queue.unseen_timeline, vec![(15, 1), (25, 2), (35, 1)]);
    let drained = check_queue(
        &t.h,
        Workload {
            drained: true,
            ..Workload::default()
        },
    );
    assert_eq!(drained.validity, Validity::Invalid);

    let mut clean = H::new();
    clean.send(1, "x", 10, Some(0));
    clean.send(1, "x", 20, Some(1));
    clean.poll(2, &[("x", 0, 10), ("x", 1, 20)]);
    let v = check_queue(
        &clean.h,
        Workload {
            drained: true,
            ..Workload::default()
        },
    );
    assert_eq!((counts(&v), v.queue.unseen_final), (vec![], 0));
}

fn three_sends(t: &mut H) {
    t.send(1, "x", 10, Some(0));
    t.send(1, "x", 20, Some(1));
    t.send(1, "x", 30, Some(2));
    t.poll(8, &[("x", 0, 10), ("x", 1, 20), ("x", 2, 30)]);
}

// A consumer whose next poll jumps past a value is a poll-skip naming both polls; an assign in
// between resets the consumer position, so the same polls are then clean.
#[test]
fn poll_skip_and_reset_on_assign() {
    let mut t = H::new();
    three_sends(&mut t);
    let p1 = t.poll(9, &[("x", 0, 10)]);
    let p2 = t.poll(9, &[("x", 2, 30)]);
    let v = check_queue(&t.h, Workload::default());
    assert_eq!(counts(&v), vec![("poll-skip", 1)]);
    assert_eq!(ops_of(&v, AnomalyClass::PollSkip), vec![p1, p2]);

    let mut clean = H::new();
    three_sends(&mut clean);
    clean.poll(9, &[("x", 0, 10)]);
    clean.assign(9, &["x"]);
    clean.poll(9, &[("x", 2, 30)]);
    assert_eq!(counts(&check_queue(&clean.h, Workload::default())), vec![]);
}

// A consumer whose next poll goes back is nonmonotonic; a poll that reports a rebalance resets
// the position first, so the same records are then clean.
#[test]
fn nonmonotonic_poll_and_reset_on_rebalance() {
    let mut t = H::new();
    three_sends(&mut t);
    t.poll(9, &[("x", 0, 10), ("x", 1, 20)]);
    t.poll(9, &[("x", 1, 20), ("x", 2, 30)]);
    let v = check_queue(
        &t.h,
        Workload {
            subscribe: true,
            ..Workload::default()
        },
    );
    assert_eq!(counts(&v), vec![("nonmonotonic-poll", 1)]);
    assert_eq!(v.validity, Validity::Invalid);

    let mut clean = H::new();
    three_sends(&mut clean);
    clean.poll(9, &[("x", 0, 10), ("x", 1, 20)]);
    clean.poll_rebalanced(9, &[("x", 1, 20), ("x", 2, 30)]);
    assert_eq!(
        counts(&check_queue(
            &clean.h,
            Workload {
                subscribe: true,
                ..Workload::default()
            }
        )),
        vec![]
    );
}

// Within one poll, a gap between consecutive records of a partition is int-poll-skip.
#[test]
fn int_poll_skip() {
    let mut t = H::new();
    three_sends(&mut t);
    let p = t.poll(9, &[("x", 0, 10), ("x", 2, 30)]);
    let v = check_queue(&t.h, Workload::default());
    assert_eq!(counts(&v), vec![("int-poll-skip", 1)]);
    assert_eq!(ops_of(&v, AnomalyClass::IntPollSkip), vec![p]);

    let mut clean = H::new();
    three_sends(&mut clean);
    clean.poll(9, &[("x", 0, 10), ("x", 1, 20), ("x", 2, 30)]);
    assert_eq!(counts(&check_queue(&clean.h, Workload::default())), vec![]);
}

// Within one poll, records of a partition going backwards is int-nonmonotonic-poll.
#[test]
fn int_nonmonotonic_poll() {
    let mut t = H::new();
    three_sends(&mut t);
    t.poll(9, &[("x", 1, 20), ("x", 0, 10)]);
    let v = check_queue(&t.h, Workload::default());
    assert_eq!(counts(&v), vec![("int-nonmonotonic-poll", 1)]);

    let mut clean = H::new();
    three_sends(&mut clean);
    clean.poll(9, &[("x", 0, 10), ("x", 1, 20)]);
    assert_eq!(counts(&check_queue(&clean.h, Workload::default())), vec![]);
}

// Two sends of one transaction landing apart (another producer in between) is int-send-skip,
// which is allowed; here the interleaving also forms a ww cycle (G0), allowed with
// transactions. Without the interleaving the history is clean.
#[test]
fn int_send_skip_is_allowed() {
    let mut t = H::new();
    let mops = vec![t.send_mop("x", 10, 0), t.send_mop("x", 30, 2)];
    t.txn_at(1, 10, 50, mops);
    let other = vec![t.send_mop("x", 20, 1)];
    t.txn_at(2, 20, 40, other);
    t.poll(8, &[("x", 0, 10), ("x", 1, 20), ("x", 2, 30)]);
    let v = check_queue(&t.h, txn_workload());
    assert_eq!(counts(&v), vec![("int-send-skip", 1), ("G0", 1)]);
    assert_eq!(v.validity, Validity::Valid);

    let mut clean = H::new();
    let mops = vec![clean.send_mop("x", 10, 0), clean.send_mop("x", 30, 1)];
    clean.txn_at(1, 10, 50, mops);
    clean.poll(8, &[("x", 0, 10), ("x", 1, 30)]);
    assert_eq!(counts(&check_queue(&clean.h, txn_workload())), vec![]);
}

// A process's later send landing before its earlier one is nonmonotonic-send.
#[test]
fn nonmonotonic_send() {
    let mut t = H::new();
    let a = t.send(1, "x", 10, Some(1));
    let b = t.send(1, "x", 20, Some(0));
    t.poll(2, &[("x", 0, 20), ("x", 1, 10)]);
    let v = check_queue(&t.h, Workload::default());
    assert_eq!(counts(&v), vec![("nonmonotonic-send", 1)]);
    assert_eq!(ops_of(&v, AnomalyClass::NonmonotonicSend), vec![a, b]);

    let mut clean = H::new();
    clean.send(1, "x", 10, Some(0));
    clean.send(1, "x", 20, Some(1));
    clean.poll(2, &[("x", 0, 10), ("x", 1, 20)]);
    assert_eq!(counts(&check_queue(&clean.h, Workload::default())), vec![]);
}

// Within one transaction, a later send landing first is int-nonmonotonic-send.
#[test]
fn int_nonmonotonic_send() {
    let mut t = H::new();
    let mops = vec![t.send_mop("x", 10, 1), t.send_mop("x", 20, 0)];
    t.txn(1, Outcome::Ok, mops);
    t.poll(2, &[("x", 0, 20), ("x", 1, 10)]);
    let v = check_queue(&t.h, txn_workload());
    assert_eq!(counts(&v), vec![("int-nonmonotonic-send", 1)]);
    assert_eq!(v.validity, Validity::Invalid);

    let mut clean = H::new();
    let mops = vec![clean.send_mop("x", 10, 0), clean.send_mop("x", 20, 1)];
    clean.txn(1, Outcome::Ok, mops);
    clean.poll(2, &[("x", 0, 10), ("x", 1, 20)]);
    assert_eq!(counts(&check_queue(&clean.h, txn_workload())), vec![]);
}

// Reading a value whose send failed is an aborted read (G1a), naming writer and reader.
#[test]
fn g1a_aborted_read() {
    let mut t = H::new();
    let w = t.send_outcome(1, "x", 10, None, Outcome::Fail);
    let r = t.poll(2, &[("x", 0, 10)]);
    let v = check_queue(&t.h, Workload::default());
    assert_eq!(counts(&v), vec![("G1a", 1)]);
    assert_eq!(ops_of(&v, AnomalyClass::G1a), vec![w, r]);

    let mut clean = H::new();
    clean.send_outcome(1, "x", 10, None, Outcome::Ok);
    clean.poll(2, &[("x", 0, 10)]);
    assert_eq!(counts(&check_queue(&clean.h, Workload::default())), vec![]);
}

// A transaction polling its own not-yet-committed send is a precommitted read.
#[test]
fn precommitted_read() {
    let mut t = H::new();
    let mops = vec![t.send_mop("x", 10, 0), t.poll_mop(&[("x", 0, 10)])];
    let op = t.txn(1, Outcome::Ok, mops);
    let v = check_queue(&t.h, txn_workload());
    assert_eq!(counts(&v), vec![("precommitted-read", 1)]);
    assert_eq!(ops_of(&v, AnomalyClass::PrecommittedRead), vec![op]);

    let mut clean = H::new();
    let mops = vec![clean.send_mop("x", 10, 0)];
    clean.txn(1, Outcome::Ok, mops);
    clean.poll(2, &[("x", 0, 10)]);
    assert_eq!(counts(&check_queue(&clean.h, txn_workload())), vec![]);
}

/// Two concurrent transactions writing x and y in opposite log orders.
fn g0_history(opposite: bool) -> H {
    let mut t = H::new();
    let (y_a, y_d) = if opposite { (1, 0) } else { (0, 1) };
    let m1 = vec![t.send_mop("x", 1, 0), t.send_mop("y", 2, y_a)];
    t.txn_at(1, 10, 50, m1);
    let m2 = vec![t.send_mop("x", 3, 1), t.send_mop("y", 4, y_d)];
    t.txn_at(2, 10, 50, m2);
    let ys = if opposite {
        [("y", 0, 4), ("y", 1, 2)]
    } else {
        [("y", 0, 2), ("y", 1, 4)]
    };
    t.poll(3, &[("x", 0, 1), ("x", 1, 3), ys[0], ys[1]]);
    t
}

// A write-write cycle is G0: forbidden without transactions, allowed with them (Kafka's log
// order need not follow commit order).
#[test]
fn g0_cycle() {
    let t = g0_history(true);
    let strict = check_queue(&t.h, Workload::default());
    assert_eq!(counts(&strict), vec![("G0", 1)]);
    assert_eq!(strict.validity, Validity::Invalid);
    let f = strict.of_class(AnomalyClass::G0).next().unwrap();
    assert_eq!(f.anomaly.ops.len(), 2);
    assert_eq!(check_queue(&t.h, txn_workload()).validity, Validity::Valid);
    assert_eq!(
        counts(&check_queue(&g0_history(false).h, Workload::default())),
        vec![]
    );
}

// A cycle of write-read edges alone is G1c, forbidden even with transactions.
#[test]
fn g1c_cycle() {
    let mut t = H::new();
    let m1 = vec![t.send_mop("x", 1, 0), t.poll_mop(&[("y", 0, 2)])];
    t.txn_at(1, 10, 50, m1);
    let m2 = vec![t.send_mop("y", 2, 0), t.poll_mop(&[("x", 0, 1)])];
    t.txn_at(2, 10, 50, m2);
    let v = check_queue(&t.h, txn_workload());
    assert_eq!(counts(&v), vec![("G1c", 1)]);
    assert_eq!(v.validity, Validity::Invalid);
    assert_eq!(v.findings[0].anomaly.edges.len(), 2);

    let mut clean = H::new();
    let m1 = vec![clean.send_mop("x", 1, 0)];
    clean.txn_at(1, 10, 50, m1);
    let m2 = vec![clean.send_mop("y", 2, 0), clean.poll_mop(&[("x", 0, 1)])];
    clean.txn_at(2, 10, 50, m2);
    clean.poll(3, &[("y", 0, 2)]);
    assert_eq!(counts(&check_queue(&clean.h, txn_workload())), vec![]);
}

/// T1 reads y=2, which T2 writes only after T1 completed: by process `p2`.
fn future_read(p2: u64) -> H {
    let mut t = H::new();
    let m1 = vec![t.poll_mop(&[("y", 0, 2)])];
    t.txn_at(1, 10, 20, m1);
    let m2 = vec![t.send_mop("y", 2, 0)];
    t.txn_at(p2, 30, 40, m2);
    t
}

// Reading a value written by a transaction that started after the reader completed is a
// G1c-realtime cycle (different processes) or G1c-process (same process).
#[test]
fn g1c_realtime_and_process() {
    let v = check_queue(&future_read(2).h, txn_workload());
    assert_eq!(counts(&v), vec![("G1c-realtime", 1)]);
    assert_eq!(v.validity, Validity::Invalid);
    let v = check_queue(&future_read(1).h, txn_workload());
    assert_eq!(counts(&v), vec![("G1c-process", 1)]);

    let mut clean = H::new();
    let m2 = vec![clean.send_mop("y", 2, 0)];
    clean.txn_at(2, 10, 20, m2);
    let m1 = vec![clean.poll_mop(&[("y", 0, 2)])];
    clean.txn_at(1, 30, 40, m1);
    assert_eq!(counts(&check_queue(&clean.h, txn_workload())), vec![]);
}

/// T1 appends x@1 and completes; then T2 (process `p2`) appends x@0.
fn late_ww(p2: u64) -> H {
    let mut t = H::new();
    let m1 = vec![t.send_mop("x", 1, 1)];
    t.txn_at(1, 10, 20, m1);
    let m2 = vec![t.send_mop("x", 2, 0)];
    t.txn_at(p2, 30, 40, m2);
    t.poll(3, &[("x", 0, 2), ("x", 1, 1)]);
    t
}

// A send landing before one that completed earlier is G0-realtime (G0-process when by the same
// process, which is also a nonmonotonic send); both are allowed with transactions only.
#[test]
fn g0_realtime_and_process() {
    let v = check_queue(&late_ww(2).h, Workload::default());
    assert_eq!(counts(&v), vec![("G0-realtime", 1)]);
    assert_eq!(v.validity, Validity::Invalid);
    let v = check_queue(&late_ww(1).h, Workload::default());
    assert_eq!(
        counts(&v),
        vec![("nonmonotonic-send", 1), ("G0-process", 1)]
    );
    let v = check_queue(&late_ww(2).h, txn_workload());
    assert_eq!(v.validity, Validity::Valid);

    let mut clean = H::new();
    let m1 = vec![clean.send_mop("x", 1, 0)];
    clean.txn_at(1, 10, 20, m1);
    let m2 = vec![clean.send_mop("x", 2, 1)];
    clean.txn_at(2, 30, 40, m2);
    clean.poll(3, &[("x", 0, 1), ("x", 1, 2)]);
    assert_eq!(counts(&check_queue(&clean.h, Workload::default())), vec![]);
}

// With no time left, a cycle is reported unclassified: undecided (unknown verdict) with
// transactions, forbidden without; a history without cycles is unaffected.
#[test]
fn cycle_unclassified_on_timeout() {
    let t = g0_history(true);
    let options = |workload| CheckOptions {
        workload,
        linearizability: false,
        time_limit: Some(Duration::ZERO),
        ..CheckOptions::default()
    };
    let v = check(&t.h, &options(txn_workload()));
    assert_eq!(counts(&v), vec![("cycle-unclassified", 1)]);
    assert_eq!(v.validity, Validity::Unknown);
    assert_eq!(
        check(&t.h, &options(Workload::default())).validity,
        Validity::Invalid
    );
    assert_eq!(
        check(&g0_history(false).h, &options(txn_workload())).validity,
        Validity::Valid
    );
}

// A register read returning a value never written at that time is nonlinearizable; reading
// the written value is clean.
#[test]
fn nonlinearizable_register() {
    let build = |read: Option<i64>| {
        let mut t = H::new();
        let key = t.h.key("r").unwrap();
        t.push(1, Outcome::Ok, OpKind::Write { key, value: 1 });
        t.push(2, Outcome::Ok, OpKind::RegisterRead { key, value: read });
        t
    };
    let v = check(&build(None).h, &CheckOptions::default());
    assert_eq!(counts(&v), vec![("nonlinearizable", 1)]);
    assert_eq!(v.findings[0].anomaly.ops, vec![OpId(1)]);
    assert!(check(&build(Some(1)).h, &CheckOptions::default()).is_valid());
}

// A full log read that misses an append completed before it began is nonlinearizable, found by
// the offset fast path with both operations in the witness.
#[test]
fn nonlinearizable_log_fast_path() {
    let build = |values: Vec<i64>| {
        let mut t = H::new();
        let key = t.h.key("x").unwrap();
        t.push(
            1,
            Outcome::Ok,
            OpKind::Send {
                key,
                value: 5,
                offset: Some(0),
            },
        );
        t.push(
            2,
            Outcome::Ok,
            OpKind::Read {
                key,
                from: 0,
                values: Some(values),
            },
        );
        t
    };
    let v = check(&build(vec![]).h, &CheckOptions::default());
    assert_eq!(counts(&v), vec![("unseen", 1), ("nonlinearizable", 1)]);
    assert_eq!(v.findings[0].anomaly.ops, vec![OpId(1), OpId(0)]);
    assert!(check(&build(vec![5]).h, &CheckOptions::default()).is_valid());
}

// Realtime lag is how long the first value a poll could have seen had been acknowledged when
// the poll began: here value 20 was acknowledged at 25 and the poll began at 30.
#[test]
fn realtime_lag() {
    let mut t = H::new();
    t.send(1, "x", 10, Some(0));
    t.send(1, "x", 20, Some(1));
    t.poll(2, &[("x", 0, 10)]);
    let v = check_queue(&t.h, Workload::default());
    assert_eq!(v.queue.max_lag_ns, 30 - 25);
    assert_eq!(v.queue.lag_series, vec![(30, 5)]);
}

// An indeterminate send whose value is never seen is neither lost nor unseen (it may not have
// happened), even in a drained run, and does not upset linearizability.
#[test]
fn indeterminate_sends_are_not_anomalies() {
    let mut t = H::new();
    t.send(1, "x", 10, Some(0));
    t.send_outcome(1, "x", 99, None, Outcome::Info);
    t.send(2, "x", 20, Some(1));
    t.poll(3, &[("x", 0, 10), ("x", 1, 20)]);
    let v = check(
        &t.h,
        &CheckOptions {
            workload: Workload {
                drained: true,
                ..Workload::default()
            },
            ..CheckOptions::default()
        },
    );
    assert_eq!(counts(&v), vec![]);
    assert!(v.is_valid());
}
