//! Sequential models: a per-partition log and a register.
//!
//! The log keeps a rolling polynomial hash of every prefix (values are first scrambled by
//! splitmix64), so three things are O(1): the state hash for the memo (the hash of the whole
//! log, i.e. of the last prefix), undoing an append (pop), and checking that a read's values
//! equal a range of the log (compare the range's hash with the read's precomputed hash). The
//! comparison is probabilistic with a 64-bit hash; an exact comparison would make each read
//! cost its length and a hot partition quadratic.

use super::SequentialSpec;
use crate::util::mix64;

/// The multiplier of the rolling hash (odd, so multiplication is invertible mod 2^64).
const BASE: u64 = 0x100_0000_01b3;

fn scramble(value: i64) -> u64 {
    mix64(value as u64 ^ 0x6c6f_675f_7631)
}

/// The rolling hash of a sequence of values, as a read's expected range hash.
#[must_use]
pub fn values_hash(values: &[i64]) -> u64 {
    values
        .iter()
        .fold(0u64, |h, v| h.wrapping_mul(BASE).wrapping_add(scramble(*v)))
}

/// An operation on a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogOp {
    /// Append `value`; the log assigned `offset` (the log's length before the append) if known.
    Append {
        /// The value.
        value: i64,
        /// The offset returned, if known.
        offset: Option<i64>,
    },
    /// Read from `from`: the values at `from`, `from + 1`, …
    Read {
        /// The first offset.
        from: i64,
        /// The values returned.
        values: Vec<i64>,
        /// [`values_hash`] of `values`.
        hash: u64,
        /// True if a read may return a prefix of the rest of the log (a consumer poll); false
        /// if it returns everything up to the end of the log.
        partial: bool,
    },
}

impl LogOp {
    /// A read, with its hash precomputed.
    #[must_use]
    pub fn read(from: i64, values: Vec<i64>, partial: bool) -> LogOp {
        let hash = values_hash(&values);
        LogOp::Read {
            from,
            values,
            hash,
            partial,
        }
    }
}

/// A log: a sequence of values at offsets 0, 1, 2, …
#[derive(Clone, Debug)]
pub struct LogSpec {
    values: Vec<i64>,
    /// `prefix[i]` is the rolling hash of the first `i` values.
    prefix: Vec<u64>,
    /// `pow[i]` is `BASE^i`.
    pow: Vec<u64>,
}

impl Default for LogSpec {
    fn default() -> Self {
        LogSpec::new()
    }
}

impl LogSpec {
    /// An empty log.
    #[must_use]
    pub fn new() -> LogSpec {
        LogSpec {
            values: Vec::new(),
            prefix: vec![0],
            pow: vec![1],
        }
    }

    /// The current values.
    #[must_use]
    pub fn values(&self) -> &[i64] {
        &self.values
    }

    fn range_hash(&self, from: usize, to: usize) -> u64 {
        debug_assert!(from <= to && to <= self.values.len());
        self.prefix[to].wrapping_sub(self.prefix[from].wrapping_mul(self.pow[to - from]))
    }

    fn read_ok(&self, from: i64, len: usize, hash: u64, partial: bool) -> bool {
        let log_len = self.values.len();
        let Ok(from) = usize::try_from(from) else {
            return false;
        };
        if len == 0 {
            // A full read returns nothing only at or past the end; an empty poll says nothing.
            return partial || log_len <= from;
        }
        let Some(end) = from.checked_add(len) else {
            return false;
        };
        if end > log_len || (!partial && end != log_len) {
            return false;
        }
        self.range_hash(from, end) == hash
    }
}

impl SequentialSpec for LogSpec {
    type Op = LogOp;
    type Undo = bool;

    fn apply(&mut self, op: &LogOp) -> Option<bool> {
        match op {
            LogOp::Append { value, offset } => {
                if offset.is_some_and(|o| o != self.values.len() as i64) {
                    return None;
                }
                let last = *self
                    .prefix
                    .last()
                    .expect("prefix always holds the empty prefix");
                self.values.push(*value);
                self.prefix
                    .push(last.wrapping_mul(BASE).wrapping_add(scramble(*value)));
                if self.pow.len() < self.prefix.len() {
                    let p = *self.pow.last().expect("pow always holds BASE^0");
                    self.pow.push(p.wrapping_mul(BASE));
                }
                Some(true)
            }
            LogOp::Read {
                from,
                values,
                hash,
                partial,
            } => self
                .read_ok(*from, values.len(), *hash, *partial)
                .then_some(false),
        }
    }

    fn undo(&mut self, appended: bool) {
        if appended {
            self.values.pop();
            self.prefix.pop();
        }
    }

    fn state_hash(&self) -> u64 {
        let last = *self
            .prefix
            .last()
            .expect("prefix always holds the empty prefix");
        mix64(last ^ self.values.len() as u64)
    }

    fn describe(&self) -> String {
        let n = self.values.len();
        let tail: Vec<i64> = self.values[n.saturating_sub(5)..].to_vec();
        format!("log of {n} record(s), ending {tail:?}")
    }
}

/// An operation on a register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterOp {
    /// Write a value.
    Write(i64),
    /// Read a value; `None` means never written.
    Read(Option<i64>),
}

/// A register holding one value (or none, before the first write).
#[derive(Clone, Debug, Default)]
pub struct RegisterSpec {
    value: Option<i64>,
}

impl SequentialSpec for RegisterSpec {
    type Op = RegisterOp;
    type Undo = Option<Option<i64>>;

    fn apply(&mut self, op: &RegisterOp) -> Option<Self::Undo> {
        match op {
            RegisterOp::Write(v) => Some(Some(self.value.replace(*v))),
            RegisterOp::Read(v) => (*v == self.value).then_some(None),
        }
    }

    fn undo(&mut self, undo: Self::Undo) {
        if let Some(previous) = undo {
            self.value = previous;
        }
    }

    fn state_hash(&self) -> u64 {
        self.value.map_or(0x00c0_ffee, |v| mix64(v as u64))
    }

    fn describe(&self) -> String {
        match self.value {
            Some(v) => format!("register = {v}"),
            None => "register never written".into(),
        }
    }
}
