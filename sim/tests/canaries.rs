//! Planted bugs the simulator must catch: the measure of the checker's power. Built only with
//! the `canary` feature (`cargo test -p seedlog-sim --features canary --test canaries`).

use seedlog_core::canary::{Canaries, Canary};
use seedlog_sim::{repro_command, run_log_seed_caught};

/// Each canary must be caught within this many consecutive seeds.
const CANARY_SEEDS: u64 = 300;

/// The first seed in `0..CANARY_SEEDS` on which the simulator reports a violation.
fn first_catching_seed(canary: Canary) -> Option<(u64, String)> {
    (0..CANARY_SEEDS).find_map(|seed| {
        run_log_seed_caught(seed, Canaries::NONE.with(canary))
            .err()
            .map(|what| (seed, what))
    })
}

fn assert_caught(canary: Canary) {
    match first_catching_seed(canary) {
        Some((seed, what)) => {
            println!(
                "{} caught at seed {seed}: {what}\n  replay: {}",
                canary.name(),
                repro_command(seed, &[canary.name()])
                    .replace("-p seedlog-node", "-p seedlog-node --features canary")
            );
        }
        None => panic!(
            "{} was not caught within {CANARY_SEEDS} seeds",
            canary.name()
        ),
    }
}

// Recovery that trusts batches without checking their CRC keeps bit-rotted batches and
// hands them to readers; the simulator must notice within the stated number of seeds.
#[test]
fn recovery_skips_crc_is_caught() {
    assert_caught(Canary::RecoverySkipsCrc);
}

// Recovery that keeps a torn batch at the end of the log serves a batch that never fully
// reached the disk; the simulator must notice within the stated number of seeds.
#[test]
fn recovery_keeps_torn_tail_is_caught() {
    assert_caught(Canary::RecoveryKeepsTornTail);
}
