//! The checker's side of reads and recovery.

use super::*;
use seedlog_core::record_batch::BatchIter;

impl LogSim {
    pub(super) fn on_recovered(&mut self, report: RecoveryReport) {
        self.trace.add(&[
            self.now.0,
            40,
            report.log_end_offset as u64,
            report.recovery_point as u64,
        ]);
        self.recovering = false;
        // Damage at rest since the last good recovery is the only reason synced data may be
        // cut. A bit flipped on read is not: recovery re-reads a batch that fails its checks.
        let earlier_report = self.loss_report_pending;
        let rot = self.disk.rot_since(DIR, self.last_recovery_done) || earlier_report;
        self.loss_report_pending =
            earlier_report || report.durable_data_lost.is_some() || report.cut.is_some();
        if let Some((from, to)) = report.durable_data_lost {
            if !rot {
                self.violate(format!(
                    "recovery reported synced data [{from}, {to}) lost, but the disk corrupted nothing"
                ));
            }
        }
        if report.log_end_offset < self.model.durable {
            let reported = report.durable_data_lost.is_some()
                || report.checkpoint_lost
                || report.checkpoint_damaged
                || earlier_report;
            if !(rot && reported) {
                self.violate(format!(
                    "synced data lost: log ends at {} after restart but {} was durable (cut: {:?}, reported: {reported}, rot: {rot})",
                    report.log_end_offset, self.model.durable, report.cut
                ));
            }
        }
        // A loss the storage explains and recovery reported is accepted now: from here on only
        // what survived is promised, also when a crash interrupts the verification below
        // (which restores the model from before this recovery) and the next recovery, its cut
        // already durable, has nothing left to report.
        self.model.durable = self.model.durable.min(report.log_end_offset);
        // The recovered end is a log end the log may claim durable before verification ends,
        // even when it holds batches from before the previous restart (a power loss undid a
        // truncation that restart had seen in the page cache).
        self.model.end_high = self.model.end_high.max(report.log_end_offset);
        let log_start_before = self.model.log_start;
        self.model.log_start = report.log_start_offset;
        self.verify = Some(Verify {
            log_start_before,
            next: report.log_start_offset,
            end: report.log_end_offset,
            durable_before: self.model.durable,
            current_before: std::mem::take(&mut self.model.current),
            rebuilt: BTreeMap::new(),
            retries: 0,
        });
        self.continue_verify();
    }

    fn continue_verify(&mut self) {
        let Some(verify) = &self.verify else { return };
        if verify.next >= verify.end {
            return self.finish_verify();
        }
        let next = verify.next;
        let bytes_max = self.params.segment_bytes_max as u32;
        self.start_read(next, bytes_max, true);
    }

    /// Adopts what verification read as the model's view of the log.
    fn finish_verify(&mut self) {
        let verify = self.verify.take().expect("verifying");
        self.model.current = verify.rebuilt;
        self.model.end = verify.end;
        self.model.end_high = verify.end;
        self.model.durable = verify.durable_before.min(verify.end);
        self.last_recovery_done = self.now;
        self.epochs_checked = None;
        if self.phase == Phase::FinalRestart {
            self.phase = Phase::Done;
        }
    }

