//! `seedlog check FILE [options]`: the command-line face of the checker, and the one place in
//! this crate that does IO (reading the history, writing the HTML report).
//!
//! Exit codes: 0 valid, 1 invalid, 2 unknown — and 2 for unusable input or arguments, with the
//! reason on stderr, since no verdict could be reached.

use std::time::Duration;

use crate::format;
use crate::report;
use crate::semantics::Workload;
use crate::verdict::{check, summary, to_json, CheckOptions, CycleMode};

/// Usage text for `seedlog check`.
pub const USAGE: &str = "usage: seedlog check FILE [options]
  FILE                   history: JSON lines of events, or a JSON array of operations
  --json                 print the verdict as JSON instead of a summary
  --html OUT.html        also write a self-contained HTML report
  --timeout-secs N       give up (verdict unknown) after N seconds of searching
  --max-steps N          give up after N search steps per key (deterministic)
  --transactions         transactional workload (read_committed)
  --subscribe            consumers subscribe instead of assign
  --acks1                producers used acks=1
  --no-idempotence       producers were not idempotent
  --drained              the run ended with final polls: unseen values are an anomaly
  --partial-reads        log reads may return a prefix of the rest of the log
  --no-linearizability   skip the linearizability check
  --cycles auto|always|never   when to run the cycle analysis (default auto)
exit code: 0 valid, 1 invalid, 2 unknown or unusable input";

struct Args {
    file: String,
    json: bool,
    html: Option<String>,
    options: CheckOptions,
}

fn value<'a>(args: &'a [String], i: &mut usize, flag: &str) -> Result<&'a str, String> {
    *i += 1;
    args.get(*i)
        .map(String::as_str)
        .ok_or_else(|| format!("{flag} needs a value"))
}

fn number(text: &str, flag: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|_| format!("{flag}: {text:?} is not a non-negative integer"))
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut file = None;
    let mut json = false;
    let mut html = None;
    let mut options = CheckOptions::default();
    let mut workload = Workload::default();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        match arg {
            "--json" => json = true,
            "--html" => html = Some(value(args, &mut i, arg)?.to_string()),
            "--timeout-secs" => {
                options.time_limit =
                    Some(Duration::from_secs(number(value(args, &mut i, arg)?, arg)?))
            }
            "--max-steps" => {
                options.max_search_steps = Some(number(value(args, &mut i, arg)?, arg)?)
            }
            "--transactions" => workload.transactions = true,
            "--subscribe" => workload.subscribe = true,
            "--acks1" => workload.acks_all = false,
            "--no-idempotence" => workload.idempotent = false,
            "--drained" => workload.drained = true,
            "--partial-reads" => options.partial_reads = true,
            "--no-linearizability" => options.linearizability = false,
            "--cycles" => {
                options.cycles = match value(args, &mut i, arg)? {
                    "auto" => CycleMode::Auto,
                    "always" => CycleMode::Always,
                    "never" => CycleMode::Never,
                    other => return Err(format!("--cycles: unknown mode {other:?}")),
                }
            }
            "-h" | "--help" => return Err(String::new()),
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            path if file.is_none() => file = Some(path.to_string()),
            extra => return Err(format!("unexpected argument {extra:?}")),
        }
        i += 1;
    }
    options.workload = workload;
    let file = file.ok_or("missing FILE")?;
    Ok(Args {
        file,
        json,
        html,
        options,
    })
}

/// Runs `seedlog check` with the arguments after `check`; returns the process exit code.
#[must_use]
pub fn run_check(args: &[String]) -> i32 {
    let args = match parse_args(args) {
        Ok(a) => a,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("seedlog check: {message}");
            }
            eprintln!("{USAGE}");
            return 2;
        }
    };
    let text = match std::fs::read_to_string(&args.file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("seedlog check: cannot read {}: {e}", args.file);
            return 2;
        }
    };
    let history = match format::parse(&text) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("seedlog check: {}: {e}", args.file);
            return 2;
        }
    };
    let verdict = check(&history, &args.options);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&to_json(&history, &verdict))
                .expect("JSON values serialize")
        );
    } else {
        print!("{}", summary(&history, &verdict));
    }
    if let Some(path) = &args.html {
        if let Err(e) = std::fs::write(path, report::html(&history, &verdict)) {
            eprintln!("seedlog check: cannot write {path}: {e}");
            return 2;
        }
    }
    verdict.validity.exit_code()
}
