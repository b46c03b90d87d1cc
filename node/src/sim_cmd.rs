//! `seedlog sim`: run one seed with its parameters and trace, or sweep many; the single-node
//! log simulation by default, the multi-node cluster simulation with `--cluster`, or a named
//! scenario file with `--scenario`.

use clap::Args;
use seedlog_core::canary::{Canaries, Canary};
use seedlog_sim::scenario::Scenario;
use seedlog_sim::{
    cluster_repro_command, repro_command, run_cluster_seed_caught, run_log_seed_caught, ClusterSim,
    ClusterSimParams, ClusterSimReport, LogSim, LogSimParams,
};
use std::process::ExitCode;
use std::time::Instant;

/// Options of `seedlog sim`.
#[derive(Args, Debug)]
pub struct SimArgs {
    /// The seed to run; without it one is drawn and printed.
    #[arg(long)]
    seed: Option<u64>,
    /// Sweep seeds: a count `N` (from --seed, or 0) or a range `A..B` (B excluded).
    #[arg(long, value_name = "N|A..B")]
    seeds: Option<String>,
    /// Run the multi-node cluster simulation instead of the single-node log simulation.
    #[arg(long)]
    cluster: bool,
    /// With --cluster: fix the number of nodes (1–7) instead of drawing it from the seed.
    #[arg(long, requires = "cluster")]
    nodes: Option<u32>,
    /// Run a scenario file (see scenarios/ in the repository) instead of a seed.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["seed", "seeds", "cluster"])]
    scenario: Option<std::path::PathBuf>,
    /// Print a readable line for every event.
    #[arg(long)]
    trace: bool,
    /// Switch on a planted bug by name (needs a build with the `canary` feature).
    #[arg(long = "canary")]
    canaries: Vec<String>,
    /// Write the run's client history (JSON lines) here, for `seedlog check`. Log seeds record
    /// one only when their parameters say `kafka_history: true`; cluster seeds always do.
    #[arg(long)]
    history: Option<std::path::PathBuf>,
}

fn parse_canaries(names: &[String]) -> Result<Canaries, String> {
    let mut set = Canaries::NONE;
    for name in names {
        let canary = Canary::from_name(name).ok_or_else(|| {
            let known: Vec<&str> = Canary::ALL.iter().map(|c| c.name()).collect();
            format!("unknown canary {name:?}; known: {}", known.join(", "))
        })?;
        if !cfg!(feature = "canary") {
            return Err("canaries need a build with `--features canary`".to_string());
        }
        set = set.with(canary);
    }
    Ok(set)
}

/// Seeds to sweep: `N` counts from `first`, `A..B` is a range.
fn parse_span(span: &str, first: u64) -> Result<std::ops::Range<u64>, String> {
    if let Some((a, b)) = span.split_once("..") {
        let a: u64 = a
            .trim()
            .parse()
            .map_err(|_| format!("bad range start in {span:?}"))?;
        let b: u64 = b
            .trim()
            .parse()
            .map_err(|_| format!("bad range end in {span:?}"))?;
        if b < a {
            return Err(format!("empty range {span:?}"));
        }
        return Ok(a..b);
    }
    let count: u64 = span
        .trim()
        .parse()
        .map_err(|_| format!("--seeds takes N or A..B, not {span:?}"))?;
    Ok(first..first.saturating_add(count))
}

/// Runs the command.
pub fn run(args: SimArgs) -> ExitCode {
    let canaries = match parse_canaries(&args.canaries) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if args.trace {
        // RUST_LOG, when set, picks the detail (e.g. `seedlog_sim=trace` adds every disk op).
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("seedlog_sim=debug"));
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_target(false)
            .without_time()
            .init();
    }
    let canary_names: Vec<&str> = args.canaries.iter().map(String::as_str).collect();
    if let Some(path) = &args.scenario {
        return scenario(path, args.history);
    }
    let kind = if args.cluster {
        Kind::Cluster(args.nodes)
    } else {
        Kind::Log
    };
    match &args.seeds {
        Some(span) => match parse_span(span, args.seed.unwrap_or(0)) {
            Ok(range) => sweep(kind, range, canaries, &canary_names),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        None => {
            let seed = args.seed.unwrap_or_else(draw_seed);
            match kind {
                Kind::Log => one(seed, canaries, &canary_names, args.history),
                Kind::Cluster(nodes) => {
                    one_cluster(seed, nodes, canaries, &canary_names, args.history)
                }
            }
        }
    }
}

/// Which simulation.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Log,
    Cluster(Option<u32>),
}

/// A fresh seed from the OS clock: the only nondeterminism, and it is printed.
fn draw_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ u64::from(std::process::id()).rotate_left(32)
}

fn write_history(history: Option<&seedlog_jepsen::History>, path: Option<std::path::PathBuf>) {
    let Some(path) = path else { return };
    match history {
        Some(history) => match std::fs::write(&path, seedlog_jepsen::format::to_jsonl(history)) {
            Ok(()) => println!("history: {} ({} operations)", path.display(), history.len()),
            Err(e) => eprintln!("error: cannot write {}: {e}", path.display()),
        },
        None => println!("history: this seed records none (kafka_history: false)"),
    }
}

