//! The one entry point, [`check`], and its result, [`Verdict`], with JSON and text renderings.
//!
//! `check` runs the queue analysis, the cycle analysis (when the history has transactions) and
//! the per-key linearizability check, then classifies every anomaly with the written semantics
//! ([`crate::semantics`]). It is a pure function of the history and options, except that a
//! wall-clock time limit (if set) can turn a verdict into `Unknown`; the step limit is the
//! deterministic alternative.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::anomaly::{anomaly, Anomalies, Anomaly, AnomalyClass};
use crate::cycle;
use crate::history::History;
use crate::linear::partition::{check_keys, KeyResult, LinOptions, Method};
use crate::linear::{LinResult, SearchLimits};
use crate::queue::{self, QueueReport};
use crate::semantics::{rule_for, Rule, Workload};

/// When to run the cycle analysis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CycleMode {
    /// Only when the history contains transactions.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// What to check and how hard to try.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// The client configuration, which decides what is allowed.
    pub workload: Workload,
    /// Run the per-key linearizability check.
    pub linearizability: bool,
    /// Log reads (`OpKind::Read`) may return a prefix of the rest of the log.
    pub partial_reads: bool,
    /// When to run the cycle analysis.
    pub cycles: CycleMode,
    /// Wall-clock limit for the searches; past it they answer unknown.
    pub time_limit: Option<Duration>,
    /// Deterministic step limit per linearizability search.
    pub max_search_steps: Option<u64>,
    /// How many anomalies of each class to keep with details (all are counted).
    pub anomalies_per_class: usize,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            workload: Workload::default(),
            linearizability: true,
            partial_reads: false,
            cycles: CycleMode::Auto,
            time_limit: None,
            max_search_steps: None,
            anomalies_per_class: 20,
        }
    }
}

/// Overall result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validity {
    /// No forbidden anomaly, every check finished.
    Valid,
    /// At least one forbidden anomaly.
    Invalid,
    /// No forbidden anomaly, but a check gave up or found something undecided.
    Unknown,
}

impl Validity {
    /// The CLI exit code: 0 valid, 1 invalid, 2 unknown.
    #[must_use]
    pub fn exit_code(self) -> i32 {
        match self {
            Validity::Valid => 0,
            Validity::Invalid => 1,
            Validity::Unknown => 2,
        }
    }

    /// Lower-case name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Validity::Valid => "valid",
            Validity::Invalid => "invalid",
            Validity::Unknown => "unknown",
        }
    }
}

/// One anomaly with its classification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The anomaly.
    pub anomaly: Anomaly,
    /// Forbidden, allowed or undecided under the workload.
    pub rule: Rule,
    /// Why, from the written semantics.
    pub reason: &'static str,
}

/// The result of [`check`].
#[derive(Clone, Debug)]
pub struct Verdict {
    /// Valid, invalid or unknown.
    pub validity: Validity,
    /// The anomalies kept (up to the per-class cap), forbidden ones first.
    pub findings: Vec<Finding>,
    /// Count of every anomaly class found, including those not kept.
    pub counts: BTreeMap<AnomalyClass, u64>,
    /// Why the verdict is unknown, if it is.
    pub unknown_reasons: Vec<String>,
    /// Unseen timeline, lag and per-partition figures.
    pub queue: QueueReport,
    /// Per-key linearizability results.
    pub linearizability: Vec<KeyResult>,
    /// Number of operations checked.
    pub op_count: usize,
}

impl Verdict {
    /// True if the history is valid.
    #[must_use]
    pub fn is_valid(&self) -> bool {
        self.validity == Validity::Valid
    }

    /// Findings of one class.
    pub fn of_class(&self, class: AnomalyClass) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(move |f| f.anomaly.class == class)
    }

    /// The classes with at least one forbidden finding, sorted.
    #[must_use]
    pub fn forbidden_classes(&self) -> Vec<AnomalyClass> {
        let mut classes: Vec<AnomalyClass> = self
            .findings
            .iter()
            .filter(|f| f.rule == Rule::Forbidden)
            .map(|f| f.anomaly.class)
            .collect();
        classes.sort();
        classes.dedup();
        classes
    }
}

