//! Checker benchmarks: time and peak memory on deterministic generated histories.
//!
//! `cargo bench -p seedlog-jepsen --bench check` runs every case, each in a fresh child process
//! so the peak resident set (VmHWM from /proc/self/status) belongs to that case alone. Pass a
//! case name to run just that case in-process.

use std::time::Instant;

use seedlog_jepsen::gen::{kafka_history, log_history, GenConfig};
use seedlog_jepsen::linear::models::{LogOp, LogSpec};
use seedlog_jepsen::linear::partition::{check_keys, LinOptions, Method};
use seedlog_jepsen::linear::{check_operations, LinOp, LinResult, SearchLimits};
use seedlog_jepsen::{check, CheckOptions, History, KeyId, OpKind, Outcome, Validity};

const CASES: [&str; 5] = [
    "100k-10p",
    "100k-1p-20c",
    "100k-1p-20c-search",
    "1m-100p",
    "queue-10m",
];

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn log_cfg(ops: usize, clients: usize, keys: usize) -> GenConfig {
    GenConfig {
        ops,
        clients,
        keys,
        read_fraction: 0.5,
        info_fraction: 0.01,
        latency_max_ns: 1_000_000,
    }
}

/// The log sub-history of key 0 as search input, for the search-only case.
fn key0_ops(h: &History) -> Vec<LinOp<LogOp>> {
    h.ops()
        .iter()
        .filter_map(|op| {
            let inner = match &op.kind {
                OpKind::Send {
                    key: KeyId(0),
                    value,
                    offset,
                } => LogOp::Append {
                    value: *value,
                    offset: *offset,
                },
                OpKind::Read {
                    key: KeyId(0),
                    from,
                    values: Some(v),
                } => LogOp::read(*from, v.clone(), false),
                _ => return None,
            };
            let must = op.outcome == Outcome::Ok
                || matches!(
                    inner,
                    LogOp::Append {
                        offset: Some(_),
                        ..
                    }
                );
            Some(LinOp {
                id: op.id,
                invoke: op.invoke_ns,
                complete: op.complete_ns,
                must_happen: must,
                op: inner,
            })
        })
        .collect()
}

/// Times the two analyses of a full check separately, and counts keys by method.
fn breakdown(history: &History) {
    let t = Instant::now();
    let mut found = seedlog_jepsen::anomaly::Anomalies::new(20);
    let _ = seedlog_jepsen::queue::analyze(history, &mut found);
    let queue = t.elapsed();
    let t = Instant::now();
    let keys = check_keys(history, &LinOptions::default());
    let fast = keys.iter().filter(|k| k.method == Method::FastPath).count();
    println!(
        "  breakdown: queue analysis {:.3} s, linearizability {:.3} s ({fast}/{} keys by the fast path)",
        queue.as_secs_f64(),
        t.elapsed().as_secs_f64(),
        keys.len()
    );
}

fn run_case(name: &str) {
    let t0 = Instant::now();
    let (history, kind) = match name {
        "100k-10p" => (log_history(1, &log_cfg(100_000, 20, 10)), "full check"),
        "100k-1p-20c" => (log_history(2, &log_cfg(100_000, 20, 1)), "full check"),
        "100k-1p-20c-search" => {
            let cfg = GenConfig {
                info_fraction: 0.0,
                ..log_cfg(100_000, 20, 1)
            };
            (log_history(2, &cfg), "WGL search only")
        }
        "1m-100p" => (log_history(3, &log_cfg(1_000_000, 100, 100)), "full check"),
        "queue-10m" => {
            let cfg = GenConfig {
                ops: 10_000_000,
                clients: 20,
                keys: 10,
                read_fraction: 0.5,
                info_fraction: 0.0,
                latency_max_ns: 1_000_000,
            };
            (kafka_history(4, &cfg), "queue analysis only")
        }
        other => panic!("unknown case {other}; cases: {CASES:?}"),
    };
    let generated = t0.elapsed();
    let rss_history = peak_rss_mb();
    if kind == "full check" {
        breakdown(&history);
    }
    let t1 = Instant::now();
    let verdict = match name {
        "100k-1p-20c-search" => {
            let ops = key0_ops(&history);
            let result = check_operations(&mut LogSpec::new(), &ops, &SearchLimits::default());
            assert_eq!(result, LinResult::Ok);
            "valid".to_string()
        }
        "queue-10m" => {
            let options = CheckOptions {
                linearizability: false,
                ..CheckOptions::default()
            };
            let v = check(&history, &options);
            assert_eq!(v.validity, Validity::Valid);
            v.validity.name().to_string()
        }
        _ => {
            let v = check(&history, &CheckOptions::default());
            assert_eq!(v.validity, Validity::Valid);
            v.validity.name().to_string()
        }
    };
    let checked = t1.elapsed();
    println!(
        "{name:<20} {kind:<20} ops {:>9}  generate {:>7.2} s  check {:>7.3} s  peak RSS {:>7.0} MB (after generation {:>6.0} MB)  verdict {verdict}",
        history.len(),
        generated.as_secs_f64(),
        checked.as_secs_f64(),
        peak_rss_mb(),
        rss_history
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if let Some(case) = args.first() {
        run_case(case);
        return;
    }
    let exe = std::env::current_exe().expect("the bench binary knows its own path");
    for case in CASES {
        let status = std::process::Command::new(&exe)
            .arg(case)
            .status()
            .expect("the bench can re-run itself");
        assert!(status.success(), "case {case} failed");
    }
}