fn one(
    seed: u64,
    canaries: Canaries,
    names: &[&str],
    history_path: Option<std::path::PathBuf>,
) -> ExitCode {
    let params = LogSimParams::draw(seed, canaries);
    println!("{params}");
    let started = Instant::now();
    let report = LogSim::new(params).run();
    let wall = started.elapsed();
    println!(
        "events: {}  simulated: {:?}  wall: {:.3}s  restarts: {}  appends acked: {}  reads: {}",
        report.events,
        report.simulated,
        wall.as_secs_f64(),
        report.restarts,
        report.appends_acked,
        report.reads
    );
    for v in &report.violations {
        println!("VIOLATION at {:?}: {}", v.at, v.what);
    }
    write_history(report.history.as_ref(), history_path);
    println!("trace hash: {:016x}", report.trace_hash);
    if report.violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        println!("replay: {}", repro_command(seed, names));
        ExitCode::FAILURE
    }
}

fn print_cluster_report(report: &ClusterSimReport, wall: f64) {
    println!(
        "events: {}  simulated: {:?}  wall: {wall:.3}s  crashes: {}  shutdowns: {}  wipes: {}  peer messages: {}  requests: {}  acked: {}  polled: {}  converged after: {:?}",
        report.events,
        report.simulated,
        report.crashes,
        report.shutdowns,
        report.wipes,
        report.peer_messages,
        report.requests,
        report.acked,
        report.polled,
        report.converged_after
    );
    for v in &report.violations {
        println!("VIOLATION at {:?}: {}", v.at, v.what);
    }
}

fn one_cluster(
    seed: u64,
    nodes: Option<u32>,
    canaries: Canaries,
    names: &[&str],
    history_path: Option<std::path::PathBuf>,
) -> ExitCode {
    let params = ClusterSimParams::draw_sized(seed, canaries, nodes);
    println!("{params}");
    let started = Instant::now();
    let report = ClusterSim::new(params).run();
    print_cluster_report(&report, started.elapsed().as_secs_f64());
    write_history(report.history.as_ref(), history_path);
    println!("trace hash: {:016x}", report.trace_hash);
    if report.violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        println!("replay: {}", cluster_repro_command(seed, names, nodes));
        ExitCode::FAILURE
    }
}

fn scenario(path: &std::path::Path, history_path: Option<std::path::PathBuf>) -> ExitCode {
    let name = path
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let parsed = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
        .and_then(|text| Scenario::parse(&name, &text));
    let scenario = match parsed {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    println!(
        "scenario {name}: {}\n{}",
        scenario.description, scenario.params
    );
    for step in &scenario.timeline {
        println!("at {} ms: {:?}", step.at_ms, step.action);
    }
    println!("expect: {:?}", scenario.expect);
    let started = Instant::now();
    let sim = ClusterSim::with_timeline(scenario.params.clone(), scenario.timeline.clone());
    let report = sim.run();
    print_cluster_report(&report, started.elapsed().as_secs_f64());
    write_history(report.history.as_ref(), history_path);
    println!("trace hash: {:016x}", report.trace_hash);
    let first = report.violations.first().map(|v| v.what.as_str());
    let as_expected = match (&scenario.expect, first) {
        (seedlog_sim::scenario::Expect::Pass, None) => true,
        (seedlog_sim::scenario::Expect::Violation(text), Some(what)) => {
            what.contains(text.as_str())
        }
        _ => false,
    };
    println!(
        "outcome: {}",
        if as_expected {
            "as expected"
        } else {
            "NOT as expected"
        }
    );
    if as_expected {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn sweep(kind: Kind, seeds: std::ops::Range<u64>, canaries: Canaries, names: &[&str]) -> ExitCode {
    let started = Instant::now();
    let count = seeds.end - seeds.start;
    let (mut events, mut simulated, mut failed) = (0u64, 0u64, 0u64);
    for seed in seeds.clone() {
        let outcome = match kind {
            Kind::Log => run_log_seed_caught(seed, canaries).map(|r| (r.events, r.simulated)),
            Kind::Cluster(nodes) => {
                run_cluster_seed_caught(seed, canaries, nodes).map(|r| (r.events, r.simulated))
            }
        };
        match outcome {
            Ok((e, s)) => {
                events += e;
                simulated += s.as_nanos();
            }
            Err(what) => {
                failed += 1;
                let replay = match kind {
                    Kind::Log => repro_command(seed, names),
                    Kind::Cluster(nodes) => cluster_repro_command(seed, names, nodes),
                };
                println!("seed {seed} FAILED: {what}\n  replay: {replay}");
            }
        }
        let done = seed - seeds.start + 1;
        if done.is_multiple_of(1000) {
            eprintln!(
                "{done}/{count} seeds, {failed} failed, {:.1}s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    let wall = started.elapsed().as_secs_f64();
    println!(
        "{count} seeds, {failed} failed; {events} events in {wall:.2}s wall = {:.0} events/s; simulated/wall = {:.0}x",
        events as f64 / wall,
        simulated as f64 / 1e9 / wall
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
