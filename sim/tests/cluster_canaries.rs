//! Planted replication and controller bugs the cluster simulation must catch: the measure of
//! its checkers' power. Built only with the `canary` feature
//! (`cargo test -p seedlog-sim --features canary --test cluster_canaries`).
#![cfg(feature = "canary")]

use seedlog_core::canary::{Canaries, Canary};
use seedlog_sim::{cluster_repro_command, run_cluster_seed_caught};

/// Each canary must be caught within this many consecutive seeds.
const CANARY_SEEDS: u64 = 300;

fn assert_caught(name: &str) {
    let canary = Canary::from_name(name)
        .unwrap_or_else(|| panic!("seedlog-core defines no canary named {name:?}"));
    let caught = (0..CANARY_SEEDS).find_map(|seed| {
        run_cluster_seed_caught(seed, Canaries::NONE.with(canary), None)
            .err()
            .map(|what| (seed, what))
    });
    match caught {
        Some((seed, what)) => println!(
            "{name} caught at seed {seed}: {what}\n  replay: {}",
            cluster_repro_command(seed, &[name], None)
        ),
        None => panic!("{name} was not caught within {CANARY_SEEDS} seeds"),
    }
}

// A leader that acknowledges acks=all once its own copy is durable, before the ISR has the
// batch, loses acknowledged records when it fails; the final reads and the lost-write check
// must report it.
#[test]
fn ack_before_isr_is_caught() {
    assert_caught("ack-before-isr");
}

// A high watermark computed from every replica that reported, rather than from the ISR,
// exposes records that an ISR member lacks; a failover then changes committed data.
#[test]
fn hw_from_all_replicas_is_caught() {
    assert_caught("hw-from-all-replicas");
}

// A follower that keeps its divergent tail after a leader change holds different data below
// the HW than the leader; replica convergence and the committed-data checks must see it.
#[test]
fn skip_follower_truncation_is_caught() {
    assert_caught("skip-follower-truncation");
}

// A controller that elects a leader outside the ISR (an unclean election nobody allowed)
// loses acknowledged records or changes committed offsets.
#[test]
fn controller_elects_outside_isr_is_caught() {
    assert_caught("controller-elects-outside-isr");
}

// A leader that serves followers still in an older leader epoch lets a deposed replica's view
// leak into the new epoch; the checks on committed data and replica logs must notice.
//
// Not caught in 20,000 seeds: every fetch is also checked against the follower's last fetched
// epoch (divergence), a fetch that diverges never counts as progress, responses are matched to
// the follower's own epoch, and the ISR admits only the registered incarnation, so serving a
// stale-epoch fetch changes no outcome here; a variant where followers also take responses
// from older epochs was not caught in 3,000 seeds either (the divergence check on the next
// fetch undoes what it appended). The controller quorum's form of the same bug,
// `raft-accepts-stale-leader-epoch`, is caught (tests/raft_canaries.rs). Kept (and runnable
// with --ignored) to measure again when one of those defences changes.
#[test]
#[ignore = "the replication path has no observable effect of this planted bug; see above"]
fn accept_stale_leader_epoch_is_caught() {
    assert_caught("accept-stale-leader-epoch");
}

// A controller voter that grants a second vote in a term it already voted in; the cluster
// simulation sees the double grant on the wire, as the quorum simulation does.
#[test]
fn raft_votes_twice_in_a_term_is_caught() {
    assert_caught("raft-votes-twice-in-a-term");
}