    pub(super) fn on_read_done(
        &mut self,
        request: RequestId,
        result: Result<ReadResult, ReadError>,
    ) {
        let Some(read) = self.pending_reads.remove(&request) else {
            return self.violate(format!("answer to unknown read {request}"));
        };
        self.report.reads += 1;
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.complete_read(
                self.now.0,
                request,
                result.as_ref().ok().map(|r| &r.batches),
            );
        }
        self.trace
            .add(&[self.now.0, 41, request, u64::from(result.is_ok())]);
        match result {
            Ok(r) => self.check_read(&read, &r),
            Err(ReadError::Corrupt { offset, error }) => {
                self.check_corrupt_read(&read, offset, &error)
            }
            Err(ReadError::OffsetOutOfRange {
                log_start_offset,
                log_end_offset,
            }) => {
                let in_model = read.offset >= self.model.log_start && read.offset <= self.model.end;
                if in_model && read.truncations == self.truncations && !read.verify {
                    self.violate(format!(
                        "read at {} refused as out of range [{log_start_offset}, {log_end_offset}] but the model holds [{}, {}]",
                        read.offset, self.model.log_start, self.model.end
                    ));
                }
                if read.verify {
                    self.verify_retry();
                }
            }
            Err(_) if read.verify => self.verify_retry(),
            Err(_) => {}
        }
    }

    fn check_read(&mut self, read: &PendingRead, result: &ReadResult) {
        let mut expected_base: Option<i64> = None;
        let mut batches = Vec::new();
        for item in BatchIter::new(&result.batches) {
            let (header, bytes) = match item {
                Ok(ok) => ok,
                Err(e) => {
                    return self
                        .violate(format!("read at {} served a bad batch: {e}", read.offset));
                }
            };
            if expected_base.is_none()
                && !(header.base_offset <= read.offset && read.offset < header.next_offset())
            {
                return self.violate(format!(
                    "read at {} returned a first batch covering [{}, {})",
                    read.offset,
                    header.base_offset,
                    header.next_offset()
                ));
            }
            if expected_base.is_some_and(|e| e != header.base_offset) {
                return self.violate(format!(
                    "read at {} returned non-contiguous batches",
                    read.offset
                ));
            }
            expected_base = Some(header.next_offset());
            let written = self
                .model
                .versions
                .get(&header.base_offset)
                .is_some_and(|v| v.iter().any(|b| same_batch(b, bytes)));
            if !written {
                return self.violate(format!(
                    "read at {} served bytes at offset {} that were never written there",
                    read.offset, header.base_offset
                ));
            }
            batches.push((header, Bytes::copy_from_slice(bytes)));
        }
        if read.verify {
            return self.on_verify_batches(result, batches);
        }
        if read.truncations != self.truncations {
            return;
        }
        for (header, bytes) in &batches {
            if let Some(expected) = self.model.current.get(&header.base_offset) {
                if !same_batch(expected, bytes) {
                    let versions = self
                        .model
                        .versions
                        .get(&header.base_offset)
                        .map_or(0, Vec::len);
                    return self.violate(format!(
                        "read at {} served a stale version of offset {} ({} bytes; model has {} bytes; {versions} versions written)",
                        read.offset, header.base_offset, bytes.len(), expected.len()
                    ));
                }
            }
        }
    }

    fn on_verify_batches(&mut self, result: &ReadResult, batches: Vec<(BatchHeader, Bytes)>) {
        let rot = self.disk.rot_since(DIR, self.last_recovery_done);
        let verify = self.verify.as_mut().expect("verifying");
        let mut changed = None;
        for (header, bytes) in batches {
            // Records below the log start were deleted: no promise covers them, and a lost
            // checkpoint may legitimately bring old versions back.
            let promised = header.next_offset() > verify.log_start_before;
            let was_durable = promised && header.next_offset() <= verify.durable_before;
            let kept = verify
                .current_before
                .get(&header.base_offset)
                .is_some_and(|b| same_batch(b, &bytes));
            if was_durable && !kept && !rot {
                changed = Some(header.base_offset);
            }
            verify.rebuilt.insert(header.base_offset, bytes);
        }
        if let Some(offset) = changed {
            return self.violate(format!("synced batch at {offset} changed across a restart"));
        }
        if result.batches.is_empty() {
            let (next, end) = (verify.next, verify.end);
            return self.violate(format!(
                "recovered log ends at {end} but a read at {next} found nothing"
            ));
        }
        verify.next = result.next_offset;
        verify.retries = 0;
        self.continue_verify();
    }

    fn check_corrupt_read(
        &mut self,
        read: &PendingRead,
        offset: i64,
        error: &record_batch::BatchError,
    ) {
        let record = segment_file_for(&self.disk, offset)
            .map(|f| self.disk.corruption(&f))
            .unwrap_or_default();
        let explained = record.on_read.is_some_and(|t| t >= read.issued)
            || record.at_rest.is_some_and(|t| t >= self.recovery_started);
        if !explained {
            return self.violate(format!(
                "read at {} hit corrupt data at offset {offset} ({error}) that no fault since recovery explains: recovery left a bad batch in the log",
                read.offset
            ));
        }
        if read.verify {
            self.verify_retry();
        }
    }

    /// Retries a verification read a few times (a flipped bit on read is transient); damage at
    /// rest ends verification, and the model keeps only what it could read.
    fn verify_retry(&mut self) {
        let Some(verify) = self.verify.as_mut() else {
            return;
        };
        verify.retries += 1;
        if verify.retries > 5 {
            return self.finish_verify();
        }
        if !self.log.is_ready() {
            return; // the log faulted; its restart verifies again
        }
        self.continue_verify();
    }
}

/// Equal batches, ignoring the partition leader epoch. Kafka's format leaves that field (bytes
/// 12..16) outside the CRC, so a flipped bit there is invisible to any CRC check; the leader
/// epoch cache that replication keeps is what pins it. Every other byte must match.
fn same_batch(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.len() >= 16 && a[..12] == b[..12] && a[16..] == b[16..]
}

