//! Unit tests that drive one voter and assert its exact outputs (openraft-style), plus
//! property tests for malformed input and the wire encoding.

use super::*;
use crate::io::{DiskOp, DiskOutcome, FileEntry};
use proptest::prelude::*;

const MS: u64 = 1_000_000;

/// A voter with an in-memory disk that the test completes explicitly or automatically.
struct Harness {
    node: RaftNode,
    now: Instant,
    files: BTreeMap<String, Vec<u8>>,
    /// Disk requests seen in outputs and not yet completed.
    pending: VecDeque<DiskRequest>,
    /// Reads to damage in transit: the next read of the file has this byte flipped.
    flips: Vec<(String, usize)>,
}

fn config(id: NodeId, voters: u32) -> RaftConfig {
    let mut config = RaftConfig::new(id, (1..=voters).collect());
    config.election_timeout_min = Duration::from_millis(100);
    config.election_timeout_max = Duration::from_millis(200);
    config.heartbeat_interval = Duration::from_millis(20);
    config
}

impl Harness {
    /// A recovered voter `id` of `voters` on an empty disk, its start-up outputs drained.
    fn new(id: NodeId, voters: u32) -> Harness {
        Harness::with_files(id, voters, BTreeMap::new())
    }

    fn with_files(id: NodeId, voters: u32, files: BTreeMap<String, Vec<u8>>) -> Harness {
        Harness::with_flipped_reads(id, voters, files, Vec::new())
    }

    /// Like [`Harness::with_files`], with the first read of each named file damaged in
    /// transit (a byte flipped on its way from the disk, not on the disk).
    fn with_flipped_reads(
        id: NodeId,
        voters: u32,
        files: BTreeMap<String, Vec<u8>>,
        flips: Vec<(String, usize)>,
    ) -> Harness {
        let now = Instant(1_000 * MS);
        let node = RaftNode::new(config(id, voters), 7, now);
        let pending = VecDeque::new();
        let mut h = Harness {
            node,
            now,
            files,
            pending,
            flips,
        };
        let outputs = h.run_disk();
        assert!(outputs.contains(&RaftOutput::Recovered), "{outputs:?}");
        assert!(h.node.is_ready());
        h
    }

    /// Every output; disk requests are also queued for `run_disk`.
    fn take(&mut self) -> Vec<RaftOutput> {
        let outputs: Vec<RaftOutput> = std::iter::from_fn(|| self.node.poll_output()).collect();
        for output in &outputs {
            if let RaftOutput::Disk(request) = output {
                self.pending.push_back(request.clone());
            }
        }
        outputs
    }

    fn execute(&mut self, op: &DiskOp) -> DiskOutcome {
        match op {
            DiskOp::List { dir } => DiskOutcome::Listed(
                self.files
                    .iter()
                    .filter_map(|(p, b)| {
                        let name = p.strip_prefix(&format!("{dir}/"))?;
                        Some(FileEntry {
                            name: name.to_string(),
                            len: b.len() as u64,
                        })
                    })
                    .collect(),
            ),
            DiskOp::Read { file, .. } => {
                let mut data = self.files.get(file).cloned().unwrap_or_default();
                if let Some(at) = self.flips.iter().position(|(f, _)| f == file) {
                    let (_, byte) = self.flips.remove(at);
                    data[byte] ^= 0x10;
                }
                DiskOutcome::Read(Bytes::from(data))
            }
            DiskOp::Write {
                file,
                position,
                bytes,
            } => {
                let data = self.files.entry(file.clone()).or_default();
                let end = *position as usize + bytes.len();
                if data.len() < end {
                    data.resize(end, 0);
                }
                data[*position as usize..end].copy_from_slice(bytes);
                DiskOutcome::Done
            }
            DiskOp::Truncate { file, len } => {
                self.files
                    .entry(file.clone())
                    .or_default()
                    .truncate(*len as usize);
                DiskOutcome::Done
            }
            DiskOp::Sync { .. } => DiskOutcome::Done,
            DiskOp::Delete { file } => {
                self.files.remove(file);
                DiskOutcome::Done
            }
        }
    }

