//! The `seedlog` binary: the broker, and the tools around it.

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
    /// Run the deterministic simulator: one seed, or a sweep of seeds.
    Sim(sim_cmd::SimArgs),
    /// Check a history file (JSON lines or a JSON array of operations).
    Check {
        /// Arguments for the checker (FILE and options); see `seedlog check --help`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Sim(args) => sim_cmd::run(args),
        Command::Check { args } => ExitCode::from(seedlog_jepsen::cli::run_check(&args) as u8),
    }
}
