#!/usr/bin/env bash
# The whole test suite: what CI runs and what a developer runs before pushing.
# Planted-bug (canary) tests need the `canary` feature, which no normal build has, so they run
# as a second cargo invocation of the simulator crate alone.
set -euo pipefail
cd "$(dirname "$0")"
cargo test --workspace --locked
cargo test --locked -p seedlog-sim --features canary --test canaries --test raft_canaries \
    --test cluster_canaries
# The real-process harness must fail a build that acknowledges before replication and fsync.
cargo test --locked -p seedlog-node --features canary --test jepsen