    /// Completes every disk request, including ones the completions cause; returns every
    /// other output in order.
    fn run_disk(&mut self) -> Vec<RaftOutput> {
        let mut others = Vec::new();
        loop {
            for output in self.take() {
                if !matches!(output, RaftOutput::Disk(_)) {
                    others.push(output);
                }
            }
            let Some(request) = self.pending.pop_front() else {
                return others;
            };
            let result = Ok(self.execute(&request.op));
            let completion = DiskCompletion {
                id: request.id,
                result,
            };
            self.node.handle(self.now, RaftInput::Disk(completion));
        }
    }

    fn input(&mut self, input: RaftInput) -> Vec<RaftOutput> {
        self.node.handle(self.now, input);
        self.take()
    }

    fn message(&mut self, from: NodeId, message: Message) -> Vec<RaftOutput> {
        self.input(RaftInput::Message { from, message })
    }

    fn advance(&mut self, ms: u64) {
        self.now = self.now + Duration::from_millis(ms);
    }

    /// Fires timers until the pre-vote goes out.
    fn fire_election(&mut self) -> Vec<RaftOutput> {
        let deadline = self.node.poll_timeout().expect("election timer armed");
        self.now = deadline;
        self.input(RaftInput::Timeout)
    }

    /// Makes voter 1 of 3 the leader of term 1 with durable vote and noop.
    fn leader_of_three() -> Harness {
        let mut h = Harness::new(1, 3);
        h.fire_election();
        h.message(
            2,
            Message::PreVoteResponse {
                term: 1,
                current_term: 0,
                granted: true,
            },
        );
        h.run_disk();
        let granted = Message::VoteResponse {
            term: 1,
            granted: true,
        };
        h.message(2, granted);
        assert!(h.node.is_leader());
        h
    }
}

fn sends(outputs: &[RaftOutput]) -> Vec<(NodeId, Message)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            RaftOutput::Send { to, message } => Some((*to, message.clone())),
            _ => None,
        })
        .collect()
}

// A new voter lists its directory before anything else and serves nothing until recovered,
// because a voter that answered before reading its vote could vote twice.
#[test]
fn recovery_lists_then_reports_recovered() {
    let node = RaftNode::new(config(1, 3), 1, Instant(0));
    let mut node = node;
    assert_eq!(
        node.poll_output(),
        Some(RaftOutput::Disk(DiskRequest {
            id: 1,
            op: DiskOp::List { dir: "raft".into() }
        }))
    );
    assert_eq!(node.poll_output(), None);
    assert_eq!(node.poll_timeout(), None);
    node.handle(
        Instant(0),
        RaftInput::Propose {
            id: 9,
            command: Bytes::new(),
        },
    );
    let refused = RaftOutput::ProposalResult {
        id: 9,
        result: Err(ProposeError::NotLeader { leader_hint: None }),
    };
    assert_eq!(node.poll_output(), Some(refused));
    let listed = DiskCompletion {
        id: 1,
        result: Ok(DiskOutcome::Listed(Vec::new())),
    };
    node.handle(Instant(0), RaftInput::Disk(listed));
    assert_eq!(node.poll_output(), Some(RaftOutput::Recovered));
    let timeout = node.poll_timeout().expect("election timer");
    assert!(timeout >= Instant(100 * MS) && timeout <= Instant(200 * MS));
}

// An election timeout starts a pre-vote, which changes no term and writes nothing (thesis
// §9.6): a partitioned voter must not inflate terms.
#[test]
fn election_timeout_sends_pre_votes_without_term_bump() {
    let mut h = Harness::new(1, 3);
    let outputs = h.fire_election();
    let pre_vote = Message::PreVote {
        term: 1,
        last_log_index: 0,
        last_log_term: 0,
    };
    assert_eq!(
        outputs,
        vec![
            RaftOutput::Send {
                to: 2,
                message: pre_vote.clone()
            },
            RaftOutput::Send {
                to: 3,
                message: pre_vote
            },
        ]
    );
    assert_eq!(h.node.term(), 0);
}

