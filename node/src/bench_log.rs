//! `seedlog bench log` and `seedlog bench sim`: the partition log on real files, and the
//! simulator's speed.
//!
//! The log benchmark drives the sans-IO [`Log`] directly with the node's disk executor (the
//! same IO threads the broker uses), so it measures the log and the executor without sockets or
//! the Kafka codec. Appends keep a window of requests in flight; with fsync on, a batch counts
//! once it is durable (group commit shares each fsync among the batches that arrived while the
//! previous one ran). Figures are printed beside the raw sequential write + fdatasync bandwidth
//! of the same disk measured in the same run, since absolute numbers on a shared machine vary.

use crate::server::disk::DiskIo;
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Args;
use seedlog_core::canary::Canaries;
use seedlog_core::log::{Log, LogConfig, LogInput, LogOutput, SyncPolicy};
use seedlog_core::record_batch::{self, BatchSpec, NewRecord};
use seedlog_core::Instant as CoreInstant;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Options of `seedlog bench log`.
#[derive(Args, Debug, Clone)]
pub struct LogBench {
    /// Directory for the benchmark's files (removed afterwards).
    #[arg(long, default_value = "seedlog-bench-log")]
    dir: PathBuf,
    /// Bytes appended per run.
    #[arg(long, default_value_t = 256 << 20)]
    bytes: u64,
    /// Appends in flight at once.
    #[arg(long, default_value_t = 64)]
    window: usize,
}

/// Options of `seedlog bench sim`.
#[derive(Args, Debug, Clone)]
pub struct SimBench {
    /// Seeds to run.
    #[arg(long, default_value_t = 5_000)]
    seeds: u64,
    /// Measure the multi-node cluster simulation (its standard swarm) instead of the log's.
    #[arg(long)]
    cluster: bool,
}

/// One run's figures.
struct RunFigures {
    append_mb_s: f64,
    batches_s: f64,
    read_mb_s: f64,
}

/// Runs the log benchmark and prints a table.
pub fn run_log(args: &LogBench) -> Result<()> {
    std::fs::create_dir_all(&args.dir)?;
    let raw = crate::bench::raw_fsync_bandwidth(&args.dir, (args.bytes as usize).min(256 << 20))?;
    println!("raw sequential write + fdatasync (1 MiB chunks): {raw:.0} MB/s");
    println!(
        "{:<26} {:>10} {:>12} {:>12} {:>9} {:>11}",
        "run", "batch", "append MB/s", "batches/s", "vs raw", "read MB/s"
    );
    for (label, policy) in [
        ("fsync (group commit)", SyncPolicy::GroupCommit),
        ("no fsync", SyncPolicy::Explicit),
    ] {
        for batch_bytes in [1usize << 10, 16 << 10, 256 << 10] {
            let dir = args.dir.join(format!(
                "run-{batch_bytes}-{}",
                policy == SyncPolicy::GroupCommit
            ));
            let figures = log_run(&dir, policy, batch_bytes, args.bytes, args.window)?;
            std::fs::remove_dir_all(&dir).ok();
            println!(
                "{label:<26} {:>9}B {:>12.0} {:>12.0} {:>8.2}x {:>11.0}",
                batch_bytes,
                figures.append_mb_s,
                figures.batches_s,
                figures.append_mb_s / raw,
                figures.read_mb_s
            );
        }
    }
    std::fs::remove_dir_all(&args.dir).ok();
    Ok(())
}

fn now() -> CoreInstant {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    CoreInstant(nanos)
}

/// A batch of 100-byte records adding up to about `bytes`.
fn sample_batch(bytes: usize) -> Bytes {
    let count = (bytes / 120).max(1);
    let records: Vec<NewRecord> = (0..count)
        .map(|i| NewRecord {
            timestamp: i as i64,
            key: None,
            value: Some(Bytes::from(vec![b'x'; 100])),
            headers: vec![],
        })
        .collect();
    record_batch::encode(&BatchSpec::default(), &records)
}

/// The log plus its disk executor, driven synchronously.
struct Driver {
    log: Log,
    io: DiskIo,
    completions: mpsc::Receiver<seedlog_core::io::DiskCompletion>,
}

impl Driver {
    fn open(dir: &Path, policy: SyncPolicy) -> Result<Driver> {
        let (tx, completions) = mpsc::channel();
        let io = DiskIo::start(dir.to_path_buf(), move |c| {
            let _ = tx.send(c);
        })?;
        let mut config = LogConfig::new("bench-0");
        config.sync_policy = policy;
        config.canaries = Canaries::NONE;
        let mut driver = Driver {
            log: Log::open(config, now()),
            io,
            completions,
        };
        // Opening queues the recovery's first disk request.
        let mut recovered = driver.drain(&mut |o| matches!(o, LogOutput::Recovered(_))) > 0;
        while !recovered {
            recovered = driver.step(&mut |o| matches!(o, LogOutput::Recovered(_)))? > 0;
        }
        // An empty log finishes its start-up cut before it takes appends.
        while !driver.log.is_ready() || driver.log.is_truncating() {
            driver.step(&mut |_| false)?;
        }
        Ok(driver)
    }

    /// Feeds one input and drains outputs; returns how many outputs matched `watch`.
    fn feed(&mut self, input: LogInput, watch: &mut dyn FnMut(&LogOutput) -> bool) -> usize {
        self.log.handle(now(), input);
        self.drain(watch)
    }

