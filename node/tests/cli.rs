//! The command-line tools against a real node, as an operator would use them.

mod common;

use common::Node;
use std::io::Write;
use std::process::{Command, Stdio};

fn seedlog(node: &Node, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_seedlog"))
        .args(args)
        .arg("--bootstrap-server")
        .arg(&node.address)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn seedlog");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    let output = child.wait_with_output().expect("wait");
    assert!(
        output.status.success(),
        "seedlog {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

/// The tool chain end to end: create a topic with a config override, see it listed
/// and described (partitions, leader, epoch, override), produce keyed lines, read them back
/// from earliest with --max-messages (keys land on the partition Kafka's partitioner picks),
/// and delete the topic, which then no longer lists.
#[test]
fn topic_produce_consume_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let created = seedlog(
        &node,
        &[
            "topic",
            "create",
            "lines",
            "--partitions",
            "2",
            "--config",
            "retention.ms=3600000",
        ],
        None,
    );
    assert!(created.contains("Created topic lines"), "{created}");
    assert_eq!(seedlog(&node, &["topic", "list"], None).trim(), "lines");
    let described = seedlog(&node, &["topic", "describe", "lines"], None);
    assert!(described.contains("PartitionCount: 2"), "{described}");
    assert!(described.contains("retention.ms=3600000"), "{described}");
    assert!(
        described.contains("Partition: 1\tLeader: 1\tLeaderEpoch: 0"),
        "{described}"
    );

    let input: String = (0..50).map(|i| format!("k{}:v{i}\n", i % 5)).collect();
    seedlog(
        &node,
        &["produce", "--topic", "lines", "--key-separator", ":"],
        Some(&input),
    );
    let consumed = seedlog(
        &node,
        &[
            "consume",
            "--topic",
            "lines",
            "--from",
            "earliest",
            "--max-messages",
            "50",
            "--print-key",
            "--key-separator",
            ":",
        ],
        None,
    );
    let mut got: Vec<&str> = consumed.lines().collect();
    let mut want: Vec<String> = input.lines().map(str::to_owned).collect();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want);

    let one = seedlog(
        &node,
        &[
            "consume",
            "--topic",
            "lines",
            "--partition",
            "0",
            "--from",
            "1",
            "--max-messages",
            "1",
            "--print-offset",
        ],
        None,
    );
    assert!(one.starts_with("1\t"), "{one}");

    assert!(seedlog(&node, &["topic", "delete", "lines"], None).contains("Deleted topic lines"));
    assert_eq!(seedlog(&node, &["topic", "list"], None).trim(), "");
}

/// SIGTERM stops the node cleanly (exit 0) after syncing, and a restart serves the same data:
/// graceful shutdown must not lose or corrupt anything, even with the flush policy `none`,
/// whose writes are synced only at shutdown.
#[test]
fn sigterm_shuts_down_cleanly_and_data_survives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &["log.flush.policy=none"]);
    seedlog(
        &node,
        &["topic", "create", "kept", "--partitions", "1"],
        None,
    );
    seedlog(
        &node,
        &["produce", "--topic", "kept"],
        Some("one\ntwo\nthree\n"),
    );
    assert!(node.terminate().success(), "exit 0 after SIGTERM");
    let node = Node::start(dir.path(), &["log.flush.policy=none"]);
    let out = seedlog(
        &node,
        &["consume", "--topic", "kept", "--max-messages", "3"],
        None,
    );
    assert_eq!(out, "one\ntwo\nthree\n");
}