// A won pre-vote bumps the term and votes for itself, but the Vote requests leave only after
// the vote record is synced: a candidacy must survive a crash before anyone acts on it.
#[test]
fn candidacy_waits_for_durable_vote() {
    let mut h = Harness::new(1, 3);
    h.fire_election();
    let outputs = h.message(
        2,
        Message::PreVoteResponse {
            term: 1,
            current_term: 0,
            granted: true,
        },
    );
    let vote = storage::VoteRecord {
        sequence: 1,
        term: 1,
        voted_for: Some(1),
    };
    assert_eq!(
        outputs,
        vec![
            RaftOutput::Leader {
                term: 1,
                leader: None
            },
            RaftOutput::Disk(DiskRequest {
                id: 2,
                op: DiskOp::Write {
                    file: "raft/vote.1".into(),
                    position: 0,
                    bytes: vote.encode(),
                },
            }),
            RaftOutput::Disk(DiskRequest {
                id: 3,
                op: DiskOp::Sync {
                    file: "raft/vote.1".into()
                },
            }),
        ]
    );
    let outputs = h.run_disk();
    let request = Message::Vote {
        term: 1,
        last_log_index: 0,
        last_log_term: 0,
    };
    assert_eq!(sends(&outputs), vec![(2, request.clone()), (3, request)]);
}

// A voter grants one vote per term, and only once the grant is durable; a second candidate in
// the same term is refused. This is the rule the "votes twice" canary breaks.
#[test]
fn one_durable_vote_per_term() {
    let mut h = Harness::new(2, 3);
    h.advance(150);
    let ask = Message::Vote {
        term: 1,
        last_log_index: 0,
        last_log_term: 0,
    };
    let outputs = h.message(1, ask.clone());
    assert!(
        sends(&outputs).is_empty(),
        "no grant before the vote is durable"
    );
    let outputs = h.run_disk();
    let grant = Message::VoteResponse {
        term: 1,
        granted: true,
    };
    assert_eq!(sends(&outputs), vec![(1, grant)]);
    let outputs = h.message(3, ask);
    let refusal = Message::VoteResponse {
        term: 1,
        granted: false,
    };
    assert_eq!(sends(&outputs), vec![(3, refusal)]);
    // After a restart from the same disk the vote is remembered.
    let mut h = Harness::with_files(2, 3, h.files);
    h.advance(150);
    let outputs = h.message(
        3,
        Message::Vote {
            term: 1,
            last_log_index: 5,
            last_log_term: 1,
        },
    );
    let refusal = Message::VoteResponse {
        term: 1,
        granted: false,
    };
    assert_eq!(sends(&outputs), vec![(3, refusal)]);
}

// A voter that heard from a leader less than the minimum election timeout ago refuses
// pre-votes (stickiness), so a rejoining voter cannot disrupt a healthy leader.
#[test]
fn sticky_follower_refuses_pre_vote() {
    let mut h = Harness::new(2, 3);
    let heartbeat = Message::AppendEntries {
        term: 3,
        prev_log_index: 0,
        prev_log_term: 0,
        entries: vec![],
        leader_commit: 0,
        sent_at: 5,
    };
    h.message(1, heartbeat);
    h.run_disk();
    let outputs = h.message(
        3,
        Message::PreVote {
            term: 4,
            last_log_index: 10,
            last_log_term: 3,
        },
    );
    let refusal = Message::PreVoteResponse {
        term: 4,
        current_term: 3,
        granted: false,
    };
    assert_eq!(sends(&outputs), vec![(3, refusal)]);
    assert_eq!(h.node.term(), 3);
}

