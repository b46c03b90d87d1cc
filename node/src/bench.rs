//! `seedlog bench`: a load generator on the project's Kafka client.
//!
//! `bench produce` and `bench consume` run one workload against a broker; `bench suite` starts
//! its own broker (this binary, `seedlog node`, on a free port and a temporary data directory)
//! and runs the matrix: 100 B and 1 KiB records at acks=1 and acks=all, unbatched
//! latency at a fixed rate, unbatched saturation, and consumption, each beside the raw
//! fsync'd sequential write bandwidth of the same disk measured in the same run, and the
//! broker's idle and peak resident memory.
//!
//! Producers send pre-encoded batches (the broker rewrites only base offset and leader epoch,
//! outside the CRC, so one encoded batch can be sent many times); consumers count the bytes of
//! whole batches without decoding records, so the load generator spends its share of the
//! machine on the network, not on parsing.

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use clap::{Args, Subcommand};
use seedlog_core::record_batch::{self, BatchSpec, NewRecord};
use seedlog_net::client::{Acks, FetchOptions, NewTopic};
use seedlog_net::{Client, ClientConfig};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `seedlog bench ...`
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Produce load against a broker.
    Produce(ProduceBench),
    /// Consume a topic from the beginning as fast as possible.
    Consume(ConsumeBench),
    /// Start a broker and run the whole matrix; print a report.
    Suite(SuiteArgs),
    /// The partition log alone on real files: append and read throughput with and without
    /// fsync, beside the raw disk.
    Log(crate::bench_log::LogBench),
    /// The simulator's speed: events per second and simulated time per wall time.
    Sim(crate::bench_log::SimBench),
}

/// Options of one produce run.
#[derive(Args, Debug, Clone)]
pub struct ProduceBench {
    /// Broker address.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap_server: String,
    /// Topic (created with one partition if missing).
    #[arg(long, default_value = "bench")]
    topic: String,
    /// Record value size in bytes.
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Records per produce request (1 = unbatched).
    #[arg(long, default_value_t = 256)]
    batch_records: usize,
    /// acks: all or 1.
    #[arg(long, default_value = "all")]
    acks: String,
    /// Connections (each its own client).
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 16)]
    in_flight: usize,
    /// Target request rate across all connections (0 = as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Run time in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

/// Options of one consume run.
#[derive(Args, Debug, Clone)]
pub struct ConsumeBench {
    /// Broker address.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap_server: String,
    /// Topic to read (partition 0).
    #[arg(long, default_value = "bench")]
    topic: String,
    /// Bytes per fetch.
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    fetch_bytes: i32,
}

/// Options of the suite.
#[derive(Args, Debug, Clone)]
pub struct SuiteArgs {
    /// Data directory for the broker and the raw disk test (a temporary one if omitted).
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
    /// Seconds per throughput run.
    #[arg(long, default_value_t = 8)]
    seconds: u64,
}

/// What one produce run measured.
struct ProduceReport {
    records: u64,
    bytes: u64,
    elapsed: Duration,
    latencies_us: Vec<u32>,
    errors: u64,
}

impl ProduceReport {
    fn line(&self, label: &str) -> String {
        let secs = self.elapsed.as_secs_f64();
        format!(
            "{label:<44} {:>11.0} rec/s {:>8.1} MB/s  p50 {:>7} p99 {:>7} p99.9 {:>7}  errors {}",
            self.records as f64 / secs,
            self.bytes as f64 / secs / 1e6,
            fmt_us(percentile(&self.latencies_us, 0.50)),
            fmt_us(percentile(&self.latencies_us, 0.99)),
            fmt_us(percentile(&self.latencies_us, 0.999)),
            self.errors,
        )
    }
}

