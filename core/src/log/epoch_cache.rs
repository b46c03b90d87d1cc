//! The leader epoch cache: for each leader epoch that wrote to this log, the offset of its first
//! batch. It is Kafka's `LeaderEpochFileCache` (KIP-101, KIP-279): a follower that becomes
//! leader, or that follows a new leader, asks "where does my epoch end on the leader?" and
//! truncates there, so replicas never keep data that diverged in an epoch the leader did not
//! see.
//!
//! The cache is kept in memory only. Every batch carries its partition leader epoch, so recovery
//! rebuilds the cache from the batches it scans anyway; an entry a new leader records before it
//! appends anything is lost on restart, and the leader records it again when it resumes.

/// Epoch entries `(epoch, start_offset)`, strictly increasing in both.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EpochCache {
    entries: Vec<(i32, i64)>,
}

impl EpochCache {
    /// The entries, oldest first.
    pub fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }

    /// The newest epoch, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|(e, _)| *e)
    }

    /// Records that `epoch` wrote (or will write) its first batch at `start_offset`. An epoch
    /// already latest changes nothing; otherwise every entry that would break monotonicity
    /// (an epoch at or above `epoch`, or a start at or above `start_offset`) goes first, as
    /// Kafka's `assign` does for a leader that wrote nothing before the next one took over.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) {
        assert!(
            epoch >= 0 && start_offset >= 0,
            "epochs and offsets are non-negative"
        );
        if self.latest_epoch() == Some(epoch) {
            return;
        }
        while let Some(&(e, start)) = self.entries.last() {
            if e < epoch && start < start_offset {
                break;
            }
            self.entries.pop();
        }
        self.entries.push((epoch, start_offset));
        self.check();
    }

    /// Forgets every epoch that starts at or after `end_offset` (the log was truncated there).
    pub fn truncate_from_end(&mut self, end_offset: i64) {
        while self.entries.last().is_some_and(|(_, s)| *s >= end_offset) {
            self.entries.pop();
        }
    }

    /// The log now starts at `start_offset`: entries that start at or below it collapse into
    /// the last of them, which now starts at `start_offset` (Kafka's `truncateFromStart`).
    pub fn truncate_from_start(&mut self, start_offset: i64) {
        let below = self.entries.partition_point(|(_, s)| *s <= start_offset);
        if below == 0 {
            return;
        }
        let epoch = self.entries[below - 1].0;
        self.entries.drain(..below);
        self.entries.insert(0, (epoch, start_offset));
        self.check();
    }

    /// The epoch that wrote the batch at `offset`: the last entry starting at or below it.
    pub fn epoch_at(&self, offset: i64) -> Option<i32> {
        let after = self.entries.partition_point(|(_, s)| *s <= offset);
        after.checked_sub(1).map(|i| self.entries[i].0)
    }

    /// Forgets every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Where `epoch` ends: the largest epoch at or below it and the start offset of the first
    /// epoch above it, or `log_end_offset` when no epoch is above it (KIP-279's
    /// OffsetForLeaderEpoch answer).
    pub fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> (i32, i64) {
        let higher = self.entries.partition_point(|(e, _)| *e <= epoch);
        let floor = higher.checked_sub(1).map(|i| self.entries[i].0);
        match self.entries.get(higher) {
            None => (floor.unwrap_or(epoch), log_end_offset),
            Some(&(_, start)) => (floor.unwrap_or(epoch), start),
        }
    }

    fn check(&self) {
        debug_assert!(
            self.entries
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1),
            "epoch entries increase in both epoch and offset: {:?}",
            self.entries
        );
    }
}

