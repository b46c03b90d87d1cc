//! Property tests: random sequences of client actions, crashes, time, append outcomes and
//! coordinator moves, checked against simple models of clients and of the committed log.
//!
//! The clients are models of well-behaved Kafka consumers (they follow the protocol's answers)
//! that may crash, restart and leave; everything around them misbehaves: appends fail or stay
//! pending, time jumps, and the coordinator moves (it resigns and a new one loads exactly what
//! the log committed). After the random phase every pending append is committed, faults stop,
//! and the live clients must settle the group within a bound of simulated time.

use super::consumer::{answer_of, Beat};
use super::*;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::protocol::StrBytes;
use proptest::prelude::*;

const NONE: i16 = 0;

/// What can go wrong with an append.
fn append_error() -> impl Strategy<Value = AppendError> {
    prop_oneof![
        Just(AppendError::NotLeader),
        Just(AppendError::NotEnoughReplicas),
        Just(AppendError::TimedOut),
        Just(AppendError::Storage),
    ]
}

/// Faults and time shared by both protocols' tests.
#[derive(Clone, Debug)]
enum World {
    Advance(u64),
    Move,
    Ack(usize),
    Fail(AppendError),
    AutoAck(bool),
}

fn world() -> impl Strategy<Value = World> {
    prop_oneof![
        3 => (100u64..20_000).prop_map(World::Advance),
        1 => Just(World::Move),
        3 => (1usize..4).prop_map(World::Ack),
        1 => append_error().prop_map(World::Fail),
        1 => any::<bool>().prop_map(World::AutoAck),
    ]
}

impl Harness {
    fn world(&mut self, op: &World) {
        match op {
            World::Advance(ms) => self.advance(*ms),
            World::Move => self.move_coordinator(0),
            World::Ack(n) => (0..*n).for_each(|_| {
                self.ack();
            }),
            World::Fail(error) => {
                if !self.appends.is_empty() {
                    self.fail(*error);
                }
            }
            World::AutoAck(on) => {
                self.auto_ack = *on;
                if *on {
                    self.ack_all();
                }
            }
        }
    }

    /// Faults stop: everything pending commits and every later append commits at once.
    fn calm(&mut self) {
        self.auto_ack = true;
        self.ack_all();
    }
}

// ---- classic ----

/// A request a classic client waits on.
#[derive(Clone, Copy, Debug)]
enum Waiting {
    Join,
    Sync(i32),
    Heartbeat,
}

/// A classic consumer as a Kafka client behaves: one request at a time.
#[derive(Clone, Debug, Default)]
struct Classic {
    alive: bool,
    member_id: String,
    generation: i32,
    synced: i32,
    must_join: bool,
    leader_of: Vec<String>,
    pending: Option<(Token, Waiting)>,
}

impl Classic {
    fn fresh() -> Classic {
        Classic {
            alive: true,
            must_join: true,
            ..Classic::default()
        }
    }
}

#[derive(Clone, Debug)]
enum ClassicOp {
    Act(usize),
    Crash(usize),
    Restart(usize),
    Leave(usize),
    Commit(i32),
    Reset(i32),
    Fetch(i32),
    World(World),
}

fn classic_op() -> impl Strategy<Value = ClassicOp> {
    prop_oneof![
        8 => (0usize..3).prop_map(ClassicOp::Act),
        1 => (0usize..3).prop_map(ClassicOp::Crash),
        1 => (0usize..3).prop_map(ClassicOp::Restart),
        1 => (0usize..3).prop_map(ClassicOp::Leave),
        3 => (0i32..2).prop_map(ClassicOp::Commit),
        1 => (0i32..2).prop_map(ClassicOp::Reset),
        2 => (0i32..2).prop_map(ClassicOp::Fetch),
        5 => world().prop_map(ClassicOp::World),
    ]
}

/// The classic test's state: clients, what each generation's leader saw and assigned, and
/// the offsets model.
struct ClassicRun {
    h: Harness,
    clients: Vec<Classic>,
    /// Generation → members in the leader's JoinGroup answer.
    members_of: BTreeMap<i32, BTreeSet<String>>,
    /// Generation → member → assignment the leader sent.
    assigned: BTreeMap<i32, BTreeMap<String, Vec<u8>>>,
    /// Highest offset sent per partition (resets go below it, never move it).
    next_offset: [i64; 2],
    /// Commits in flight: token → (partition, offset).
    commits: BTreeMap<Token, (i32, i64)>,
    /// Last fetched offset per partition, and how many of its log records had been seen.
    last_fetched: [i64; 2],
    seen: [usize; 2],
}