fn fmt_us(us: u32) -> String {
    if us >= 10_000 {
        format!("{:.1}ms", f64::from(us) / 1000.0)
    } else {
        format!("{us}us")
    }
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

/// Runs `seedlog bench ...`.
pub fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Log(args) => crate::bench_log::run_log(&args),
        BenchCommand::Sim(args) => crate::bench_log::run_sim(&args),
        BenchCommand::Produce(args) => {
            let report = runtime()?.block_on(produce(&args))?;
            println!(
                "{}",
                report.line(&format!(
                    "produce {} B acks={} batch={}",
                    args.record_size, args.acks, args.batch_records
                ))
            );
            Ok(())
        }
        BenchCommand::Consume(args) => {
            let (bytes, elapsed) = runtime()?.block_on(consume(&args))?;
            println!(
                "consume: {:.1} MB/s ({bytes} bytes in {elapsed:?})",
                bytes as f64 / elapsed.as_secs_f64() / 1e6
            );
            Ok(())
        }
        BenchCommand::Suite(args) => suite(&args),
    }
}

async fn ensure_topic(client: &Client, topic: &str) -> Result<()> {
    let topic = NewTopic {
        name: topic.to_owned(),
        partitions: 1,
        replication_factor: 1,
        configs: vec![("retention.ms".into(), "-1".into())],
    };
    let outcome = client.create_topics(&[topic], 30_000).await?;
    match &outcome[0].result {
        Ok(()) => Ok(()),
        Err(e)
            if e.kafka_code()
                == Some(seedlog_net::kafka_protocol::ResponseError::TopicAlreadyExists) =>
        {
            Ok(())
        }
        Err(e) => Err(anyhow!("creating the bench topic: {e}")),
    }
}

