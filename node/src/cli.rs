//! Kafka-style command-line tools over the project's client: `seedlog topic`, `seedlog produce`
//! and `seedlog consume`. They speak plain Kafka, so they work against any Kafka-compatible
//! broker (`--bootstrap-server`), like Kafka's `kafka-topics.sh` and console tools.
//!
//! The project's client never retries on its own (a Jepsen history must record exactly what
//! was sent), so the tools do what Kafka's tools do: an error that a moment may cure — a
//! partition leader or the controller being elected (NOT_LEADER_OR_FOLLOWER, NOT_CONTROLLER),
//! a broker restarting — is retried with backoff for up to [`RETRY_DEADLINE`]. Like Kafka's
//! console producer without idempotence, a produce retried after a timeout may be stored
//! twice.

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use clap::{Args, Subcommand};
use seedlog_core::record_batch::NewRecord;
use seedlog_net::client::{Acks, FetchOptions, IsolationLevel, NewTopic, OffsetSpec, TopicOutcome};
use seedlog_net::{Client, ClientConfig, ClientError};
use std::future::Future;
use std::io::{BufRead, Write};
use std::time::Duration;

/// How long a tool keeps retrying retriable errors (Kafka's tools wait up to their
/// `delivery.timeout.ms` or `default.api.timeout.ms`).
const RETRY_DEADLINE: Duration = Duration::from_secs(30);
/// First pause before a retry; doubles up to [`RETRY_BACKOFF_MAX`].
const RETRY_BACKOFF: Duration = Duration::from_millis(50);
/// Longest pause between retries.
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Calls `call` until it succeeds, fails with an error that is not retriable, or
/// [`RETRY_DEADLINE`] passes. `failed` picks the error to judge out of a success value (a
/// per-topic error inside a CreateTopics answer), if any.
async fn with_retries<T, F, Fut>(
    mut call: F,
    failed: impl Fn(&T) -> Option<&ClientError>,
) -> Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    let deadline = tokio::time::Instant::now() + RETRY_DEADLINE;
    let mut backoff = RETRY_BACKOFF;
    loop {
        let outcome = call().await;
        let retriable = match &outcome {
            Ok(value) => failed(value).is_some_and(ClientError::is_retriable),
            Err(error) => error.is_retriable(),
        };
        if !retriable || tokio::time::Instant::now() + backoff > deadline {
            return outcome;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
    }
}

/// How long a tool waits for a topic it names to show up: a topic just created reaches every
/// broker's metadata a moment later (Kafka's producer waits up to `max.block.ms` likewise).
const TOPIC_WAIT: Duration = Duration::from_secs(10);

/// `topic`'s metadata, waiting up to [`TOPIC_WAIT`] while the broker does not know it yet.
async fn topic_metadata(client: &Client, topic: &str) -> Result<seedlog_net::client::TopicInfo> {
    const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    const LEADER_NOT_AVAILABLE: i16 = 5;
    let deadline = tokio::time::Instant::now() + TOPIC_WAIT;
    let topics = [topic];
    loop {
        let metadata = with_retries(|| client.refresh_metadata(Some(&topics)), |_| None).await?;
        let error = match metadata.topics.get(topic) {
            Some(info) if info.error_code == 0 => return Ok(info.clone()),
            Some(info) => info.error_code,
            None => UNKNOWN_TOPIC_OR_PARTITION,
        };
        match error {
            UNKNOWN_TOPIC_OR_PARTITION | LEADER_NOT_AVAILABLE
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(RETRY_BACKOFF * 2).await;
            }
            UNKNOWN_TOPIC_OR_PARTITION => bail!("topic {topic} does not exist"),
            code => bail!("topic {topic}: kafka error {code}"),
        }
    }
}

/// The first per-topic error of a CreateTopics or DeleteTopics answer.
fn first_topic_error(outcomes: &[TopicOutcome]) -> Option<&ClientError> {
    outcomes.iter().find_map(|o| o.result.as_ref().err())
}

/// Where to connect.
#[derive(Args, Debug, Clone)]
pub struct Connect {
    /// Broker address(es), comma separated.
    #[arg(long, default_value = "127.0.0.1:9092", value_name = "HOST:PORT")]
    pub bootstrap_server: String,
}

impl Connect {
    async fn client(&self) -> Result<Client> {
        let addresses: Vec<&str> = self.bootstrap_server.split(',').map(str::trim).collect();
        Client::connect(&addresses, ClientConfig::default())
            .await
            .with_context(|| format!("connecting to {}", self.bootstrap_server))
    }
}

/// `seedlog topic ...`
#[derive(Subcommand, Debug)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions (broker default if omitted).
        #[arg(long, default_value_t = -1)]
        partitions: i32,
        /// Replication factor (broker default if omitted).
        #[arg(long, default_value_t = -1)]
        replication_factor: i16,
        /// Topic config override, e.g. `--config retention.ms=86400000` (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
        #[command(flatten)]
        connect: Connect,
    },
    /// List topics.
    List {
        #[command(flatten)]
        connect: Connect,
    },
    /// Show partitions, leaders, epochs, replicas and configs of one topic or all.
    Describe {
        /// Topic name (all topics if omitted).
        name: Option<String>,
        #[command(flatten)]
        connect: Connect,
    },
    /// Delete a topic.
    Delete {
        /// Topic name.
        name: String,
        #[command(flatten)]
        connect: Connect,
    },
}