impl ClassicRun {
    fn new() -> ClassicRun {
        ClassicRun {
            h: Harness::new(config()),
            clients: vec![Classic::fresh(); 3],
            members_of: BTreeMap::new(),
            assigned: BTreeMap::new(),
            next_offset: [0, 0],
            commits: BTreeMap::new(),
            last_fetched: [-1, -1],
            seen: [0, 0],
        }
    }

    fn apply(&mut self, op: &ClassicOp) {
        match op {
            ClassicOp::Act(c) => self.act(*c),
            ClassicOp::Crash(c) => self.clients[*c].alive = false,
            ClassicOp::Restart(c) => {
                if !self.clients[*c].alive {
                    self.clients[*c] = Classic::fresh();
                }
            }
            ClassicOp::Leave(c) => self.leave(*c),
            ClassicOp::Commit(p) => self.commit(*p, false),
            ClassicOp::Reset(p) => self.commit(*p, true),
            ClassicOp::Fetch(p) => self.check_fetch(*p),
            ClassicOp::World(w) => self.h.world(w),
        }
        self.collect();
    }

    /// The client's next protocol step.
    fn act(&mut self, c: usize) {
        let client = &self.clients[c];
        if !client.alive || client.pending.is_some() {
            return;
        }
        let member = client.member_id.clone();
        let gen = client.generation;
        let pending = if client.must_join {
            (self.h.join(5, &JoinSpec::new("g", &member)), Waiting::Join)
        } else if client.synced < gen {
            let assignments: Vec<(String, Vec<u8>)> = client
                .leader_of
                .iter()
                .map(|m| (m.clone(), format!("{gen}:{m}").into_bytes()))
                .collect();
            let refs: Vec<(&str, &[u8])> = assignments
                .iter()
                .map(|(m, a)| (m.as_str(), a.as_slice()))
                .collect();
            if !assignments.is_empty() {
                let entry = self.assigned.entry(gen).or_default();
                entry.extend(assignments.iter().cloned());
            }
            (self.h.sync("g", gen, &member, &refs), Waiting::Sync(gen))
        } else {
            (
                self.h.send_heartbeat("g", gen, &member, None),
                Waiting::Heartbeat,
            )
        };
        self.clients[c].pending = Some(pending);
    }

    fn on_error(&mut self, c: usize, code: i16) {
        let client = &mut self.clients[c];
        match code {
            NONE => {}
            27 | 22 => client.must_join = true,
            25 | 82 => {
                client.must_join = true;
                client.member_id.clear();
            }
            _ => {} // Coordinator errors: retry the same step later.
        }
    }

    fn leave(&mut self, c: usize) {
        let client = &self.clients[c];
        if !client.alive || client.member_id.is_empty() {
            return;
        }
        let request = LeaveGroupRequest::default()
            .with_group_id(gid("g"))
            .with_members(vec![
                MemberIdentity::default().with_member_id(sb(&client.member_id))
            ]);
        self.h.send(3, GroupRequestBody::LeaveGroup(request));
        self.clients[c] = Classic::default();
    }