// The leader counts its own copy only after its own sync: one follower's acknowledgement is
// not a majority of three while the leader's write is still in flight.
#[test]
fn leader_commits_only_with_its_own_durable_copy() {
    let mut h = Harness::leader_of_three();
    let outputs = h.take();
    assert!(outputs.is_empty(), "{outputs:?}");
    let ack = Message::AppendEntriesResponse {
        term: 1,
        success: true,
        match_index: 1,
        sent_at: h.now.0,
    };
    let outputs = h.message(2, ack);
    assert!(
        !outputs.iter().any(|o| matches!(o, RaftOutput::Apply(_))),
        "{outputs:?}"
    );
    assert_eq!(h.node.commit_index(), 0);
    let outputs = h.run_disk();
    let noop = Entry {
        index: 1,
        term: 1,
        payload: Payload::Noop,
    };
    assert_eq!(outputs, vec![RaftOutput::Apply(noop)]);
    assert_eq!(h.node.commit_index(), 1);
}

// A proposal is acknowledged with its index once committed, and a lease read is answered with
// the commit index while a majority acknowledged recently.
#[test]
fn proposal_commits_and_lease_read_answers() {
    let mut h = Harness::leader_of_three();
    h.run_disk();
    let outputs = h.input(RaftInput::Propose {
        id: 7,
        command: Bytes::from_static(b"create topic"),
    });
    assert_eq!(sends(&outputs).len(), 2);
    h.run_disk();
    let ack = Message::AppendEntriesResponse {
        term: 1,
        success: true,
        match_index: 2,
        sent_at: h.now.0,
    };
    let outputs = h.message(3, ack);
    assert_eq!(
        outputs[0],
        RaftOutput::ProposalResult {
            id: 7,
            result: Ok(2)
        }
    );
    let outputs = h.input(RaftInput::Read { id: 8 });
    assert_eq!(
        outputs,
        vec![RaftOutput::ReadResult {
            id: 8,
            result: Ok(2)
        }]
    );
    h.advance(100);
    let outputs = h.input(RaftInput::Read { id: 9 });
    let no_lease = Err(ProposeError::NoLease);
    assert_eq!(
        outputs,
        vec![RaftOutput::ReadResult {
            id: 9,
            result: no_lease
        }]
    );
}

// A leader that hears from no majority within the minimum election timeout steps down
// (check-quorum), failing its pending proposals as indeterminate.
#[test]
fn check_quorum_steps_down() {
    let mut h = Harness::leader_of_three();
    h.run_disk();
    h.input(RaftInput::Propose {
        id: 1,
        command: Bytes::from_static(b"x"),
    });
    h.run_disk();
    for _ in 0..10 {
        h.advance(20);
        h.input(RaftInput::Timeout);
    }
    assert!(!h.node.is_leader());
    assert_eq!(h.node.term(), 1);
}

// A follower truncates a conflicting uncommitted suffix and takes the leader's entries; it
// acknowledges only what is durable.
#[test]
fn follower_truncates_conflicts_and_acks_durable_entries() {
    let mut h = Harness::new(2, 3);
    let entry = |index, term| Entry {
        index,
        term,
        payload: Payload::Command(Bytes::from(vec![index as u8])),
    };
    let append = |term, prev, prev_term, entries, commit| Message::AppendEntries {
        term,
        prev_log_index: prev,
        prev_log_term: prev_term,
        entries,
        leader_commit: commit,
        sent_at: 1,
    };
    let outputs = h.message(1, append(1, 0, 0, vec![entry(1, 1), entry(2, 1)], 1));
    // An acknowledgement that answers a request echoes its `sent_at`; one sent because the
    // log became durable answers none and carries 0.
    let ack = |term, match_index, sent_at| Message::AppendEntriesResponse {
        term,
        success: true,
        match_index,
        sent_at,
    };
    // The new term is not durable yet, so nothing leaves; then the acknowledgement claims only
    // what is durable, and a second one follows the log sync.
    assert!(sends(&outputs).is_empty(), "{outputs:?}");
    let outputs = h.run_disk();
    assert_eq!(sends(&outputs), vec![(1, ack(1, 0, 1)), (1, ack(1, 2, 0))]);
    h.message(3, append(2, 1, 1, vec![entry(2, 2), entry(3, 2)], 1));
    let outputs = h.run_disk();
    assert_eq!(sends(&outputs), vec![(3, ack(2, 1, 1)), (3, ack(2, 3, 0))]);
    h.run_disk();
    assert_eq!(h.node.last_index(), 3);
    assert_eq!(h.node.term_at(2), Some(2));
    // Restarting from the disk keeps exactly the new suffix.
    let h = Harness::with_files(2, 3, h.files);
    assert_eq!(h.node.last_index(), 3);
    assert_eq!(h.node.term_at(2), Some(2));
}

