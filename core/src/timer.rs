//! A fixed table of timers indexed by an enum, as in quinn-proto's `TimerTable`.
//!
//! Each state machine names its timers in an enum; the table holds at most one deadline per
//! timer, so the set of pending timers is bounded by construction.

use crate::time::Instant;

/// A state machine's timer names, convertible to a table index.
pub trait TimerKind: Copy {
    /// Number of timers.
    const COUNT: usize;
    /// Index in `0..COUNT`.
    fn index(self) -> usize;
    /// The timer at `index`.
    fn from_index(index: usize) -> Self;
}

/// At most one deadline per timer kind.
#[derive(Clone, Debug)]
pub struct TimerTable<T: TimerKind> {
    deadlines: Vec<Option<Instant>>,
    _kind: core::marker::PhantomData<T>,
}

impl<T: TimerKind> Default for TimerTable<T> {
    fn default() -> Self {
        TimerTable {
            deadlines: vec![None; T::COUNT],
            _kind: core::marker::PhantomData,
        }
    }
}

impl<T: TimerKind> TimerTable<T> {
    /// Arms `timer` to fire at `at`, replacing any earlier deadline.
    pub fn set(&mut self, timer: T, at: Instant) {
        self.deadlines[timer.index()] = Some(at);
    }

    /// Disarms `timer`.
    pub fn stop(&mut self, timer: T) {
        self.deadlines[timer.index()] = None;
    }

    /// The deadline of `timer`, if armed.
    pub fn get(&self, timer: T) -> Option<Instant> {
        self.deadlines[timer.index()]
    }

    /// The earliest armed deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// Disarms and returns the first timer whose deadline is at or before `now`.
    pub fn pop_expired(&mut self, now: Instant) -> Option<T> {
        let index = self
            .deadlines
            .iter()
            .position(|d| d.is_some_and(|d| d <= now))?;
        self.deadlines[index] = None;
        Some(T::from_index(index))
    }
}
