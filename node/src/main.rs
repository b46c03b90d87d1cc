//! The `seedlog` binary: the broker, and the tools around it.

mod bench;
mod bench_log;
mod cli;
mod config;
mod jepsen_cmd;
mod server;
mod sim_cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Seedlog: a Kafka-compatible distributed log whose every bug replays from a seed.
#[derive(Parser, Debug)]
#[command(name = "seedlog", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a broker. With no arguments: one node on 127.0.0.1:9092, data under ./seedlog-data.
    #[command(after_help = config::help_text())]
    Node(NodeArgs),
    /// Run a local cluster in this process: three nodes (controller voters and brokers) on
    /// 127.0.0.1:9092-9094, peers on 19092-19094, data under ./seedlog-dev/node-<id>.
    Dev(DevArgs),
    /// Create, list, describe and delete topics on any Kafka-compatible broker.
    #[command(subcommand)]
    Topic(cli::TopicCommand),
    /// Produce stdin lines as records (optionally `key<SEP>value`).
    Produce(cli::ProduceArgs),
    /// Print records of a topic, from earliest, latest or an offset.
    Consume(cli::ConsumeArgs),
    /// Load generator: produce/consume throughput and latency, or the whole suite.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Run the deterministic simulator: one seed, or a sweep of seeds.
    Sim(sim_cmd::SimArgs),
    /// Jepsen-style tests of real node processes in network namespaces (needs root).
    #[command(subcommand)]
    Jepsen(jepsen_cmd::JepsenCommand),
    /// Check a history file (JSON lines or a JSON array of operations).
    Check {
        /// Arguments for the checker (FILE and options); see `seedlog check --help`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// `seedlog node` options.
#[derive(clap::Args, Debug)]
struct NodeArgs {
    /// TOML configuration file; every key has a default (listed below).
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// Override one configuration key, e.g. `--set log.dirs=/var/lib/seedlog` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

/// `seedlog dev` options.
#[derive(clap::Args, Debug)]
struct DevArgs {
    /// Number of nodes, all of them controller voters and brokers.
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// Directory holding each node's data directory (`node-<id>`).
    #[arg(long, default_value = "./seedlog-dev")]
    dir: std::path::PathBuf,
    /// Kafka port of node 1; node n listens on port + n - 1.
    #[arg(long, default_value_t = 9092)]
    port: u16,
    /// Peer port of node 1; node n uses peer-port + n - 1.
    #[arg(long, default_value_t = 19092)]
    peer_port: u16,
    /// Override a configuration key on every node, e.g. `--set log.flush.policy=none`
    /// (repeatable; see `seedlog node --help` for the keys).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

fn run_node(args: NodeArgs) -> ExitCode {
    init_tracing();
    let result = config::load(args.config.as_deref(), &args.set).and_then(server::run);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("seedlog node: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_dev(args: DevArgs) -> ExitCode {
    init_tracing();
    let result = config::dev(args.nodes, &args.dir, args.port, args.peer_port, &args.set)
        .and_then(server::run_cluster);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("seedlog dev: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("seedlog: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Node(args) => run_node(args),
        Command::Dev(args) => run_dev(args),
        Command::Topic(command) => report(cli::topic(command)),
        Command::Produce(args) => report(cli::produce(args)),
        Command::Consume(args) => report(cli::consume(args)),
        Command::Bench(command) => report(bench::run(command)),
        Command::Sim(args) => sim_cmd::run(args),
        Command::Jepsen(command) => jepsen_cmd::run(command),
        Command::Check { args } => ExitCode::from(seedlog_jepsen::cli::run_check(&args) as u8),
    }
}
