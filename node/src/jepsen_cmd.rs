//! `seedlog jepsen run` and `seedlog jepsen clean`: the real-process harness
//! (`seedlog_jepsen::harness`) on the command line.

use anyhow::{anyhow, Context, Result};
use clap::{Args, Subcommand};
use seedlog_jepsen::harness::nemesis::NemesisKind;
use seedlog_jepsen::harness::netns;
use seedlog_jepsen::harness::run::{self, RunOptions};
use seedlog_jepsen::harness::workload::ClientKind;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// `seedlog jepsen ...`
#[derive(Subcommand, Debug)]
pub enum JepsenCommand {
    /// Start real nodes in network namespaces, run the queue workload under the nemesis, check
    /// the history and write a results folder (needs root, `ip` and `tc`).
    Run(RunArgs),
    /// Remove what an interrupted run left behind: its namespaces, links and processes.
    Clean,
}

/// `seedlog jepsen run` options.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Nodes, every one a controller voter and a broker (1–5).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Seconds the workload runs under the nemesis (healing and final reads come after).
    #[arg(long, default_value_t = 60)]
    time: u64,
    /// Seconds between faults, and how long each one lasts.
    #[arg(long, default_value_t = 5.0)]
    interval: f64,
    /// Faults to draw from: kill, pause, partition, netem, clock, disk, or all; `none` for a
    /// run without faults.
    #[arg(long, default_value = "kill,pause,partition")]
    nemesis: String,
    /// Seed of the fault schedule and of the workload's choices (drawn and printed if omitted).
    #[arg(long)]
    seed: Option<u64>,
    /// Folder the run folders are created in.
    #[arg(long, default_value = "jepsen-results")]
    results: PathBuf,
    /// A setting for every node, e.g. `--set log.flush.policy=none` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Producer processes.
    #[arg(long, default_value_t = 3)]
    producers: usize,
    /// Consumer processes.
    #[arg(long, default_value_t = 2)]
    consumers: usize,
    /// Partitions of the test topic.
    #[arg(long, default_value_t = 4)]
    partitions: u32,
    /// Keep the nodes' data directories even when the verdict is valid.
    #[arg(long)]
    keep_data: bool,
    /// The seedlog binary the nodes run (default: this one).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// The Kafka client of the producers and consumers: `seedlog` (the project's own) or
    /// `rdkafka` (librdkafka; needs a build with `--features rdkafka`). Topic setup and the
    /// final reads always use seedlog's.
    #[arg(long, default_value = "seedlog")]
    client: ClientKind,
}

pub fn run(command: JepsenCommand) -> ExitCode {
    let outcome = match command {
        JepsenCommand::Run(args) => run_harness(args),
        JepsenCommand::Clean => clean().map(|()| ExitCode::SUCCESS),
    };
    outcome.unwrap_or_else(|error| {
        eprintln!("seedlog jepsen: {error:#}");
        ExitCode::FAILURE
    })
}

fn clean() -> Result<()> {
    let removed = netns::clean_leftovers()?;
    if removed.is_empty() {
        println!("nothing to clean");
    }
    for name in removed {
        println!("removed {name}");
    }
    Ok(())
}

fn run_harness(args: RunArgs) -> Result<ExitCode> {
    args.client.ensure_available()?;
    let nemeses = if args.nemesis.trim() == "none" {
        Vec::new()
    } else {
        NemesisKind::parse_list(&args.nemesis).map_err(|e| anyhow!(e))?
    };
    if !(args.interval.is_finite() && args.interval > 0.0) {
        return Err(anyhow!("--interval must be a positive number of seconds"));
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let binary = match args.binary {
        Some(path) => path,
        None => std::env::current_exe().context("locating the seedlog binary")?,
    };
    let options = RunOptions {
        nodes: args.nodes,
        time: Duration::from_secs(args.time),
        interval: Duration::from_secs_f64(args.interval),
        nemeses,
        seed,
        binary,
        results: args.results,
        node_settings: args.set,
        producers: args.producers,
        consumers: args.consumers,
        partitions: args.partitions,
        keep_data: args.keep_data,
        client: args.client,
    };
    match args.client {
        ClientKind::Seedlog => println!("seedlog jepsen run --seed {seed}"),
        other => println!("seedlog jepsen run --seed {seed} --client {other}"),
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    let summary = runtime.block_on(async {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        // Dropping the run on a signal kills its nodes and removes its namespaces.
        tokio::select! {
            summary = run::run(options) => summary,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted; nodes and namespaces removed")),
            _ = terminate.recv() => Err(anyhow!("terminated; nodes and namespaces removed")),
        }
    })?;
    println!("{}", summary.summary.trim_end());
    println!(
        "verdict: {} ({} operations, {} faults); folder {}",
        summary.validity.name(),
        summary.ops,
        summary.faults,
        summary.dir.display()
    );
    for exit in &summary.unexpected_exits {
        println!("unexpected node exit: {exit}");
    }
    println!("report: {}", summary.dir.join("report.html").display());
    Ok(ExitCode::from(summary.exit_code() as u8))
}