    /// Commits an offset of partition `p` above every one sent before, or (an explicit reset)
    /// half of the highest; a reset carries the metadata "reset" so the log shows where the
    /// offset may drop.
    fn commit(&mut self, p: i32, reset: bool) {
        let i = p as usize;
        let offset = if reset {
            self.next_offset[i] / 2
        } else {
            self.next_offset[i] += 1;
            self.next_offset[i]
        };
        let metadata = if reset { "reset" } else { "" };
        let partition = OffsetCommitRequestPartition::default()
            .with_partition_index(p)
            .with_committed_offset(offset)
            .with_committed_metadata(Some(sb(metadata)));
        let request = OffsetCommitRequest::default()
            .with_group_id(gid("simple"))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(sb("t")))
                .with_partitions(vec![partition])]);
        let token = self.h.send(7, GroupRequestBody::OffsetCommit(request));
        self.commits.insert(token, (p, offset));
    }

    /// Processes every answer that arrived, checking what each one may say.
    fn collect(&mut self) {
        let tokens: Vec<Token> = self.h.answers.keys().copied().collect();
        for token in tokens {
            if let Some((p, offset)) = self.commits.remove(&token) {
                if self.h.commit_codes(token) == [NONE] {
                    // acks=all: a successful commit is in the committed log.
                    let logged = log_offsets(&self.h, "simple", p)
                        .iter()
                        .any(|(o, _)| *o == offset);
                    assert!(logged, "acknowledged commit not in the log");
                }
                continue;
            }
            let owner = self
                .clients
                .iter()
                .position(|c| c.pending.map(|p| p.0) == Some(token));
            let Some(c) = owner else {
                self.h.take(token); // A leave, or an answer to a crashed client.
                continue;
            };
            let (_, waiting) = self.clients[c].pending.take().expect("matched above");
            if !self.clients[c].alive {
                self.h.take(token);
                continue;
            }
            match waiting {
                Waiting::Join => {
                    let answer = self.h.join_answer(token);
                    self.on_join(c, answer);
                }
                Waiting::Sync(gen) => {
                    let answer = self.h.sync_answer(token);
                    self.on_sync(c, gen, answer);
                }
                Waiting::Heartbeat => {
                    let code = self.h.heartbeat_code(token);
                    self.on_error(c, code);
                }
            }
        }
    }

    fn on_join(&mut self, c: usize, answer: JoinGroupResponse) {
        let code = answer.error_code;
        let client = &mut self.clients[c];
        match code {
            79 => client.member_id = answer.member_id.as_str().to_owned(),
            NONE => {
                client.member_id = answer.member_id.as_str().to_owned();
                client.generation = answer.generation_id;
                client.must_join = false;
                client.leader_of = answer
                    .members
                    .iter()
                    .map(|m| m.member_id.as_str().to_owned())
                    .collect();
                if answer.leader.as_str() == client.member_id && !client.leader_of.is_empty() {
                    let members = client.leader_of.iter().cloned().collect();
                    self.members_of.insert(answer.generation_id, members);
                    self.assigned.remove(&answer.generation_id);
                }
            }
            _ => self.on_error(c, code),
        }
    }

    /// Property (a): a SyncGroup answer for generation g goes only to a member of g, with what
    /// g's leader assigned it (or nothing).
    fn on_sync(&mut self, c: usize, gen: i32, answer: SyncGroupResponse) {
        if answer.error_code != NONE {
            return self.on_error(c, answer.error_code);
        }
        let member = self.clients[c].member_id.clone();
        let members = self
            .members_of
            .get(&gen)
            .expect("a generation's leader was answered");
        assert!(
            members.contains(&member),
            "{member} got generation {gen}'s assignment but is not in it: {members:?}"
        );
        if !answer.assignment.is_empty() {
            let sent = self.assigned.get(&gen).and_then(|a| a.get(&member));
            assert_eq!(
                Some(answer.assignment.as_ref()),
                sent.map(Vec::as_slice),
                "not the leader's assignment"
            );
        }
        self.clients[c].synced = gen;
    }

    /// Property (b): a fetched offset is the latest committed value in the log, and never goes
    /// backwards unless an explicit reset was committed since the last fetch.
    fn check_fetch(&mut self, p: i32) {
        let i = p as usize;
        let Ok((offset, _, _, code)) = self.h.fetch("simple", "t", p, false) else {
            return; // The coordinator is loading or moved: no answer to check.
        };
        assert_eq!(code, NONE);
        let log = log_offsets(&self.h, "simple", p);
        let expected = log.last().map_or(-1, |(offset, _)| *offset);
        assert_eq!(
            offset, expected,
            "partition {p}: fetched {offset}, the log says {expected}"
        );
        let reset = log[self.seen[i]..].iter().any(|(_, reset)| *reset);
        assert!(
            offset >= self.last_fetched[i] || reset,
            "offset went backwards without a reset"
        );
        self.last_fetched[i] = offset;
        self.seen[i] = log.len();
    }

    /// Property (c): once faults stop, the live clients settle within a bound.
    fn converge(&mut self) {
        self.h.calm();
        self.collect();
        for _ in 0..240 {
            for c in 0..self.clients.len() {
                self.act(c);
                self.collect();
            }
            if self.settled() {
                self.check_fetch(0);
                self.check_fetch(1);
                return;
            }
            self.h.advance(1_000);
            self.collect();
        }
        panic!(
            "not settled after 240 s: {:?} {:?}",
            self.h.c.group_summary("g"),
            self.clients
        );
    }

    fn settled(&self) -> bool {
        let live: BTreeSet<&String> = self
            .clients
            .iter()
            .filter(|c| c.alive)
            .map(|c| &c.member_id)
            .collect();
        let Some(summary) = self.h.c.group_summary("g") else {
            return live.is_empty();
        };
        if live.is_empty() {
            return summary.members.is_empty();
        }
        let members: BTreeSet<&String> = summary.members.iter().collect();
        summary.state == "Stable"
            && members == live
            && self
                .clients
                .iter()
                .filter(|c| c.alive)
                .all(|c| c.synced == summary.epoch && c.pending.is_none())
    }
}