#[cfg(test)]
pub(in crate::log) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cache(entries: &[(i32, i64)]) -> EpochCache {
        let mut c = EpochCache::default();
        for (e, s) in entries {
            c.assign(*e, *s);
        }
        c
    }

    // OffsetForLeaderEpoch answers as KIP-101/KIP-279 (and Kafka's LeaderEpochFileCacheTest)
    // specify: an epoch the leader never saw ends where the next epoch it did see begins, so a
    // follower truncates exactly the data the leader does not share.
    #[test]
    fn end_offset_for_follows_kip_279() {
        let c = cache(&[(0, 10), (2, 13), (4, 17)]);
        assert_eq!(
            c.end_offset_for(1, 20),
            (0, 13),
            "unknown epoch between two"
        );
        assert_eq!(c.end_offset_for(2, 20), (2, 17), "known epoch");
        assert_eq!(
            c.end_offset_for(3, 20),
            (2, 17),
            "unknown epoch below the latest"
        );
        assert_eq!(
            c.end_offset_for(4, 20),
            (4, 20),
            "latest epoch ends at the log end"
        );
        assert_eq!(c.end_offset_for(9, 20), (4, 20), "above every epoch");
        let c = cache(&[(5, 11), (6, 12), (7, 13)]);
        assert_eq!(c.end_offset_for(4, 20), (4, 11), "below every epoch");
        assert_eq!(cache(&[]).end_offset_for(3, 0), (3, 0), "empty cache");
        // Repeated assignments of one epoch keep its first offset.
        let c = cache(&[(1, 5), (1, 6), (1, 7), (2, 8), (2, 9)]);
        assert_eq!(c.entries(), &[(1, 5), (2, 8)]);
        assert_eq!(c.end_offset_for(1, 10), (1, 8));
    }

    // A leader that recorded its epoch but wrote nothing before the next leader took over leaves
    // an entry the next epoch must replace, as Kafka's non-monotonic truncation does.
    #[test]
    fn assign_removes_non_monotonic_entries() {
        let mut c = cache(&[(1, 0), (3, 10)]);
        c.assign(2, 10);
        assert_eq!(c.entries(), &[(1, 0), (2, 10)]);
        c.assign(4, 8);
        assert_eq!(c.entries(), &[(1, 0), (4, 8)]);
        c.assign(0, 20);
        assert_eq!(c.entries(), &[(0, 20)]);
    }

    // Moving the log start keeps the epoch that was current at the new start.
    #[test]
    fn truncate_from_start_keeps_the_covering_epoch() {
        let mut c = cache(&[(1, 0), (2, 10), (3, 20)]);
        c.truncate_from_start(15);
        assert_eq!(c.entries(), &[(2, 15), (3, 20)]);
        c.truncate_from_start(20);
        assert_eq!(c.entries(), &[(3, 20)]);
        c.truncate_from_start(5);
        assert_eq!(c.entries(), &[(3, 20)]);
        c.truncate_from_end(20);
        assert!(c.entries().is_empty());
    }

    /// The reference: the rules written as plainly as possible, over a list.
    #[derive(Clone, Debug, Default)]
    pub(in crate::log) struct Reference(pub(in crate::log) Vec<(i32, i64)>);

    impl Reference {
        pub(in crate::log) fn assign(&mut self, epoch: i32, start: i64) {
            if self.0.last().map(|(e, _)| *e) == Some(epoch) {
                return;
            }
            self.0.retain(|(e, s)| *e < epoch && *s < start);
            self.0.push((epoch, start));
        }
        pub(in crate::log) fn truncate_from_end(&mut self, end: i64) {
            self.0.retain(|(_, s)| *s < end);
        }
        pub(in crate::log) fn truncate_from_start(&mut self, start: i64) {
            let kept_epoch = self
                .0
                .iter()
                .filter(|(_, s)| *s <= start)
                .map(|(e, _)| *e)
                .next_back();
            self.0.retain(|(_, s)| *s > start);
            if let Some(epoch) = kept_epoch {
                self.0.insert(0, (epoch, start));
            }
        }
        fn end_offset_for(&self, epoch: i32, end: i64) -> (i32, i64) {
            let floor = self.0.iter().rfind(|(e, _)| *e <= epoch);
            let higher = self.0.iter().find(|(e, _)| *e > epoch);
            match (floor, higher) {
                (f, None) => (f.map_or(epoch, |f| f.0), end),
                (None, Some(h)) => (epoch, h.1),
                (Some(f), Some(h)) => (f.0, h.1),
            }
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Assign(i32, i64),
        TruncateFromEnd(i64),
        TruncateFromStart(i64),
        Clear,
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => (0i32..12, 0i64..60).prop_map(|(e, s)| Op::Assign(e, s)),
            2 => (0i64..60).prop_map(Op::TruncateFromEnd),
            2 => (0i64..60).prop_map(Op::TruncateFromStart),
            1 => Just(Op::Clear),
        ]
    }

    proptest! {
        // The cache agrees with the plain reference after any sequence of operations, stays
        // strictly increasing in both fields, and answers every OffsetForLeaderEpoch alike.
        #[test]
        fn cache_matches_the_reference(ops in proptest::collection::vec(arb_op(), 0..80)) {
            let mut c = EpochCache::default();
            let mut r = Reference::default();
            for op in ops {
                match op {
                    Op::Assign(e, s) => { c.assign(e, s); r.assign(e, s); }
                    Op::TruncateFromEnd(o) => { c.truncate_from_end(o); r.truncate_from_end(o); }
                    Op::TruncateFromStart(o) => { c.truncate_from_start(o); r.truncate_from_start(o); }
                    Op::Clear => { c.clear(); r.0.clear(); }
                }
                prop_assert_eq!(c.entries(), &r.0[..]);
                prop_assert!(c.entries().windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1));
                for epoch in 0..14 {
                    prop_assert_eq!(c.end_offset_for(epoch, 70), r.end_offset_for(epoch, 70));
                }
            }
        }
    }
}
