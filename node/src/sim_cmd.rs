//! `seedlog sim`: run one seed with its parameters and trace, or sweep many.

use clap::Args;
use seedlog_core::canary::{Canaries, Canary};
use seedlog_sim::{repro_command, run_log_seed_caught, LogSim, LogSimParams};
use std::process::ExitCode;
use std::time::Instant;

/// Options of `seedlog sim`.
#[derive(Args, Debug)]
pub struct SimArgs {
    /// The seed to run; without it one is drawn and printed.
    #[arg(long)]
    seed: Option<u64>,
    /// Run this many consecutive seeds from --seed (or 0) and summarize.
    #[arg(long)]
    seeds: Option<u64>,
    /// Print a readable line for every event.
    #[arg(long)]
    trace: bool,
    /// Switch on a planted bug by name (needs a build with the `canary` feature).
    #[arg(long = "canary")]
    canaries: Vec<String>,
    /// Write the run's client history (JSON lines) here, for `seedlog check`. Only seeds that
    /// keep to Kafka client semantics record one; the parameters say `kafka_history: true`.
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
        tracing_subscriber::fmt()
            .with_env_filter("seedlog_sim=debug")
            .with_target(false)
            .without_time()
            .init();
    }
    let canary_names: Vec<&str> = args.canaries.iter().map(String::as_str).collect();
    match args.seeds {
        Some(count) => sweep(args.seed.unwrap_or(0), count, canaries, &canary_names),
        None => one(
            args.seed.unwrap_or_else(draw_seed),
            canaries,
            &canary_names,
            args.history,
        ),
    }
}

/// A fresh seed from the OS clock: the only nondeterminism, and it is printed.
fn draw_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ u64::from(std::process::id()).rotate_left(32)
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
    if let Some(path) = history_path {
        match &report.history {
            Some(history) => match std::fs::write(&path, seedlog_jepsen::format::to_jsonl(history))
            {
                Ok(()) => println!("history: {} ({} operations)", path.display(), history.len()),
                Err(e) => eprintln!("error: cannot write {}: {e}", path.display()),
            },
            None => println!("history: this seed records none (kafka_history: false)"),
        }
    }
    println!("trace hash: {:016x}", report.trace_hash);
    if report.violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        println!("replay: {}", repro_command(seed, names));
        ExitCode::FAILURE
    }
}

fn sweep(first: u64, count: u64, canaries: Canaries, names: &[&str]) -> ExitCode {
    let started = Instant::now();
    let (mut events, mut simulated, mut failed) = (0u64, 0u64, 0u64);
    for seed in first..first.saturating_add(count) {
        match run_log_seed_caught(seed, canaries) {
            Ok(report) => {
                events += report.events;
                simulated += report.simulated.as_nanos();
            }
            Err(what) => {
                failed += 1;
                println!(
                    "seed {seed} FAILED: {what}\n  replay: {}",
                    repro_command(seed, names)
                );
            }
        }
        let done = seed - first + 1;
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