/// The committed values of one offset in log order, each with whether it was a reset
/// (tombstones read as -1).
fn log_offsets(h: &Harness, group: &str, partition: i32) -> Vec<(i64, bool)> {
    let mut values = Vec::new();
    for record in h.log.values().flatten() {
        if let Ok(Record::OffsetCommit {
            group: g,
            topic,
            partition: p,
            value,
        }) = Record::decode(record)
        {
            if g == group && topic == "t" && p == partition {
                values.push(value.map_or((-1, false), |v| (v.offset, v.metadata == "reset")));
            }
        }
    }
    values
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    // Classic protocol under failing appends, time jumps and coordinator moves: (a) no member
    // outside generation g ever gets g's assignment, (b) a committed offset is exactly the
    // log's latest value, never goes back without a reset, and survives every move, (c) the
    // group settles once faults stop.
    #[test]
    fn classic_groups_fence_generations_keep_offsets_and_converge(
        ops in proptest::collection::vec(classic_op(), 1..80),
    ) {
        let mut run = ClassicRun::new();
        for op in &ops {
            run.apply(op);
        }
        run.converge();
    }
}

// ---- KIP-848 ----

/// A KIP-848 consumer as a Kafka client behaves: it takes newly assigned partitions at once,
/// but gives up revoked ones only when it has finished with them (a separate step, as a real
/// consumer commits and runs its callbacks first), reporting them as owned until then.
#[derive(Clone, Debug, Default)]
struct Modern {
    alive: bool,
    member_id: String,
    epoch: i32,
    owned: Assignment,
    /// The last assignment the coordinator sent.
    target: Assignment,
    joined: bool,
    pending: Option<Token>,
    incarnation: u32,
}

#[derive(Clone, Debug)]
enum ModernOp {
    Act(usize),
    Revoke(usize),
    Crash(usize),
    Restart(usize),
    Leave(usize),
    Grow,
    World(World),
}

fn modern_op() -> impl Strategy<Value = ModernOp> {
    prop_oneof![
        10 => (0usize..3).prop_map(ModernOp::Act),
        3 => (0usize..3).prop_map(ModernOp::Revoke),
        1 => (0usize..3).prop_map(ModernOp::Crash),
        1 => (0usize..3).prop_map(ModernOp::Restart),
        1 => (0usize..3).prop_map(ModernOp::Leave),
        1 => Just(ModernOp::Grow),
        5 => world().prop_map(ModernOp::World),
    ]
}

struct ModernRun {
    h: Harness,
    clients: Vec<Modern>,
    partitions: i32,
}

impl ModernRun {
    fn new() -> ModernRun {
        let mut h = Harness::new(config());
        h.topics(&[("t", 1, 4)]);
        let clients = (0..3)
            .map(|c| Modern {
                alive: true,
                member_id: format!("c{c}-0"),
                ..Modern::default()
            })
            .collect();
        ModernRun {
            h,
            clients,
            partitions: 4,
        }
    }

    fn apply(&mut self, op: &ModernOp) {
        match op {
            ModernOp::Act(c) => self.act(*c),
            ModernOp::Revoke(c) => self.revoke(*c),
            ModernOp::Crash(c) => self.clients[*c].alive = false,
            ModernOp::Restart(c) => {
                if !self.clients[*c].alive {
                    self.rejoin(*c);
                    self.clients[*c].alive = true;
                }
            }
            ModernOp::Leave(c) => self.leave(*c),
            ModernOp::Grow => {
                self.partitions = (self.partitions + 1).min(8);
                self.h.topics(&[("t", 1, self.partitions)]);
            }
            ModernOp::World(w) => self.h.world(w),
        }
        self.collect();
        self.check_ownership();
    }

    /// A fenced or restarted client joins again under a new member id.
    fn rejoin(&mut self, c: usize) {
        let client = &mut self.clients[c];
        client.incarnation += 1;
        client.member_id = format!("c{c}-{}", client.incarnation);
        client.epoch = 0;
        client.owned.clear();
        client.target.clear();
        client.joined = false;
    }

    /// The client has finished with the partitions it was told to give up.
    fn revoke(&mut self, c: usize) {
        let client = &mut self.clients[c];
        let target = &client.target;
        client.owned.retain(|t, ps| {
            ps.retain(|p| target.get(t).is_some_and(|tp| tp.contains(p)));
            !ps.is_empty()
        });
    }

    fn act(&mut self, c: usize) {
        let client = &self.clients[c];
        if !client.alive || client.pending.is_some() {
            return;
        }
        let beat = if client.joined {
            Beat::at("g", &client.member_id, client.epoch, client.owned.clone())
        } else {
            Beat::join("g", &client.member_id, &["t"])
        };
        let token = self
            .h
            .send(1, GroupRequestBody::ConsumerGroupHeartbeat(beat.request()));
        self.clients[c].pending = Some(token);
    }

    fn leave(&mut self, c: usize) {
        let client = &self.clients[c];
        if !client.alive || !client.joined || client.pending.is_some() {
            return;
        }
        let beat = Beat::at("g", &client.member_id, -1, Assignment::new());
        let token = self
            .h
            .send(1, GroupRequestBody::ConsumerGroupHeartbeat(beat.request()));
        self.h.take_or_keep(token);
        self.clients[c].alive = false;
        self.clients[c].owned.clear();
    }