/// Checks a history: the single entry point for the simulator and the CLI.
#[must_use]
pub fn check(history: &History, options: &CheckOptions) -> Verdict {
    let deadline = options.time_limit.map(|d| Instant::now() + d);
    let mut found = Anomalies::new(options.anomalies_per_class.max(1));
    let queue = queue::analyze(history, &mut found);
    let run_cycles = match options.cycles {
        CycleMode::Auto => cycle::has_transactions(history),
        CycleMode::Always => true,
        CycleMode::Never => false,
    };
    if run_cycles {
        cycle::analyze(history, deadline, &mut found);
    }
    let mut unknown_reasons = Vec::new();
    let linearizability = if options.linearizability {
        let lin = LinOptions {
            partial_reads: options.partial_reads,
            include_txn_keys: false,
            limits: SearchLimits {
                deadline,
                max_steps: options.max_search_steps,
            },
        };
        let mut results = check_keys(history, &lin);
        // With acks=1 a partition's log can legitimately lose acknowledged records, so only
        // registers are held to linearizability.
        results.retain(|r| options.workload.acks_all || r.model == "register");
        results
    } else {
        Vec::new()
    };
    for r in &linearizability {
        match &r.result {
            LinResult::Ok => {}
            LinResult::Illegal(w) => found.push(anomaly(
                AnomalyClass::NonLinearizable,
                Some(r.key),
                w.ops.clone(),
                format!(
                    "{} {} is not linearizable: {}",
                    r.model,
                    history.key_name(r.key),
                    w.explanation
                ),
            )),
            LinResult::Unknown(why) => unknown_reasons.push(format!(
                "linearizability of {} {} unknown: {why}",
                r.model,
                history.key_name(r.key)
            )),
        }
    }
    let (list, counts) = found.into_parts();
    let mut findings: Vec<Finding> = list
        .into_iter()
        .map(|a| {
            let (rule, reason) = rule_for(&a, &options.workload);
            Finding {
                anomaly: a,
                rule,
                reason,
            }
        })
        .collect();
    findings.sort_by_key(|f| (f.rule, f.anomaly.class));
    for f in findings.iter().filter(|f| f.rule == Rule::Undecided) {
        unknown_reasons.push(format!("{}: {}", f.anomaly.class.name(), f.reason));
    }
    let validity = if findings.iter().any(|f| f.rule == Rule::Forbidden) {
        Validity::Invalid
    } else if unknown_reasons.is_empty() {
        Validity::Valid
    } else {
        Validity::Unknown
    };
    Verdict {
        validity,
        findings,
        counts,
        unknown_reasons,
        queue,
        linearizability,
        op_count: history.len(),
    }
}

fn finding_json(history: &History, f: &Finding) -> Value {
    json!({
        "class": f.anomaly.class.name(),
        "rule": f.rule.name(),
        "key": f.anomaly.key.map(|k| history.key_name(k).to_string()),
        "ops": f.anomaly.ops.iter().map(|id| id.0).collect::<Vec<_>>(),
        "edges": f.anomaly.edges.iter().map(|e| e.name()).collect::<Vec<_>>(),
        "explanation": f.anomaly.explanation,
        "reason": f.reason,
    })
}

fn lin_json(history: &History, r: &KeyResult) -> Value {
    let (result, detail) = match &r.result {
        LinResult::Ok => ("ok", Value::Null),
        LinResult::Illegal(w) => (
            "illegal",
            json!({"ops": w.ops.iter().map(|i| i.0).collect::<Vec<_>>(), "explanation": w.explanation}),
        ),
        LinResult::Unknown(why) => ("unknown", json!(why)),
    };
    json!({
        "key": history.key_name(r.key),
        "model": r.model,
        "ops": r.ops,
        "method": match r.method { Method::FastPath => "fast-path", Method::Search => "search" },
        "result": result,
        "detail": detail,
    })
}

/// The verdict as JSON (key names resolved through the history).
#[must_use]
pub fn to_json(history: &History, verdict: &Verdict) -> Value {
    let counts: BTreeMap<&str, u64> = verdict.counts.iter().map(|(c, n)| (c.name(), *n)).collect();
    json!({
        "validity": verdict.validity.name(),
        "op_count": verdict.op_count,
        "forbidden": verdict.forbidden_classes().iter().map(|c| c.name()).collect::<Vec<_>>(),
        "counts": counts,
        "unknown_reasons": verdict.unknown_reasons,
        "findings": verdict.findings.iter().map(|f| finding_json(history, f)).collect::<Vec<_>>(),
        "linearizability": verdict.linearizability.iter().map(|r| lin_json(history, r)).collect::<Vec<_>>(),
        "unseen_final": verdict.queue.unseen_final,
        "max_lag_ns": verdict.queue.max_lag_ns,
        "unseen_timeline": verdict.queue.unseen_timeline,
        "lag_series": verdict.queue.lag_series,
    })
}

/// A human-readable summary: the verdict, then each class found with up to three examples.
#[must_use]
pub fn summary(history: &History, verdict: &Verdict) -> String {
    let mut out = format!(
        "{}: {} operations checked\n",
        verdict.validity.name().to_uppercase(),
        verdict.op_count
    );
    for reason in &verdict.unknown_reasons {
        out.push_str(&format!("  unknown: {reason}\n"));
    }
    for (class, count) in &verdict.counts {
        let Some(first) = verdict.of_class(*class).next() else {
            continue;
        };
        out.push_str(&format!(
            "  {} x{count} ({}): {}\n",
            class.name(),
            first.rule.name(),
            first.reason
        ));
        for f in verdict.of_class(*class).take(3) {
            let key = f
                .anomaly
                .key
                .map(|k| format!("[{}] ", history.key_name(k)))
                .unwrap_or_default();
            out.push_str(&format!("    - {key}{}\n", f.anomaly.explanation));
        }
    }
    let fast = verdict
        .linearizability
        .iter()
        .filter(|r| r.method == Method::FastPath)
        .count();
    out.push_str(&format!(
        "  linearizability: {} key(s) checked ({fast} by the offset fast path)\n  unseen at end: {}, max realtime lag: {:.3} s\n",
        verdict.linearizability.len(),
        verdict.queue.unseen_final,
        verdict.queue.max_lag_ns as f64 / 1e9
    ));
    out
}