fn encoded_batch(record_size: usize, records: usize) -> Bytes {
    let value = Bytes::from(vec![b'x'; record_size]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let records: Vec<NewRecord> = (0..records)
        .map(|_| NewRecord {
            timestamp: now,
            key: None,
            value: Some(value.clone()),
            headers: vec![],
        })
        .collect();
    record_batch::encode(
        &BatchSpec {
            base_timestamp: now,
            ..BatchSpec::default()
        },
        &records,
    )
}

async fn produce(args: &ProduceBench) -> Result<ProduceReport> {
    let acks = match args.acks.as_str() {
        "all" | "-1" => Acks::All,
        "1" => Acks::Leader,
        other => return Err(anyhow!("--acks must be all or 1, not {other}")),
    };
    let config = ClientConfig {
        in_flight_max: args.in_flight.max(1) as u32,
        ..ClientConfig::default()
    };
    let first = Client::connect(&[args.bootstrap_server.as_str()], config.clone()).await?;
    ensure_topic(&first, &args.topic).await?;
    let batch = encoded_batch(args.record_size, args.batch_records.max(1));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let sent = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let workers = args.connections.max(1) * args.in_flight.max(1);
    // Paced runs: each worker sends at rate/workers, on a fixed schedule.
    let interval =
        (args.rate > 0).then(|| Duration::from_secs_f64(workers as f64 / args.rate as f64));
    let mut tasks = Vec::new();
    let mut clients = vec![Arc::new(first)];
    for _ in 1..args.connections.max(1) {
        clients.push(Arc::new(
            Client::connect(&[args.bootstrap_server.as_str()], config.clone()).await?,
        ));
    }
    for w in 0..workers {
        let client = clients[w % clients.len()].clone();
        let (batch, topic, sent, errors) = (
            batch.clone(),
            args.topic.clone(),
            sent.clone(),
            errors.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut next = Instant::now()
                + interval.map_or(Duration::ZERO, |i| i.mul_f64(w as f64 / workers as f64));
            while Instant::now() < deadline {
                if let Some(interval) = interval {
                    tokio::time::sleep_until(next.into()).await;
                    next += interval;
                }
                let t0 = Instant::now();
                match client.produce_batch(&topic, 0, batch.clone(), acks).await {
                    Ok(_) => {
                        latencies.push(t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            latencies
        }));
    }
    let mut latencies_us = Vec::new();
    for task in tasks {
        latencies_us.extend(task.await?);
    }
    let elapsed = start.elapsed();
    latencies_us.sort_unstable();
    let requests = sent.load(Ordering::Relaxed);
    Ok(ProduceReport {
        records: requests * args.batch_records.max(1) as u64,
        bytes: requests * batch.len() as u64,
        elapsed,
        latencies_us,
        errors: errors.load(Ordering::Relaxed),
    })
}

/// Reads partition 0 from the start to the high watermark; returns bytes and time.
async fn consume(args: &ConsumeBench) -> Result<(u64, Duration)> {
    let client =
        Client::connect(&[args.bootstrap_server.as_str()], ClientConfig::default()).await?;
    let options = FetchOptions {
        max_wait_ms: 0,
        max_bytes: args.fetch_bytes,
        partition_max_bytes: args.fetch_bytes,
        ..FetchOptions::default()
    };
    let start = Instant::now();
    let mut offset = 0;
    let mut bytes = 0u64;
    loop {
        let fetched = client.fetch_raw(&args.topic, 0, offset, &options).await?;
        bytes += fetched.records.len() as u64;
        if fetched.next_offset >= fetched.high_watermark || fetched.next_offset == offset {
            break;
        }
        offset = fetched.next_offset;
    }
    Ok((bytes, start.elapsed()))
}

/// Raw disk: 1 MiB sequential writes, each followed by fdatasync (what a group commit of
/// 1 MiB costs), for `total` bytes. Returns MB/s.
pub(crate) fn raw_fsync_bandwidth(dir: &std::path::Path, total: usize) -> Result<f64> {
    let path = dir.join("raw-fsync-test.bin");
    let mut file = std::fs::File::create(&path)?;
    let chunk = vec![0xabu8; 1 << 20];
    let start = Instant::now();
    let mut written = 0;
    while written < total {
        file.write_all(&chunk)?;
        file.sync_data()?;
        written += chunk.len();
    }
    let elapsed = start.elapsed();
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(written as f64 / elapsed.as_secs_f64() / 1e6)
}

/// Raw disk: latency of a 100 B append followed by fdatasync (the floor under an unbatched
/// acks=all produce with fsync-before-ack). Returns (p50, p99, p99.9) in microseconds.
fn raw_fsync_latency(dir: &std::path::Path, count: usize) -> Result<(u32, u32, u32)> {
    let path = dir.join("raw-fsync-latency.bin");
    let mut file = std::fs::File::create(&path)?;
    let record = [0x5au8; 100];
    let mut latencies = Vec::with_capacity(count);
    for _ in 0..count {
        let start = Instant::now();
        file.write_all(&record)?;
        file.sync_data()?;
        latencies.push(start.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
    }
    drop(file);
    std::fs::remove_file(&path)?;
    latencies.sort_unstable();
    Ok((
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 0.999),
    ))
}

/// Resident memory of a process: (current, peak) in MiB, from /proc.
fn rss_mib(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

struct SpawnedBroker {
    child: std::process::Child,
    address: String,
}

impl Drop for SpawnedBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_broker(data_dir: &std::path::Path) -> Result<SpawnedBroker> {
    use std::io::BufRead;
    let exe = std::env::current_exe().context("locating the seedlog binary")?;
    let mut child = std::process::Command::new(exe)
        .args(["node", "--set", "listeners=127.0.0.1:0", "--set"])
        .arg(format!("log.dirs={}", data_dir.display()))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting the broker")?;
    let stdout = child.stdout.take().context("broker stdout")?;
    let mut lines = std::io::BufReader::new(stdout).lines();
    let line = lines.next().context("broker printed nothing")??;
    std::thread::spawn(move || for _ in lines {});
    let address = line.rsplit(' ').next().unwrap_or_default().to_owned();
    Ok(SpawnedBroker { child, address })
}

fn suite(args: &SuiteArgs) -> Result<()> {
    let temp;
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => {
            temp = std::env::temp_dir().join(format!("seedlog-bench-{}", std::process::id()));
            temp.clone()
        }
    };
    std::fs::create_dir_all(&data_dir)?;
    println!(
        "seedlog bench suite: {} cores, data under {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        data_dir.display()
    );
    let raw = raw_fsync_bandwidth(&data_dir, 256 << 20)?;
    println!("raw disk: sequential 1 MiB writes + fdatasync each: {raw:.1} MB/s");
    let (p50, p99, p999) = raw_fsync_latency(&data_dir, 2_000)?;
    println!(
        "raw disk: 100 B append + fdatasync latency: p50 {} p99 {} p99.9 {}",
        fmt_us(p50),
        fmt_us(p99),
        fmt_us(p999)
    );
    let broker = spawn_broker(&data_dir.join("broker"))?;
    let rt = runtime()?;
    std::thread::sleep(Duration::from_millis(500));
    if let Some((rss, _)) = rss_mib(broker.child.id()) {
        println!("broker idle RSS: {rss:.1} MiB");
    }
    let base = ProduceBench {
        bootstrap_server: broker.address.clone(),
        topic: "bench-1k".into(),
        record_size: 1024,
        batch_records: 512,
        acks: "all".into(),
        connections: 2,
        in_flight: 8,
        rate: 0,
        seconds: args.seconds,
    };
    let runs: Vec<(String, ProduceBench)> = vec![
        ("produce 1 KiB acks=all batch=512".into(), base.clone()),
        (
            "produce 1 KiB acks=1   batch=512".into(),
            ProduceBench {
                acks: "1".into(),
                topic: "bench-1k-a1".into(),
                ..base.clone()
            },
        ),
        (
            "produce 100 B acks=all batch=4096".into(),
            ProduceBench {
                record_size: 100,
                batch_records: 4096,
                topic: "bench-100".into(),
                ..base.clone()
            },
        ),
        (
            "produce 100 B acks=1   batch=4096".into(),
            ProduceBench {
                record_size: 100,
                batch_records: 4096,
                acks: "1".into(),
                topic: "bench-100-a1".into(),
                ..base.clone()
            },
        ),
        (
            "unbatched 100 B acks=all at 2,000 req/s".into(),
            ProduceBench {
                record_size: 100,
                batch_records: 1,
                rate: 2_000,
                connections: 1,
                in_flight: 4,
                topic: "bench-lat".into(),
                ..base.clone()
            },
        ),
        (
            "unbatched 100 B acks=all saturation".into(),
            ProduceBench {
                record_size: 100,
                batch_records: 1,
                connections: 4,
                in_flight: 64,
                topic: "bench-sat".into(),
                ..base.clone()
            },
        ),
        (
            "unbatched 100 B acks=1 saturation".into(),
            ProduceBench {
                record_size: 100,
                batch_records: 1,
                acks: "1".into(),
                connections: 4,
                in_flight: 64,
                topic: "bench-sat-a1".into(),
                ..base.clone()
            },
        ),
    ];
    for (label, bench) in runs {
        let report = rt.block_on(produce(&bench))?;
        println!("{}", report.line(&label));
    }
    let consume_args = ConsumeBench {
        bootstrap_server: broker.address.clone(),
        topic: "bench-1k".into(),
        fetch_bytes: 8 << 20,
    };
    let (bytes, elapsed) = rt.block_on(consume(&consume_args))?;
    println!(
        "{:<44} {:>8.1} MB/s ({:.2} GB read)",
        "consume 1 KiB records, 8 MiB fetches",
        bytes as f64 / elapsed.as_secs_f64() / 1e6,
        bytes as f64 / 1e9
    );
    if let Some((rss, peak)) = rss_mib(broker.child.id()) {
        println!("broker RSS after the runs: {rss:.1} MiB, peak {peak:.1} MiB");
    }
    drop(broker);
    if args.data_dir.is_none() {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    Ok(())
}
