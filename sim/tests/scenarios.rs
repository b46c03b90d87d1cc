//! The named scenarios of `scenarios/` and the cluster regression corpus, replayed in CI.

use seedlog_core::canary::Canaries;
use seedlog_sim::scenario::Scenario;
use seedlog_sim::{cluster_repro_command, run_cluster_seed_caught};

const CLUSTER_CORPUS: &str = include_str!("../regressions/cluster.txt");

fn scenarios() -> Vec<Scenario> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "scenarios/ holds scenario files");
    paths
        .iter()
        .map(|path| {
            let name = path.file_stem().expect("a file name").to_string_lossy();
            let text = std::fs::read_to_string(path).expect("readable scenario");
            Scenario::parse(&name, &text).unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

fn run_all(filter: impl Fn(&Scenario) -> bool) {
    let failures: Vec<String> = scenarios()
        .iter()
        .filter(|s| filter(s))
        .filter_map(|s| {
            s.run().err().map(|e| {
                format!("{e}\n  replay: cargo run --profile sim -p seedlog-node -- sim --scenario scenarios/{}.toml", s.name)
            })
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// Every scenario file parses (a typo in a scenario must not silently test nothing).
#[test]
fn scenario_files_parse() {
    assert!(scenarios().len() >= 6);
}

// Each classic scenario (leader isolated during acks=all writes, ISR shrunk to the leader
// before it dies, a follower's torn tail, a controller without quorum, a stale leader in a
// minority, a wiped node) ends as its file says.
#[test]
fn scenarios_end_as_expected() {
    run_all(|_| true);
}

// The single-node scenarios end as their files say.
#[test]
fn single_node_scenarios_end_as_expected() {
    run_all(|s| s.params.nodes == 1);
}

/// Corpus lines: `<seed>` or `<seed> nodes=<n>`; `#` starts a comment.
fn corpus() -> Vec<(u64, Option<u32>)> {
    CLUSTER_CORPUS
        .lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|line| !line.is_empty())
        .map(|line| {
            let mut words = line.split_whitespace();
            let seed = words.next().and_then(|w| w.parse().ok());
            let nodes = words
                .next()
                .map(|w| w.strip_prefix("nodes=").and_then(|n| n.parse().ok()));
            match (seed, nodes) {
                (Some(seed), None) => (seed, None),
                (Some(seed), Some(Some(n))) => (seed, Some(n)),
                _ => panic!("bad corpus line {line:?}"),
            }
        })
        .collect()
}

// Each corpus seed once broke a promise; a failure here is a regression, and the message says
// how to replay it.
#[test]
fn cluster_corpus_seeds_pass() {
    let failures: Vec<String> = corpus()
        .into_iter()
        .filter_map(|(seed, nodes)| {
            run_cluster_seed_caught(seed, Canaries::NONE, nodes)
                .err()
                .map(|what| {
                    format!(
                        "seed {seed}: {what}\n  replay: {}",
                        cluster_repro_command(seed, &[], nodes)
                    )
                })
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
