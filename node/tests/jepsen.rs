//! `seedlog jepsen run` on this machine: three real node processes in network namespaces under
//! kill -9, SIGSTOP and partitions, checked by the history checkers.
//!
//! The harness needs root and iproute2; where it cannot run, each test writes why it is
//! skipped straight to the terminal (past the test harness's output capture) and returns.
//!
//! In a build with the `canary` feature, the planted-bug test instead runs nodes that
//! acknowledge acks=all writes before the ISR has them and without fsync, and requires an
//! invalid verdict naming lost writes: the proof that the harness can fail.
//!
//! In a build with the `rdkafka` feature, one more run drives the workload with librdkafka
//! (`--client rdkafka`); the suite's default build leaves it out.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

/// Namespaces are global: one harness run at a time.
static HARNESS: Mutex<()> = Mutex::new(());

/// Why the harness cannot run here, if it cannot.
fn unavailable() -> Option<String> {
    seedlog_jepsen::harness::netns::preflight_without_netem().err()
}

/// The harness to oneself and a results folder; or `None`, once the test has said why it is
/// skipped.
fn harness_or_skip(test: &str) -> Option<(MutexGuard<'static, ()>, tempfile::TempDir)> {
    if let Some(why) = unavailable() {
        let _ = writeln!(std::io::stderr(), "\n{test}: SKIPPED: {why}\n");
        return None;
    }
    let one = HARNESS.lock().unwrap_or_else(|e| e.into_inner());
    Some((one, tempfile::tempdir().expect("tempdir")))
}

struct Run {
    status: std::process::ExitStatus,
    output: String,
    dir: PathBuf,
    verdict: serde_json::Value,
}

/// Runs the harness with `args` (and `env` set for it and its nodes), and reads the run folder
/// it made under `results`.
fn run_harness(results: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_seedlog"))
        .arg("jepsen")
        .arg("run")
        .arg("--results")
        .arg(results)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run seedlog jepsen");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let dirs: Vec<PathBuf> = std::fs::read_dir(results)
        .unwrap_or_else(|e| panic!("no results folder ({e}); output:\n{text}"))
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(dirs.len(), 1, "one run folder expected; output:\n{text}");
    let dir = dirs[0].clone();
    let verdict = std::fs::read_to_string(dir.join("verdict.json"))
        .unwrap_or_else(|e| panic!("no verdict.json ({e}); output:\n{text}"));
    Run {
        status: output.status,
        output: text,
        verdict: serde_json::from_str(&verdict).expect("verdict.json is JSON"),
        dir,
    }
}

/// Nothing of the run is left: no namespace with the harness's prefix, no node process.
fn assert_nothing_left(results: &Path) {
    let list = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        !list.contains(seedlog_jepsen::harness::netns::PREFIX),
        "namespaces left behind:\n{list}"
    );
    let marker = results.display().to_string();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            !(cmdline.contains(&marker) && cmdline.contains(" node ")),
            "a node process was left running: {cmdline}"
        );
    }
}

#[cfg(not(feature = "canary"))]
#[test]
fn a_short_run_under_kill_pause_and_partition_is_valid() {
    let Some((_one, results)) =
        harness_or_skip("a_short_run_under_kill_pause_and_partition_is_valid")
    else {
        return;
    };
    let run = run_harness(
        results.path(),
        &[
            "--time",
            "40",
            "--interval",
            "4",
            "--nemesis",
            "kill,pause,partition",
            "--seed",
            "42",
        ],
        &[],
    );
    assert!(run.status.success(), "the run failed:\n{}", run.output);
    assert_eq!(run.verdict["validity"], "valid", "{}", run.output);
    assert_eq!(run.verdict["unseen_final"], 0, "{}", run.output);
    let ops = run.verdict["op_count"].as_u64().unwrap_or(0);
    assert!(ops > 500, "only {ops} operations:\n{}", run.output);
    let nemesis = std::fs::read_to_string(run.dir.join("nemesis.jsonl")).expect("nemesis.jsonl");
    let faults = nemesis.lines().filter(|l| l.contains("\"fault\"")).count();
    assert!(faults >= 3, "only {faults} faults:\n{nemesis}");
    let report = std::fs::read_to_string(run.dir.join("report.html")).expect("report.html");
    assert!(report.contains("Verdict: valid") && report.contains("<h2>Faults</h2>"));
    for n in 1..=3 {
        let log = run.dir.join("nodes").join(format!("node-{n}.log"));
        assert!(
            log.metadata().is_ok_and(|m| m.len() > 0),
            "{log:?} is empty"
        );
    }
    assert_nothing_left(results.path());
}