/// `seedlog produce`: one record per stdin line.
#[derive(Args, Debug)]
pub struct ProduceArgs {
    /// Topic to write to.
    #[arg(long)]
    topic: String,
    /// Partition (default: by key hash as Kafka's default partitioner; partition 0 without key).
    #[arg(long)]
    partition: Option<i32>,
    /// Split each line at the first SEP into key and value.
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// acks: all, 1 or 0.
    #[arg(long, default_value = "all")]
    acks: String,
    /// Most lines per produce request.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    #[command(flatten)]
    connect: Connect,
}

/// `seedlog consume`: print records as lines.
#[derive(Args, Debug)]
pub struct ConsumeArgs {
    /// Topic to read.
    #[arg(long)]
    topic: String,
    /// Partition (all partitions if omitted).
    #[arg(long)]
    partition: Option<i32>,
    /// Where to start: earliest, latest, or an offset.
    #[arg(long, default_value = "earliest")]
    from: String,
    /// Stop after this many records.
    #[arg(long)]
    max_messages: Option<u64>,
    /// Stop after this long without a new record (default: never).
    #[arg(long)]
    idle_timeout_ms: Option<u64>,
    /// Print `key<SEP>value` instead of the value.
    #[arg(long)]
    print_key: bool,
    /// Separator for --print-key.
    #[arg(long, default_value = "\t")]
    key_separator: String,
    /// Print `offset<TAB>` before each record.
    #[arg(long)]
    print_offset: bool,
    #[command(flatten)]
    connect: Connect,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

/// Runs `seedlog topic ...`.
pub fn topic(command: TopicCommand) -> Result<()> {
    runtime()?.block_on(async move {
        match command {
            TopicCommand::Create {
                name,
                partitions,
                replication_factor,
                configs,
                connect,
            } => {
                let configs = configs
                    .iter()
                    .map(|c| c.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| anyhow!("--config takes key=value"))?;
                let client = connect.client().await?;
                let topic = NewTopic {
                    name: name.clone(),
                    partitions,
                    replication_factor,
                    configs,
                };
                let topics = [topic];
                let outcome = with_retries(
                    || client.create_topics(&topics, 30_000),
                    |o| first_topic_error(o),
                )
                .await?;
                for o in outcome {
                    o.result.with_context(|| format!("creating {}", o.name))?;
                    println!("Created topic {}.", o.name);
                }
            }
            TopicCommand::List { connect } => {
                let metadata = connect.client().await?.refresh_metadata(None).await?;
                for name in metadata.topics.keys() {
                    println!("{name}");
                }
            }
            TopicCommand::Describe { name, connect } => describe(&connect, name.as_deref()).await?,
            TopicCommand::Delete { name, connect } => {
                let client = connect.client().await?;
                let names = [name.as_str()];
                let outcome = with_retries(
                    || client.delete_topics(&names, 30_000),
                    |o| first_topic_error(o),
                )
                .await?;
                for o in outcome {
                    o.result.with_context(|| format!("deleting {}", o.name))?;
                    println!("Deleted topic {}.", o.name);
                }
            }
        }
        Ok(())
    })
}

async fn describe(connect: &Connect, name: Option<&str>) -> Result<()> {
    let client = connect.client().await?;
    let metadata = match name {
        Some(name) => {
            let info = topic_metadata(&client, name).await?;
            let mut metadata = seedlog_net::client::ClusterMetadata::default();
            metadata.topics.insert(name.to_owned(), info);
            metadata
        }
        None => client.refresh_metadata(None).await?,
    };
    for (topic, info) in &metadata.topics {
        if info.error_code != 0 {
            bail!("topic {topic}: kafka error {}", info.error_code);
        }
        let configs = client
            .describe_topic_configs(topic)
            .await
            .with_context(|| format!("describing the configs of {topic}"))?;
        let overrides: Vec<String> = configs
            .iter()
            .filter(|c| c.source == 1)
            .map(|c| format!("{}={}", c.name, c.value.clone().unwrap_or_default()))
            .collect();
        println!(
            "Topic: {topic}\tPartitionCount: {}\tConfigs: {}",
            info.partitions.len(),
            overrides.join(",")
        );
        for p in &info.partitions {
            println!(
                "\tTopic: {topic}\tPartition: {}\tLeader: {}\tLeaderEpoch: {}\tReplicas: {:?}\tIsr: {:?}",
                p.partition, p.leader, p.leader_epoch, p.replicas, p.isr
            );
        }
    }
    Ok(())
}

/// Kafka's murmur2, as its default partitioner hashes keys (so keyed records land where a
/// Java producer would put them).
fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

fn parse_acks(acks: &str) -> Result<Acks> {
    Ok(match acks {
        "all" | "-1" => Acks::All,
        "1" => Acks::Leader,
        "0" => Acks::None,
        other => bail!("--acks must be all, 1 or 0, not {other:?}"),
    })
}

/// Runs `seedlog produce`.
pub fn produce(args: ProduceArgs) -> Result<()> {
    let acks = parse_acks(&args.acks)?;
    // Lines are read on a thread so a batch goes out as soon as stdin pauses.
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::channel::<String>(args.batch_size.max(1) * 4);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if lines_tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    runtime()?.block_on(async move {
        let client = args.connect.client().await?;
        let partitions = topic_metadata(&client, &args.topic).await?.partitions.len() as i32;
        let mut sent = 0u64;
        while let Some(first) = lines_rx.recv().await {
            let mut lines = vec![first];
            while lines.len() < args.batch_size {
                match lines_rx.try_recv() {
                    Ok(line) => lines.push(line),
                    Err(_) => break,
                }
            }
            let mut by_partition: std::collections::BTreeMap<i32, Vec<NewRecord>> =
                Default::default();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            for line in lines {
                let (key, value) = match &args.key_separator {
                    Some(sep) => match line.split_once(sep.as_str()) {
                        Some((k, v)) => (Some(Bytes::from(k.to_owned())), v.to_owned()),
                        None => (None, line),
                    },
                    None => (None, line),
                };
                let partition = args.partition.unwrap_or_else(|| match &key {
                    Some(k) => (murmur2(k) & 0x7fff_ffff) % partitions,
                    None => 0,
                });
                by_partition.entry(partition).or_default().push(NewRecord {
                    timestamp: now,
                    key,
                    value: Some(Bytes::from(value)),
                    headers: Vec::new(),
                });
            }
            for (partition, records) in by_partition {
                with_retries(
                    || client.produce(&args.topic, partition, &records, acks),
                    |_| None,
                )
                .await?;
                sent += records.len() as u64;
            }
        }
        eprintln!("{sent} records produced");
        Ok(())
    })
}

/// Runs `seedlog consume`.
pub fn consume(args: ConsumeArgs) -> Result<()> {
    runtime()?.block_on(async move {
        let client = args.connect.client().await?;
        let topic = topic_metadata(&client, &args.topic).await?;
        let partitions: Vec<i32> = match args.partition {
            Some(p) => vec![p],
            None => topic.partitions.iter().map(|p| p.partition).collect(),
        };
        let mut positions = Vec::with_capacity(partitions.len());
        for &p in &partitions {
            let offset = match args.from.as_str() {
                "earliest" => {
                    client
                        .list_offsets(
                            &args.topic,
                            p,
                            OffsetSpec::Earliest,
                            IsolationLevel::ReadUncommitted,
                        )
                        .await?
                        .offset
                }
                "latest" => {
                    client
                        .list_offsets(
                            &args.topic,
                            p,
                            OffsetSpec::Latest,
                            IsolationLevel::ReadUncommitted,
                        )
                        .await?
                        .offset
                }
                n => n
                    .parse()
                    .map_err(|_| anyhow!("--from must be earliest, latest or an offset"))?,
            };
            positions.push((p, offset));
        }
        let options = FetchOptions {
            max_wait_ms: if partitions.len() > 1 { 100 } else { 500 },
            ..FetchOptions::default()
        };
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        let mut printed = 0u64;
        let mut last_record = std::time::Instant::now();
        loop {
            for (partition, offset) in positions.iter_mut() {
                let fetched = client
                    .fetch(&args.topic, *partition, *offset, &options)
                    .await?;
                for record in &fetched.records {
                    if args.max_messages.is_some_and(|max| printed >= max) {
                        break;
                    }
                    if args.print_offset {
                        write!(out, "{}\t", record.offset)?;
                    }
                    if args.print_key {
                        out.write_all(record.key.as_deref().unwrap_or_default())?;
                        out.write_all(args.key_separator.as_bytes())?;
                    }
                    out.write_all(record.value.as_deref().unwrap_or_default())?;
                    out.write_all(b"\n")?;
                    printed += 1;
                    last_record = std::time::Instant::now();
                }
                *offset = fetched.next_offset;
            }
            out.flush()?;
            if args.max_messages.is_some_and(|max| printed >= max) {
                return Ok(());
            }
            if args
                .idle_timeout_ms
                .is_some_and(|ms| last_record.elapsed() >= Duration::from_millis(ms))
            {
                return Ok(());
            }
        }
    })
}

#[cfg(test)]
mod tests {
    /// Keys hash to the partitions Kafka's Java default partitioner picks, so a topic written
    /// by both tools keeps each key on one partition. Reference values from Kafka's
    /// `UtilsTest.testMurmur2`.
    #[test]
    fn murmur2_matches_kafka() {
        assert_eq!(super::murmur2(b"21"), -973932308);
        assert_eq!(super::murmur2(b"foobar"), -790332482);
        assert_eq!(super::murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(super::murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(
            super::murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58897971
        );
        assert_eq!(super::murmur2(b"abc"), 479470107);
    }
}