    fn collect(&mut self) {
        for c in 0..self.clients.len() {
            let Some(token) = self.clients[c].pending else {
                continue;
            };
            if !self.h.answered(token) {
                continue;
            }
            self.clients[c].pending = None;
            let (code, _, epoch, assignment) = answer_of(self.h.take(token));
            let client = &mut self.clients[c];
            if !client.alive {
                continue;
            }
            match code {
                NONE => {
                    client.joined = true;
                    client.epoch = epoch;
                    if let Some(assignment) = assignment {
                        for (t, ps) in &assignment {
                            client.owned.entry(*t).or_default().extend(ps);
                        }
                        client.target = assignment;
                    }
                }
                110 | 25 => self.rejoin(c),
                _ => {} // Coordinator errors: retry later.
            }
        }
        // Leaves answered after their client stopped.
        let stray: Vec<Token> = self.h.answers.keys().copied().collect();
        for token in stray {
            if !self.clients.iter().any(|c| c.pending == Some(token)) {
                self.h.take(token);
            }
        }
    }

    /// Property (a): no partition has two owners, at the coordinator (revocations not yet
    /// acknowledged count as owned) and among the clients it has as members, whose partitions
    /// are always within what the coordinator counts as theirs.
    fn check_ownership(&self) {
        let ownership = self.h.c.consumer_ownership("g").unwrap_or_default();
        let mut seen = BTreeSet::new();
        for (member, owned) in &ownership {
            for (t, ps) in owned {
                for p in ps {
                    assert!(
                        seen.insert((*t, *p)),
                        "{t}-{p} owned twice at the coordinator: {member}"
                    );
                }
            }
        }
        for client in self.clients.iter().filter(|c| c.alive) {
            let Some(theirs) = ownership.get(&client.member_id) else {
                continue; // A fenced zombie: it learns on its next heartbeat.
            };
            for (t, ps) in &client.owned {
                let counted = theirs.get(t).cloned().unwrap_or_default();
                assert!(
                    ps.is_subset(&counted),
                    "{} owns {ps:?} of {t}, the coordinator counts {counted:?}",
                    client.member_id
                );
            }
        }
    }

    /// Property (c): once faults stop, live members reconcile to a complete, disjoint
    /// assignment within a bound.
    fn converge(&mut self) {
        self.h.calm();
        for _ in 0..150 {
            for c in 0..self.clients.len() {
                self.revoke(c);
                self.act(c);
                self.collect();
                self.check_ownership();
            }
            if self.settled() {
                return;
            }
            self.h.advance(1_000);
            self.collect();
        }
        panic!(
            "not settled after 150 s: {:?} {:?}",
            self.h.c.group_summary("g"),
            self.clients
        );
    }

    fn settled(&self) -> bool {
        let live: Vec<&Modern> = self.clients.iter().filter(|c| c.alive).collect();
        let summary = self.h.c.group_summary("g");
        let members: BTreeSet<String> = summary.iter().flat_map(|s| s.members.clone()).collect();
        let ids: BTreeSet<String> = live.iter().map(|c| c.member_id.clone()).collect();
        if live.is_empty() || members != ids || summary.map(|s| s.state) != Some("Stable") {
            return live.is_empty() && members.is_empty();
        }
        let ownership = self.h.c.consumer_ownership("g").unwrap_or_default();
        let total: usize = live
            .iter()
            .map(|c| c.owned.values().map(BTreeSet::len).sum::<usize>())
            .sum();
        live.iter()
            .all(|c| ownership.get(&c.member_id) == Some(&c.owned))
            && total == self.partitions as usize
    }
}