// A byte flipped on its way from the disk during recovery is not damage on the disk: recovery
// reads the file again instead of cutting entries this voter acknowledged as durable (or
// falling back to an older vote), and leaves the files as they were.
#[test]
fn recovery_reads_again_what_arrived_damaged() {
    let mut h = Harness::new(2, 3);
    let entries = (1..=3)
        .map(|index| Entry {
            index,
            term: 1,
            payload: Payload::Command(Bytes::from(vec![index as u8; 40])),
        })
        .collect();
    let append = Message::AppendEntries {
        term: 1,
        prev_log_index: 0,
        prev_log_term: 0,
        entries,
        leader_commit: 1,
        sent_at: 1,
    };
    h.message(1, append);
    h.run_disk();
    assert_eq!(h.node.last_index(), 3);
    let files = h.files.clone();
    let log_len = files["raft/log"].len();
    let vote_slot = files
        .keys()
        .find(|f| f.starts_with("raft/vote"))
        .expect("a vote slot")
        .clone();
    let flips = vec![("raft/log".to_string(), log_len / 3), (vote_slot, 4)];
    let h = Harness::with_flipped_reads(2, 3, files.clone(), flips);
    assert_eq!(h.node.last_index(), 3);
    assert_eq!(h.node.term, 1);
    assert_eq!(h.node.voted_for, None);
    assert_eq!(h.files, files);
}

// A refusal answers at once only when it refuses the latest request sent to that follower; a
// duplicated or late refusal waits for the heartbeat. Answering every copy would start one
// more exchange per duplicate, and exchanges never end while the follower keeps refusing.
#[test]
fn only_a_refusal_of_the_latest_request_is_answered_at_once() {
    let mut h = Harness::leader_of_three();
    h.run_disk();
    h.advance(1);
    let outputs = h.input(RaftInput::Propose {
        id: 7,
        command: Bytes::from_static(b"create topic"),
    });
    assert_eq!(sends(&outputs).len(), 2);
    h.run_disk();
    let refusal = Message::AppendEntriesResponse {
        term: 1,
        success: false,
        match_index: 0,
        sent_at: h.now.0,
    };
    h.advance(1);
    let outputs = h.message(2, refusal.clone());
    assert!(
        matches!(
            sends(&outputs)[..],
            [(
                2,
                Message::AppendEntries {
                    prev_log_index: 0,
                    ..
                }
            )]
        ),
        "{outputs:?}"
    );
    h.advance(1);
    assert!(sends(&h.message(2, refusal)).is_empty());
}

// A snapshot handed in by the owner compacts the log once durable, and a lagging follower is
// sent the snapshot instead of entries it no longer has.
#[test]
fn snapshot_compacts_and_is_installed_on_lagging_followers() {
    let mut h = Harness::leader_of_three();
    h.run_disk();
    for id in 0..3 {
        h.input(RaftInput::Propose {
            id,
            command: Bytes::from_static(b"c"),
        });
    }
    h.run_disk();
    let ack = Message::AppendEntriesResponse {
        term: 1,
        success: true,
        match_index: 4,
        sent_at: h.now.0,
    };
    h.message(2, ack);
    assert_eq!(h.node.applied_index(), 4);
    h.input(RaftInput::Snapshot {
        index: 3,
        data: Bytes::from_static(b"state@3"),
    });
    h.run_disk();
    assert_eq!(h.node.log_base, 3);
    h.advance(20);
    let outputs = h.input(RaftInput::Timeout);
    let install = Message::InstallSnapshot {
        term: 1,
        last_index: 3,
        last_term: 1,
        data: Bytes::from_static(b"state@3"),
        sent_at: h.now.0,
    };
    assert!(
        sends(&outputs).contains(&(3, install.clone())),
        "{outputs:?}"
    );
    // The follower side: install, restore the state machine, acknowledge once durable.
    let mut f = Harness::new(3, 3);
    let outputs = f.message(1, install);
    assert!(outputs.contains(&RaftOutput::RestoreSnapshot {
        index: 3,
        term: 1,
        data: Bytes::from_static(b"state@3"),
    }));
    let outputs = f.run_disk();
    let done = Message::InstallSnapshotResponse {
        term: 1,
        last_index: 3,
        sent_at: h.now.0,
    };
    assert_eq!(sends(&outputs)[0], (1, done));
    let f = Harness::with_files(3, 3, f.files);
    assert_eq!((f.node.commit_index(), f.node.last_index()), (3, 3));
}

