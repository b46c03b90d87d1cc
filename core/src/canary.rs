//! Planted bugs, switched on by name, that the simulator must catch.
//!
//! A canary measures the checker's power: if the simulator cannot find a bug we planted on
//! purpose, it cannot be trusted to find the ones we did not. Canaries exist only when the
//! `canary` cargo feature is on; without it [`Canaries::is_on`] is a constant `false` and every
//! planted branch compiles away.

/// A planted bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Canary {
    /// Recovery trusts every batch without checking its CRC.
    RecoverySkipsCrc = 0,
    /// Recovery keeps a torn batch at the end of the log instead of truncating it.
    RecoveryKeepsTornTail = 1,
    /// A controller voter grants a second vote in a term it already voted in.
    RaftVotesTwiceInATerm = 2,
    /// A controller leader commits an entry once its own copy is durable, without a majority.
    RaftCommitsWithoutMajority = 3,
    /// A controller leader answers reads without a valid lease.
    RaftReadsWithoutLease = 4,
    /// The active controller elects the first live replica as leader even when it is not in
    /// the ISR (an unclean election the topic did not allow).
    ControllerElectsOutsideIsr = 5,
    /// A partition leader acknowledges acks=all once its own copy is durable, before the ISR
    /// has the batch.
    AckBeforeIsr = 6,
    /// A partition leader computes the high watermark from every follower that reported,
    /// ignoring ISR members it has not heard from in its epoch.
    HwFromAllReplicas = 7,
    /// A partition leader never reports a divergence, so followers keep what the new leader
    /// does not have.
    SkipFollowerTruncation = 8,
    /// A partition leader serves followers that still follow an older leader epoch.
    AcceptStaleLeaderEpoch = 9,
    /// A controller voter takes AppendEntries from a leader of an older epoch (KRaft's leader
    /// epoch is the Raft term) instead of refusing it.
    RaftAcceptsStaleLeaderEpoch = 10,
}

impl Canary {
    /// Every canary, for listing and sweeps.
    pub const ALL: [Canary; 11] = [
        Canary::RecoverySkipsCrc,
        Canary::RecoveryKeepsTornTail,
        Canary::RaftVotesTwiceInATerm,
        Canary::RaftCommitsWithoutMajority,
        Canary::RaftReadsWithoutLease,
        Canary::ControllerElectsOutsideIsr,
        Canary::AckBeforeIsr,
        Canary::HwFromAllReplicas,
        Canary::SkipFollowerTruncation,
        Canary::AcceptStaleLeaderEpoch,
        Canary::RaftAcceptsStaleLeaderEpoch,
    ];

    /// The canary's name, as given on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Canary::RecoverySkipsCrc => "recovery-skips-crc",
            Canary::RecoveryKeepsTornTail => "recovery-keeps-torn-tail",
            Canary::RaftVotesTwiceInATerm => "raft-votes-twice-in-a-term",
            Canary::RaftCommitsWithoutMajority => "raft-commits-without-majority",
            Canary::RaftReadsWithoutLease => "raft-reads-without-lease",
            Canary::ControllerElectsOutsideIsr => "controller-elects-outside-isr",
            Canary::AckBeforeIsr => "ack-before-isr",
            Canary::HwFromAllReplicas => "hw-from-all-replicas",
            Canary::SkipFollowerTruncation => "skip-follower-truncation",
            Canary::AcceptStaleLeaderEpoch => "accept-stale-leader-epoch",
            Canary::RaftAcceptsStaleLeaderEpoch => "raft-accepts-stale-leader-epoch",
        }
    }

    /// Looks a canary up by name.
    pub fn from_name(name: &str) -> Option<Canary> {
        Canary::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// The set of canaries switched on for one state machine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Canaries(u64);

impl Canaries {
    /// No canary on.
    pub const NONE: Canaries = Canaries(0);

    /// This set plus `canary`.
    pub fn with(self, canary: Canary) -> Canaries {
        Canaries(self.0 | 1 << canary as u64)
    }

    /// True if `canary` is on. Always false without the `canary` feature.
    #[inline(always)]
    pub fn is_on(self, canary: Canary) -> bool {
        cfg!(feature = "canary") && self.0 & (1 << canary as u64) != 0
    }
}