impl LogSim {
    pub(super) fn on_timestamp_lookup_done(
        &mut self,
        request: RequestId,
        result: Result<Option<(i64, i64)>, ReadError>,
    ) {
        let Some((timestamp, expected, truncations)) = self.pending_lookups.remove(&request) else {
            return self.violate(format!("answer to unknown timestamp lookup {request}"));
        };
        self.trace
            .add(&[self.now.0, 42, request, u64::from(result.is_ok())]);
        let (Ok(found), Some(expected)) = (result, expected) else {
            return;
        };
        if truncations != self.truncations {
            return;
        }
        // A lookup that finds nothing in the log as it was may walk on into records appended
        // since; that answer is right as of its completion instead.
        let right_at_completion = || self.model_first_at_or_after(timestamp) == found;
        if found != expected && !(expected.is_none() && right_at_completion()) {
            self.violate(format!(
                "offset for timestamp {timestamp}: log answered {found:?}, model says {expected:?}"
            ));
        }
    }

    pub(super) fn model_has_gaps(&self) -> bool {
        let mut next = None;
        for (base, bytes) in &self.model.current {
            if next.is_some_and(|n| n != *base) {
                return true;
            }
            next = Some(Model::batch_end(bytes));
        }
        next.is_some_and(|n| n != self.model.end)
    }

    pub(super) fn model_first_at_or_after(&self, timestamp: i64) -> Option<(i64, i64)> {
        let start = self.model.log_start;
        self.model.current.values().find_map(|bytes| {
            let header = BatchHeader::parse(bytes).ok()?;
            let records = record_batch::decode_records(bytes, &header).ok()?;
            records
                .iter()
                .map(|r| {
                    let offset = header.base_offset + i64::from(r.offset_delta);
                    (offset, header.base_timestamp + r.timestamp_delta)
                })
                .find(|(offset, ts)| *offset >= start && *ts >= timestamp)
        })
    }
}

impl LogSim {
    /// The leader epoch cache must describe the batches in the log: an entry where each epoch's
    /// first batch starts (the first at the log start), folded with Kafka's rule (an epoch not
    /// above the latest replaces the entries it contradicts), plus at most one epoch recorded
    /// at the log end by a leader that has not written under it yet. Checked whenever the log
    /// is quiet and the model knows every batch in it; skipped while nothing changed.
    ///
    /// The epoch field is outside the CRC, so a bit flipped at rest there goes unseen: after rot
    /// the cache may rightly hold an epoch nobody wrote, and the check stands down. A flip on a
    /// read during recovery is not excused: recovery reads every epoch that shapes the cache
    /// twice.
    pub(super) fn check_epoch_cache(&mut self) {
        if self.recovering
            || self.verify.is_some()
            || !self.log.is_ready()
            || self.log.is_truncating()
        {
            return;
        }
        if self.disk.rot_since(DIR, Instant(0)) {
            return;
        }
        let (start, end) = (self.log.log_start_offset(), self.log.log_end_offset());
        if (start, end) != (self.model.log_start, self.model.end) || self.model_has_gaps() {
            return;
        }
        let entries = self.log.epoch_entries();
        let unchanged = self
            .epochs_checked
            .as_ref()
            .is_some_and(|(e, s, n)| e == entries && (*s, *n) == (start, end));
        if unchanged {
            return;
        }
        let entries = entries.to_vec();
        self.epochs_checked = Some((entries.clone(), start, end));
        let Some(expected) = self.model_epochs(start, end) else {
            return;
        };
        let latest_expected = expected.last().map(|(e, _)| *e);
        let epoch_max = self.leader_epoch;
        let extra_ok = |extra: &(i32, i64)| {
            extra.1 == end && latest_expected.is_none_or(|l| extra.0 > l) && extra.0 <= epoch_max
        };
        let matches = entries == expected
            || (entries.len() == expected.len() + 1
                && entries[..expected.len()] == expected[..]
                && entries.last().is_some_and(extra_ok));
        if !matches {
            self.violate(format!(
                "epoch cache {entries:?} does not match the batches in [{start}, {end}): expected {expected:?}"
            ));
        }
    }

    /// The epoch entries the model's batches in `[start, end)` call for, with each batch's
    /// epoch as written (a read may have flipped the copy the model holds), or `None` when the
    /// model does not know the batch holding the log start.
    fn model_epochs(&self, start: i64, end: i64) -> Option<Vec<(i32, i64)>> {
        let mut entries: Vec<(i32, i64)> = Vec::new();
        let first = self
            .model
            .current
            .range(..=start)
            .next_back()
            .map(|(b, _)| *b);
        let from = match first {
            Some(base) if Model::batch_end(&self.model.current[&base]) > start => base,
            _ if start == end => return Some(entries),
            _ => return None,
        };
        for (base, bytes) in self.model.current.range(from..) {
            let written = self
                .model
                .versions
                .get(base)?
                .iter()
                .find(|v| same_batch(v, bytes))?;
            let epoch = BatchHeader::parse(written).ok()?.partition_leader_epoch;
            let at = (*base).max(start);
            if entries.last().is_some_and(|(e, _)| *e == epoch) {
                continue;
            }
            while entries.last().is_some_and(|(e, s)| *e >= epoch || *s >= at) {
                entries.pop();
            }
            entries.push((epoch, at));
        }
        Some(entries)
    }
}
