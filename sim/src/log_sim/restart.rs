//! Crashes, restarts and the final liveness phase.

use super::*;

impl LogSim {
    /// Crashes the node and starts a new incarnation, which recovers from the disk. A process
    /// crash keeps the page cache; a power loss keeps only what was synced (plus a random,
    /// possibly torn, prefix of the rest).
    pub(super) fn restart(&mut self, power_loss: bool) {
        self.report.restarts += 1;
        self.trace.add(&[self.now.0, 50, u64::from(power_loss)]);
        tracing::debug!(at = ?self.now, power_loss, "restart");
        if power_loss {
            self.disk.power_loss(&self.faults, &mut self.prng);
        }
        self.incarnation += 1;
        self.disk_free_at = self.now;
        self.timer_at = None;
        self.pending_reads.clear();
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.crash();
        }
        self.pending_lookups.clear();
        self.pending_appends.clear();
        // A restart in the middle of verification: the model's view is still the one from
        // before the previous restart.
        if let Some(verify) = self.verify.take() {
            self.model.current = verify.current_before;
            self.model.durable = verify.durable_before;
            self.model.log_start = verify.log_start_before;
        }
        self.deferred.clear();
        self.epochs_checked = None;
        self.model.fully_pending = None;
        self.recovering = true;
        self.recovery_started = self.now;
        self.log = Log::open(Self::log_config(&self.params), self.now);
        self.drain_log();
    }

    /// Faults stop; the log must sync everything, survive a power loss, and read back whole.
    pub(super) fn begin_final_phase(&mut self) {
        tracing::debug!(at = ?self.now, "final phase: faults off");
        self.phase = Phase::FinalSync;
        self.phase_started = self.now;
        self.faults = DiskFaults {
            latency_us: self.faults.latency_us,
            ..DiskFaults::none()
        };
        self.on_final_tick();
    }

    pub(super) fn on_final_tick(&mut self) {
        if self.now.saturating_since(self.phase_started) > LIVENESS_BOUND {
            let phase = self.phase;
            return self.violate(format!(
                "liveness: stuck in {phase:?} for {LIVENESS_BOUND:?} with faults off"
            ));
        }
        self.schedule(self.now + Duration::from_millis(1), Event::Workload);
        let quiet = !self.recovering && self.verify.is_none() && self.log.is_ready();
        if self.phase != Phase::FinalSync || !quiet {
            return;
        }
        if self.log.durable_offset() == self.log.log_end_offset() && self.pending_appends.is_empty()
        {
            self.phase = Phase::FinalRestart;
            self.restart(true);
        } else {
            self.feed(LogInput::Sync);
        }
    }
}
