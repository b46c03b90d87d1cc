//! Planted controller-quorum bugs the simulator must catch: the measure of the Raft checker's
//! power. Built only with the `canary` feature
//! (`cargo test -p seedlog-sim --features canary --test raft_canaries`); the `cfg` below keeps
//! a plain `cargo test` from running canary tests whose bugs are compiled out.
#![cfg(feature = "canary")]

use seedlog_core::canary::{Canaries, Canary};
use seedlog_sim::run_raft_seed_caught;

/// Each canary must be caught within this many consecutive seeds, unless its test states
/// another bound.
const CANARY_SEEDS: u64 = 200;

fn assert_caught(canary: Canary) {
    assert_caught_within(canary, CANARY_SEEDS);
}

fn assert_caught_within(canary: Canary, seeds: u64) {
    let caught = (0..seeds).find_map(|seed| {
        run_raft_seed_caught(seed, Canaries::NONE.with(canary))
            .err()
            .map(|what| (seed, what))
    });
    match caught {
        Some((seed, what)) => println!("{} caught at seed {seed}: {what}", canary.name()),
        None => panic!("{} was not caught within {seeds} seeds", canary.name()),
    }
}

// A voter that grants a second vote in a term it already voted in can elect two leaders in
// one term; the simulator sees the double grant on the wire and must report it.
#[test]
fn raft_votes_twice_in_a_term_is_caught() {
    assert_caught(Canary::RaftVotesTwiceInATerm);
}

// A leader that commits on its own durable copy acknowledges entries a majority never held; a
// partition or crash then loses or overwrites them, which the history checks must report.
#[test]
fn raft_commits_without_majority_is_caught() {
    assert_caught(Canary::RaftCommitsWithoutMajority);
}

// A voter that takes a deposed leader's AppendEntries (KRaft calls the Raft term the leader
// epoch) lets it put entries of an older epoch over the current leader's, breaking the log's
// epoch order that every voter checks after each step. A deposed leader's request must reach
// a voter that already moved on, and carry entries that conflict: message timing again, so the
// first catch is at seed 2385.
#[test]
fn raft_accepts_stale_leader_epoch_is_caught() {
    assert_caught_within(Canary::RaftAcceptsStaleLeaderEpoch, 3_000);
}

// A leader that answers reads without a lease serves stale reads once deposed; the read check
// (no read below an index acknowledged before it began) must report it. A stale read needs a
// deposed leader to answer while a newer one commits, a matter of message timing: the first
// catch moved from below 200 to seed 1138 when leaders stopped answering duplicated refusals
// at once.
#[test]
fn raft_reads_without_lease_is_caught() {
    assert_caught_within(Canary::RaftReadsWithoutLease, 1_500);
}