impl Harness {
    /// Takes an answer if it is there (a leave may wait behind appends).
    fn take_or_keep(&mut self, token: Token) {
        self.answers.remove(&token);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    // KIP-848 under failing appends, time jumps, topic growth and coordinator moves: (a) at
    // no moment do two members own a partition, counting unacknowledged revocations, and no
    // client owns what the coordinator does not count as its own; (c) live members converge to
    // a complete assignment once faults stop.
    #[test]
    fn consumer_groups_never_share_a_partition_and_converge(
        ops in proptest::collection::vec(modern_op(), 1..80),
    ) {
        let mut run = ModernRun::new();
        for op in &ops {
            run.apply(op);
        }
        run.converge();
    }
}

// The same seed and inputs give the same outputs: a coordinator run is a replayable trace.
#[test]
fn same_inputs_same_outputs() {
    let trace = || {
        let mut run = ModernRun::new();
        for c in [0, 1, 2, 0, 1, 2] {
            run.apply(&ModernOp::Act(c));
            run.apply(&ModernOp::World(World::Advance(2_000)));
        }
        (
            run.h.log.clone(),
            run.clients
                .iter()
                .map(|c| c.owned.clone())
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(trace(), trace());
}

// ---- arbitrary requests ----

/// A request with fields drawn from small sets, so requests often meet each other's groups
/// and members, and often make no sense.
#[derive(Clone, Debug)]
enum Wild {
    Join {
        version: i16,
        group: u8,
        member: u8,
        instance: u8,
        session: i32,
        rebalance: i32,
        protocols: u8,
        kind: u8,
    },
    Sync {
        version: i16,
        group: u8,
        member: u8,
        generation: i32,
        assign: u8,
    },
    Heartbeat {
        version: i16,
        group: u8,
        member: u8,
        generation: i32,
        instance: u8,
    },
    Leave {
        version: i16,
        group: u8,
        members: Vec<(u8, u8)>,
    },
    Commit {
        version: i16,
        group: u8,
        member: u8,
        generation: i32,
        partition: i32,
        metadata: usize,
    },
    Fetch {
        version: i16,
        group: u8,
        all: bool,
        stable: bool,
    },
    List {
        version: i16,
        filter: u8,
    },
    Describe {
        version: i16,
        group: u8,
    },
    Delete {
        version: i16,
        group: u8,
    },
    OffsetDelete {
        group: u8,
        topic: u8,
    },
    Beat {
        version: i16,
        group: u8,
        member: u8,
        epoch: i32,
        instance: u8,
        topics: u8,
        owned: Vec<i32>,
        assignor: u8,
    },
    ConsumerDescribe {
        version: i16,
        group: u8,
    },
    World(World),
}

fn wild() -> impl Strategy<Value = Wild> {
    let small = || 0u8..4;
    prop_oneof![
        (
            0i16..=9,
            small(),
            small(),
            small(),
            prop::sample::select(vec![1_000, 6_000, 10_000, 60_000, 2_000_000]),
            prop::sample::select(vec![-1, 0, 5_000, 30_000]),
            small(),
            small()
        )
            .prop_map(
                |(version, group, member, instance, session, rebalance, protocols, kind)| {
                    Wild::Join {
                        version,
                        group,
                        member,
                        instance,
                        session,
                        rebalance,
                        protocols,
                        kind,
                    }
                }
            ),
        (0i16..=5, small(), small(), -1i32..4, small()).prop_map(
            |(version, group, member, generation, assign)| Wild::Sync {
                version,
                group,
                member,
                generation,
                assign
            }
        ),
        (0i16..=4, small(), small(), -1i32..4, small()).prop_map(
            |(version, group, member, generation, instance)| Wild::Heartbeat {
                version,
                group,
                member,
                generation,
                instance
            }
        ),
        (
            0i16..=5,
            small(),
            prop::collection::vec((small(), small()), 0..3)
        )
            .prop_map(|(version, group, members)| Wild::Leave {
                version,
                group,
                members
            }),
        (
            2i16..=9,
            small(),
            small(),
            -1i32..4,
            -1i32..3,
            prop::sample::select(vec![0usize, 10, 5_000])
        )
            .prop_map(
                |(version, group, member, generation, partition, metadata)| Wild::Commit {
                    version,
                    group,
                    member,
                    generation,
                    partition,
                    metadata
                }
            ),
        (1i16..=9, small(), any::<bool>(), any::<bool>()).prop_map(
            |(version, group, all, stable)| Wild::Fetch {
                version,
                group,
                all,
                stable
            }
        ),
        (0i16..=5, small()).prop_map(|(version, filter)| Wild::List { version, filter }),
        (0i16..=6, small()).prop_map(|(version, group)| Wild::Describe { version, group }),
        (0i16..=2, small()).prop_map(|(version, group)| Wild::Delete { version, group }),
        (small(), small()).prop_map(|(group, topic)| Wild::OffsetDelete { group, topic }),
        (
            0i16..=1,
            small(),
            small(),
            -3i32..4,
            small(),
            small(),
            prop::collection::vec(-1i32..5, 0..3),
            small()
        )
            .prop_map(
                |(version, group, member, epoch, instance, topics, owned, assignor)| Wild::Beat {
                    version,
                    group,
                    member,
                    epoch,
                    instance,
                    topics,
                    owned,
                    assignor
                }
            ),
        (0i16..=1, small()).prop_map(|(version, group)| Wild::ConsumerDescribe { version, group }),
        world().prop_map(Wild::World),
    ]
}

/// Group ids: three valid, one empty.
fn wild_group(i: u8) -> &'static str {
    ["a", "b", "c", ""][usize::from(i) % 4]
}

struct WildRun {
    h: Harness,
    /// Member ids the coordinator handed out, to come back with.
    members: Vec<String>,
    sent: BTreeSet<Token>,
}

impl WildRun {
    fn member(&self, i: u8) -> String {
        match i {
            0 => String::new(),
            1 => "stranger".to_owned(),
            _ => self
                .members
                .get(usize::from(i) % self.members.len().max(1))
                .cloned()
                .unwrap_or_default(),
        }
    }

    fn instance(i: u8) -> Option<StrBytes> {
        [None, Some("i1"), Some("i2"), Some("")][usize::from(i) % 4].map(sb)
    }

    fn send(&mut self, version: i16, body: GroupRequestBody) {
        let token = self.h.send(version, body);
        self.sent.insert(token);
    }

    fn apply(&mut self, op: &Wild) {
        match op.clone() {
            Wild::Join {
                version,
                group,
                member,
                instance,
                session,
                rebalance,
                protocols,
                kind,
            } => {
                let names: &[(&str, &[u8])] = match protocols % 4 {
                    0 => &[],
                    1 => &[("range", b"x")],
                    2 => &[("rr", b"y")],
                    _ => &[("range", b"x"), ("rr", b"z")],
                };
                let spec = JoinSpec {
                    instance: None,
                    protocols: names
                        .iter()
                        .map(|(n, m)| (*n, Bytes::copy_from_slice(m)))
                        .collect(),
                    session_ms: session,
                    rebalance_ms: rebalance,
                    ..JoinSpec::new(wild_group(group), "")
                };
                let request = spec
                    .request()
                    .with_member_id(sb(&self.member(member)))
                    .with_group_instance_id(if version >= 5 {
                        Self::instance(instance)
                    } else {
                        None
                    })
                    .with_protocol_type(sb(
                        ["consumer", "connect", "", "consumer"][usize::from(kind) % 4]
                    ));
                self.send(version, GroupRequestBody::JoinGroup(request));
            }
            Wild::Sync {
                version,
                group,
                member,
                generation,
                assign,
            } => {
                let assignments = (0..assign)
                    .map(|i| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(sb(&self.member(i)))
                            .with_assignment(Bytes::from_static(b"a"))
                    })
                    .collect();
                let request = SyncGroupRequest::default()
                    .with_group_id(gid(wild_group(group)))
                    .with_generation_id(generation)
                    .with_member_id(sb(&self.member(member)))
                    .with_assignments(assignments);
                self.send(version, GroupRequestBody::SyncGroup(request));
            }
            Wild::Heartbeat {
                version,
                group,
                member,
                generation,
                instance,
            } => {
                let request = HeartbeatRequest::default()
                    .with_group_id(gid(wild_group(group)))
                    .with_generation_id(generation)
                    .with_member_id(sb(&self.member(member)))
                    .with_group_instance_id(if version >= 3 {
                        Self::instance(instance)
                    } else {
                        None
                    });
                self.send(version, GroupRequestBody::Heartbeat(request));
            }
            Wild::Leave {
                version,
                group,
                members,
            } => {
                let mut request =
                    LeaveGroupRequest::default().with_group_id(gid(wild_group(group)));
                if version >= 3 {
                    request.members = members
                        .iter()
                        .map(|(m, i)| {
                            MemberIdentity::default()
                                .with_member_id(sb(&self.member(*m)))
                                .with_group_instance_id(Self::instance(*i))
                        })
                        .collect();
                } else {
                    request.member_id = sb(&self.member(members.first().map_or(0, |m| m.0)));
                }
                self.send(version, GroupRequestBody::LeaveGroup(request));
            }
            Wild::Commit {
                version,
                group,
                member,
                generation,
                partition,
                metadata,
            } => {
                let p = OffsetCommitRequestPartition::default()
                    .with_partition_index(partition)
                    .with_committed_offset(7)
                    .with_committed_metadata(Some(StrBytes::from_string("m".repeat(metadata))));
                let request = OffsetCommitRequest::default()
                    .with_group_id(gid(wild_group(group)))
                    .with_generation_id_or_member_epoch(generation)
                    .with_member_id(sb(&self.member(member)))
                    .with_topics(vec![OffsetCommitRequestTopic::default()
                        .with_name(TopicName(sb("t")))
                        .with_partitions(vec![p])]);
                self.send(version, GroupRequestBody::OffsetCommit(request));
            }
            Wild::Fetch {
                version,
                group,
                all,
                stable,
            } => {
                let group = gid(wild_group(group));
                let mut request = OffsetFetchRequest::default();
                if version >= 8 {
                    let topics = (!all).then(|| {
                        vec![OffsetFetchRequestTopics::default()
                            .with_name(TopicName(sb("t")))
                            .with_partition_indexes(vec![0, 1])]
                    });
                    request.groups = vec![OffsetFetchRequestGroup::default()
                        .with_group_id(group)
                        .with_topics(topics)];
                } else {
                    request.group_id = group;
                    request.topics = (!all || version < 2).then(|| {
                        vec![OffsetFetchRequestTopic::default()
                            .with_name(TopicName(sb("t")))
                            .with_partition_indexes(vec![0])]
                    });
                }
                request.require_stable = stable && version >= 7;
                self.send(version, GroupRequestBody::OffsetFetch(request));
            }
            Wild::List { version, filter } => {
                let mut request = ListGroupsRequest::default();
                if version >= 4 && filter % 2 == 1 {
                    request.states_filter = vec![sb("stable"), sb("Empty")];
                }
                if version >= 5 && filter >= 2 {
                    request.types_filter = vec![sb("consumer")];
                }
                self.send(version, GroupRequestBody::ListGroups(request));
            }
            Wild::Describe { version, group } => {
                let request = DescribeGroupsRequest::default()
                    .with_groups(vec![gid(wild_group(group)), gid("a")]);
                self.send(version, GroupRequestBody::DescribeGroups(request));
            }
            Wild::Delete { version, group } => {
                let request = DeleteGroupsRequest::default()
                    .with_groups_names(vec![gid(wild_group(group)), gid("b")]);
                self.send(version, GroupRequestBody::DeleteGroups(request));
            }
            Wild::OffsetDelete { group, topic } => {
                let topic = kafka_protocol::messages::offset_delete_request::OffsetDeleteRequestTopic::default()
                    .with_name(TopicName(sb(["t", "u", "", "t"][usize::from(topic) % 4])))
                    .with_partitions(vec![kafka_protocol::messages::offset_delete_request::OffsetDeleteRequestPartition::default()]);
                let request = OffsetDeleteRequest::default()
                    .with_group_id(gid(wild_group(group)))
                    .with_topics(vec![topic]);
                self.send(0, GroupRequestBody::OffsetDelete(request));
            }
            Wild::Beat {
                version,
                group,
                member,
                epoch,
                instance,
                topics,
                owned,
                assignor,
            } => {
                let names: Option<&[&str]> =
                    [None, Some(&["t"][..]), Some(&["t", "u"][..]), Some(&[][..])]
                        [usize::from(topics) % 4];
                let owned = (!owned.is_empty())
                    .then(|| Assignment::from([(topic_id(1), owned.iter().copied().collect())]));
                let member = self.member(member);
                let beat = Beat {
                    group: wild_group(group),
                    member: &member,
                    epoch,
                    instance: [None, Some("i1"), Some("i2"), Some("")][usize::from(instance) % 4],
                    topics: names,
                    owned: owned.or_else(|| (epoch == 0).then(Assignment::new)),
                    rebalance_ms: if epoch == 0 { 30_000 } else { -1 },
                    assignor: [None, Some("uniform"), Some("range"), Some("sticky")]
                        [usize::from(assignor) % 4],
                };
                self.send(
                    version,
                    GroupRequestBody::ConsumerGroupHeartbeat(beat.request()),
                );
            }
            Wild::ConsumerDescribe { version, group } => {
                let request = ConsumerGroupDescribeRequest::default()
                    .with_group_ids(vec![gid(wild_group(group))]);
                self.send(version, GroupRequestBody::ConsumerGroupDescribe(request));
            }
            Wild::World(w) => self.h.world(&w),
        }
        self.harvest();
    }

    /// Remembers member ids the answers hand out.
    fn harvest(&mut self) {
        for body in self.h.answers.values() {
            let id = match body {
                ResponseKind::JoinGroup(r) => Some(r.member_id.as_str().to_owned()),
                ResponseKind::ConsumerGroupHeartbeat(r) => {
                    r.member_id.as_ref().map(|m| m.as_str().to_owned())
                }
                _ => None,
            };
            if let Some(id) = id.filter(|id| !id.is_empty() && !self.members.contains(id)) {
                self.members.push(id);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    // Requests of every group API, at every version, with fields that often make no sense,
    // mixed with failing appends, time jumps and coordinator moves: the coordinator must never
    // panic (its invariants run after every input), must answer every request exactly once
    // (the harness asserts the once), each answer must encode at its request's version, and
    // once faults stop nothing may stay parked for ever.
    #[test]
    fn arbitrary_requests_never_panic_and_are_all_answered(
        ops in proptest::collection::vec(wild(), 1..60),
    ) {
        let mut run = WildRun { h: Harness::new(config()), members: Vec::new(), sent: BTreeSet::new() };
        run.h.topics(&[("t", 1, 3), ("u", 2, 1)]);
        for op in &ops {
            run.apply(op);
        }
        run.h.calm();
        for _ in 0..40 {
            run.h.advance(30_000);
        }
        let answered: BTreeSet<Token> = run.h.answers.keys().copied().collect();
        let missing: Vec<&Token> = run.sent.difference(&answered).collect();
        prop_assert!(missing.is_empty(), "never answered: {:?}", missing);
    }
}