/// A write is lost only when a kill lands while acknowledged records are still on the leader
/// alone, a window of milliseconds, so whether one run loses any is a matter of timing. Each
/// run kills often (seven kills in 30 s: the leader, minorities, a majority, all three), and
/// the planted bug must be caught within four runs of different seeds, the way the simulator's
/// canaries are caught within a stated number of seeds. Measured: 7 of 8 runs of seeds 8–10
/// lost acknowledged writes (1 to 9 where the count was kept); one run of seed 8 lost none.
#[cfg(feature = "canary")]
#[test]
fn a_planted_ack_before_replication_is_caught_as_lost_writes() {
    const SEEDS: [&str; 4] = ["8", "9", "10", "11"];
    let Some((_one, results)) =
        harness_or_skip("a_planted_ack_before_replication_is_caught_as_lost_writes")
    else {
        return;
    };
    let mut missed = Vec::new();
    for seed in SEEDS {
        let run = run_harness(
            results.path(),
            &[
                "--time",
                "30",
                "--interval",
                "2",
                "--nemesis",
                "kill",
                "--seed",
                seed,
                "--set",
                "canaries=ack-before-isr",
                "--set",
                "log.flush.policy=none",
            ],
            &[],
        );
        assert_nothing_left(results.path());
        if run.status.code() == Some(0) && run.verdict["validity"] == "valid" {
            missed.push(format!("seed {seed}: valid"));
            continue;
        }
        assert_eq!(run.status.code(), Some(1), "{}", run.output);
        assert_eq!(run.verdict["validity"], "invalid", "{}", run.output);
        let lost = run.verdict["counts"]["lost-write"].as_u64().unwrap_or(0);
        assert!(lost > 0, "no lost write reported:\n{}", run.output);
        let report = std::fs::read_to_string(run.dir.join("report.html")).expect("report.html");
        assert!(report.contains("Verdict: invalid") && report.contains("lost-write"));
        return;
    }
    panic!(
        "the planted bug was not caught in {} runs: {missed:?}",
        SEEDS.len()
    );
}

/// The same faults with librdkafka as the client: a valid verdict, a busy history, and not one
/// request the broker does not implement (librdkafka's consumers are given a group id, but must
/// never look for a coordinator). The nodes log every request they refuse at debug level.
#[cfg(all(feature = "rdkafka", not(feature = "canary")))]
#[test]
fn a_short_rdkafka_run_under_kill_pause_and_partition_is_valid() {
    let Some((_one, results)) =
        harness_or_skip("a_short_rdkafka_run_under_kill_pause_and_partition_is_valid")
    else {
        return;
    };
    let run = run_harness(
        results.path(),
        &[
            "--client",
            "rdkafka",
            "--time",
            "30",
            "--interval",
            "4",
            "--nemesis",
            "kill,pause,partition",
            "--seed",
            "7",
        ],
        &[("RUST_LOG", "info,seedlog::server::conn=debug")],
    );
    assert!(run.status.success(), "the run failed:\n{}", run.output);
    assert_eq!(run.verdict["validity"], "valid", "{}", run.output);
    assert_eq!(run.verdict["unseen_final"], 0, "{}", run.output);
    let ops = run.verdict["op_count"].as_u64().unwrap_or(0);
    assert!(ops > 500, "only {ops} operations:\n{}", run.output);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.dir.join("run.json")).expect("run.json"))
            .expect("run.json is JSON");
    assert_eq!(summary["client"], "rdkafka");
    assert!(
        summary["workload"]["sends_ok"].as_u64().unwrap_or(0) > 100,
        "{summary}"
    );
    assert!(
        summary["workload"]["records_polled"].as_u64().unwrap_or(0) > 100,
        "{summary}"
    );
    for n in 1..=3 {
        let log = std::fs::read_to_string(run.dir.join("nodes").join(format!("node-{n}.log")))
            .expect("node log");
        let refused: Vec<&str> = log.lines().filter(|l| l.contains("bad request")).collect();
        assert!(
            refused.is_empty(),
            "node {n} refused requests:\n{}",
            refused.join("\n")
        );
    }
    assert_nothing_left(results.path());
}
