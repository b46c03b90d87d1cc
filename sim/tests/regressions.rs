//! The regression corpus: every seed that once found a bug must keep passing.

use seedlog_core::canary::Canaries;
use seedlog_sim::{repro_command, run_log_seed_caught};

const LOG_CORPUS: &str = include_str!("../regressions/log.txt");

fn seeds(corpus: &str) -> Vec<u64> {
    corpus
        .lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|line| !line.is_empty())
        .map(|line| {
            line.parse()
                .unwrap_or_else(|_| panic!("bad corpus line {line:?}"))
        })
        .collect()
}

// Each corpus seed replays a scenario that once broke a promise; a failure here is a
// regression of a fixed bug, and the message says how to replay it.
#[test]
fn log_corpus_seeds_pass() {
    let corpus = seeds(LOG_CORPUS);
    assert!(!corpus.is_empty(), "the corpus lists seeds");
    let failures: Vec<String> = corpus
        .iter()
        .filter_map(|seed| {
            run_log_seed_caught(*seed, Canaries::NONE)
                .err()
                .map(|what| {
                    format!(
                        "seed {seed}: {what} — replay: {}",
                        repro_command(*seed, &[])
                    )
                })
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