fn arb_entry() -> impl Strategy<Value = Entry> {
    (
        0u64..8,
        0u64..4,
        prop::option::of(prop::collection::vec(any::<u8>(), 0..4)),
    )
        .prop_map(|(index, term, command)| Entry {
            index,
            term,
            payload: command.map_or(Payload::Noop, |c| Payload::Command(Bytes::from(c))),
        })
}

fn arb_message() -> impl Strategy<Value = Message> {
    let small = 0u64..8;
    prop_oneof![
        (small.clone(), small.clone(), small.clone()).prop_map(|(t, i, lt)| Message::PreVote {
            term: t,
            last_log_index: i,
            last_log_term: lt
        }),
        (small.clone(), small.clone(), any::<bool>()).prop_map(|(t, c, g)| {
            Message::PreVoteResponse {
                term: t,
                current_term: c,
                granted: g,
            }
        }),
        (small.clone(), small.clone(), small.clone()).prop_map(|(t, i, lt)| Message::Vote {
            term: t,
            last_log_index: i,
            last_log_term: lt
        }),
        (small.clone(), any::<bool>()).prop_map(|(t, g)| Message::VoteResponse {
            term: t,
            granted: g
        }),
        (
            small.clone(),
            small.clone(),
            small.clone(),
            prop::collection::vec(arb_entry(), 0..4),
            small.clone()
        )
            .prop_map(|(t, p, pt, e, c)| Message::AppendEntries {
                term: t,
                prev_log_index: p,
                prev_log_term: pt,
                entries: e,
                leader_commit: c,
                sent_at: 0
            }),
        (small.clone(), any::<bool>(), small.clone()).prop_map(|(t, s, m)| {
            Message::AppendEntriesResponse {
                term: t,
                success: s,
                match_index: m,
                sent_at: 0,
            }
        }),
        (small.clone(), small.clone(), small.clone()).prop_map(|(t, i, lt)| {
            Message::InstallSnapshot {
                term: t,
                last_index: i,
                last_term: lt,
                data: Bytes::from_static(b"s"),
                sent_at: 0,
            }
        }),
        (small.clone(), small).prop_map(|(t, i)| Message::InstallSnapshotResponse {
            term: t,
            last_index: i,
            sent_at: 0
        }),
    ]
}

proptest! {
    // Any sequence of messages from any sender — stale, malformed, contradictory — leaves the
    // voter running: it ignores or answers them and its invariants hold (bad input never
    // panics a controller), and every message survives a postcard round trip unchanged.
    #[test]
    fn arbitrary_messages_never_panic(
        steps in prop::collection::vec((0u32..5, arb_message(), 0u64..50, any::<bool>()), 1..60)
    ) {
        let mut h = Harness::new(1, 3);
        for (from, message, ms, flush) in steps {
            let bytes = postcard::to_allocvec(&message).expect("encodes");
            let decoded: Message = postcard::from_bytes(&bytes).expect("decodes");
            prop_assert_eq!(&decoded, &message);
            h.advance(ms);
            h.message(from, message);
            if flush {
                h.run_disk();
            }
            if h.node.poll_timeout().is_some_and(|t| t <= h.now) {
                h.input(RaftInput::Timeout);
            }
            h.run_disk();
        }
    }
}
