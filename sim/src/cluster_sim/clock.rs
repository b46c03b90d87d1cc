//! Each node's own clock: it runs at its own rate (drift) and may jump forward, but never goes
//! back, and it survives process restarts (it is the machine's clock, not the process's).
//!
//! The clock is piecewise linear in simulated time: `local = base_local + (sim − base_sim) ×
//! (1 + drift)`, and a jump restarts the piece at `local(now) + jump`. The inverse, used to
//! schedule a node's timer, rounds up so the timer never fires before the node's clock reached
//! the deadline.

use seedlog_core::{Duration, Instant};

const PPM: i128 = 1_000_000;

/// One node's clock.
#[derive(Clone, Debug)]
pub(super) struct NodeClock {
    drift_ppm: i64,
    base_sim: Instant,
    base_local: Instant,
}

impl NodeClock {
    /// A clock that reads `start + offset` at simulated time `start` and runs at
    /// `1 + drift_ppm / 10⁶` of simulated time.
    pub(super) fn new(start: Instant, offset: Duration, drift_ppm: i64) -> NodeClock {
        assert!(drift_ppm > -(PPM as i64) / 2, "a clock runs forward");
        NodeClock {
            drift_ppm,
            base_sim: start,
            base_local: start + offset,
        }
    }

    /// The local time at simulated time `sim` (at or after the last jump).
    pub(super) fn local(&self, sim: Instant) -> Instant {
        let elapsed = i128::from(sim.0.saturating_sub(self.base_sim.0));
        let local = elapsed * (PPM + i128::from(self.drift_ppm)) / PPM;
        Instant(self.base_local.0 + local as u64)
    }

    /// The earliest simulated time, not before `now`, at which the clock reads `local`.
    pub(super) fn sim_time_of(&self, local: Instant, now: Instant) -> Instant {
        let ahead = i128::from(local.0.saturating_sub(self.base_local.0));
        let rate = PPM + i128::from(self.drift_ppm);
        let sim = Instant(self.base_sim.0 + ((ahead * PPM + rate - 1) / rate) as u64);
        debug_assert!(local <= self.base_local || self.local(sim) >= local);
        sim.max(now)
    }

    /// Jumps the clock forward by `by` at simulated time `now`.
    pub(super) fn jump(&mut self, now: Instant, by: Duration) {
        let local = self.local(now);
        self.base_local = local + by;
        self.base_sim = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A timer scheduled through `sim_time_of` fires when the node's own clock has reached the
    // deadline, never earlier, for fast and slow clocks and across jumps.
    #[test]
    fn timers_never_fire_early_and_clocks_never_go_back() {
        for drift in [-30_000i64, -1, 0, 1, 17_000, 40_000] {
            let start = Instant(1_700_000_000_000_000_000);
            let mut clock = NodeClock::new(start, Duration::from_millis(3), drift);
            let mut now = start;
            let mut last = clock.local(now);
            for step in 1..200u64 {
                now = now + Duration::from_micros(step * 37);
                if step % 50 == 0 {
                    clock.jump(now, Duration::from_millis(step));
                }
                let local = clock.local(now);
                assert!(local >= last, "clock went back");
                last = local;
                let deadline = local + Duration::from_micros(step * 101);
                let at = clock.sim_time_of(deadline, now);
                assert!(clock.local(at) >= deadline);
                assert!(at >= now);
            }
        }
    }
}