    fn drain(&mut self, watch: &mut dyn FnMut(&LogOutput) -> bool) -> usize {
        let mut matched = 0;
        while let Some(output) = self.log.poll_output() {
            match output {
                LogOutput::Disk(request) => self.io.submit(request),
                other => matched += usize::from(watch(&other)),
            }
        }
        matched
    }

    /// Waits for one disk completion and feeds it.
    fn step(&mut self, watch: &mut dyn FnMut(&LogOutput) -> bool) -> Result<usize> {
        let completion = self
            .completions
            .recv_timeout(Duration::from_secs(60))
            .with_context(|| {
                format!(
                    "disk executor stalled (log end {}, durable {}, ready {}, truncating {}, fault {:?})",
                    self.log.log_end_offset(),
                    self.log.durable_offset(),
                    self.log.is_ready(),
                    self.log.is_truncating(),
                    self.log.fault_reason()
                )
            })?;
        Ok(self.feed(LogInput::Disk(completion), watch))
    }
}

fn log_run(
    dir: &Path,
    policy: SyncPolicy,
    batch_bytes: usize,
    total: u64,
    window: usize,
) -> Result<RunFigures> {
    std::fs::remove_dir_all(dir).ok();
    let mut driver = Driver::open(dir, policy)?;
    let batch = sample_batch(batch_bytes);
    let batches = (total / batch.len() as u64).max(1);
    let (mut sent, mut done) = (0u64, 0u64);
    let start = Instant::now();
    let mut watch = |o: &LogOutput| match o {
        LogOutput::Appended { .. } => true,
        LogOutput::AppendFailed { error, .. } => panic!("append failed: {error:?}"),
        LogOutput::Faulted(reason) => panic!("log faulted: {reason:?}"),
        _ => false,
    };
    while done < batches {
        while sent < batches && sent - done < window as u64 {
            let input = LogInput::Append {
                request: sent,
                batch: batch.clone(),
                leader_epoch: 0,
            };
            done += driver.feed(input, &mut watch) as u64;
            sent += 1;
        }
        done += driver.step(&mut watch)? as u64;
    }
    if policy == SyncPolicy::GroupCommit {
        let durable_target = driver.log.log_end_offset();
        while driver.log.durable_offset() < durable_target {
            driver.step(&mut watch)?;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let appended = batches * batch.len() as u64;
    let read_mb_s = read_all(&mut driver, appended)?;
    driver.io.shutdown();
    Ok(RunFigures {
        append_mb_s: appended as f64 / elapsed / 1e6,
        batches_s: batches as f64 / elapsed,
        read_mb_s,
    })
}

/// Reads the whole log back in 1 MiB fetches; returns MB/s.
fn read_all(driver: &mut Driver, expected: u64) -> Result<f64> {
    let end = driver.log.log_end_offset();
    let (mut offset, mut bytes) = (0i64, 0u64);
    let start = Instant::now();
    while offset < end {
        let answer = std::cell::RefCell::new(None);
        let input = LogInput::Read {
            request: offset as u64,
            offset,
            bytes_max: 1 << 20,
            offset_max: i64::MAX,
        };
        let mut watch = |o: &LogOutput| {
            if let LogOutput::ReadDone { result, .. } = o {
                *answer.borrow_mut() = Some(result.clone());
            }
            false
        };
        driver.feed(input, &mut watch);
        while answer.borrow().is_none() {
            driver.step(&mut watch)?;
        }
        let answer = answer.into_inner();
        match answer.expect("loop ends with an answer") {
            Ok(result) if result.next_offset > offset => {
                bytes += result.batches.len() as u64;
                offset = result.next_offset;
            }
            Ok(_) => bail!("read at {offset} made no progress"),
            Err(e) => bail!("read at {offset} failed: {e:?}"),
        }
    }
    if bytes != expected {
        bail!("read back {bytes} bytes, appended {expected}");
    }
    Ok(bytes as f64 / start.elapsed().as_secs_f64() / 1e6)
}

/// Runs a sweep of simulator seeds and prints events/s and simulated/wall time.
pub fn run_sim(args: &SimBench) -> Result<()> {
    let start = Instant::now();
    let (mut events, mut simulated) = (0u64, 0u64);
    let mut failed = 0u64;
    for seed in 0..args.seeds {
        if args.cluster {
            // A failing seed is a bug to report, not a reason to stop measuring.
            let report = seedlog_sim::run_cluster_seed(seed, Canaries::NONE, None);
            failed += u64::from(!report.violations.is_empty());
            events += report.events;
            simulated += report.simulated.as_nanos();
            continue;
        }
        let report = seedlog_sim::run_log_seed(seed, Canaries::NONE);
        if let Some(v) = report.violations.first() {
            bail!("seed {seed} failed: {}", v.what);
        }
        events += report.events;
        simulated += report.simulated.as_nanos();
    }
    if failed > 0 {
        println!(
            "{failed} of {} cluster seeds failed (see seedlog sim --cluster)",
            args.seeds
        );
    }
    let wall = start.elapsed().as_secs_f64();
    println!(
        "{} seeds: {events} events in {wall:.2}s = {:.0} events/s; simulated/wall = {:.0}x; {:.0} seeds/s",
        args.seeds,
        events as f64 / wall,
        simulated as f64 / 1e9 / wall,
        args.seeds as f64 / wall
    );
    Ok(())
}
