//! A self-contained HTML report: the verdict, the findings with the operations involved, SVG
//! plots of the unseen count, latency and realtime lag over time, and a per-partition timeline
//! of operations (bars from invocation to completion, anomalous ones in red). No scripts or
//! external resources, so it can be opened offline and archived with a run.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use crate::history::{History, KeyId, Op, OpId, OpKind, Outcome};
use crate::queue::{for_each_read, for_each_send};
use crate::util::downsample;
use crate::verdict::{summary, Verdict};

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 180.0;
const TIMELINE_KEYS: usize = 16;
const TIMELINE_OPS: usize = 400;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A fault a nemesis injected, for the report: shaded on every plot and timeline, and listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultSpan {
    /// When it began, on the history's clock.
    pub start_ns: u64,
    /// When it was healed; `None` if it lasted to the end.
    pub end_ns: Option<u64>,
    /// What it was, e.g. `kill n2` or `partition halves [1] | [2, 3]`.
    pub label: String,
}

/// Renders the report page.
#[must_use]
pub fn html(history: &History, verdict: &Verdict) -> String {
    html_with_faults(history, verdict, &[])
}

/// Renders the report page of a run with faults: the same page as [`html`] plus a throughput
/// plot, the list of faults, and the faults shaded on every plot and timeline.
#[must_use]
pub fn html_with_faults(history: &History, verdict: &Verdict, faults: &[FaultSpan]) -> String {
    let mut page = String::from(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Seedlog check report</title><style>\
         body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px;vertical-align:top}\
         .forbidden{color:#b00}.allowed{color:#666}.undecided{color:#a60}svg{background:#fafafa;border:1px solid #ddd}</style></head><body>",
    );
    let _ = write!(
        page,
        "<h1>Verdict: {}</h1><pre>{}</pre>",
        verdict.validity.name(),
        escape(&summary(history, verdict))
    );
    page.push_str(&findings_table(history, verdict));
    let (t0, t1) = time_range(history, faults);
    let bands = Bands { faults, t0, t1 };
    if !faults.is_empty() {
        page.push_str(&faults_section(&bands));
    }
    let unseen: Vec<(u64, f64)> = verdict
        .queue
        .unseen_timeline
        .iter()
        .map(|(t, c)| (*t, *c as f64))
        .collect();
    page.push_str(&plot(
        "Unseen acknowledged values",
        &unseen,
        &bands,
        "values",
        true,
    ));
    page.push_str(&plot(
        "Operation latency",
        &latencies(history),
        &bands,
        "ms",
        false,
    ));
    page.push_str(&plot(
        "Throughput: acknowledged sends per second",
        &throughput(history, t0, t1),
        &bands,
        "ops/s",
        true,
    ));
    let lag: Vec<(u64, f64)> = verdict
        .queue
        .lag_series
        .iter()
        .map(|(t, l)| (*t, *l as f64 / 1e6))
        .collect();
    page.push_str(&plot("Realtime lag of polls", &lag, &bands, "ms", false));
    page.push_str(&timelines(history, verdict, &bands));
    page.push_str("</body></html>\n");
    page
}

fn findings_table(history: &History, verdict: &Verdict) -> String {
    let mut out = String::from("<h2>Findings</h2>");
    if verdict.findings.is_empty() {
        out.push_str("<p>None.</p>");
        return out;
    }
    out.push_str("<table><tr><th>class</th><th>rule</th><th>key</th><th>operations</th><th>explanation</th></tr>");
    for f in &verdict.findings {
        let key = f
            .anomaly
            .key
            .map(|k| history.key_name(k).to_string())
            .unwrap_or_default();
        let ops: Vec<String> = f
            .anomaly
            .ops
            .iter()
            .map(|id| describe_op(history, *id))
            .collect();
        let _ = write!(
            out,
            "<tr class=\"{rule}\"><td>{}</td><td>{rule}</td><td>{}</td><td>{}</td><td>{}<br><small>{}</small></td></tr>",
            f.anomaly.class.name(),
            escape(&key),
            ops.join("<br>"),
            escape(&f.anomaly.explanation),
            escape(f.reason),
            rule = f.rule.name(),
        );
    }
    out.push_str("</table>");
    out
}

fn describe_op(history: &History, id: OpId) -> String {
    let Some(op) = history.op(id) else {
        return format!("op {}", id.0);
    };
    let done = op
        .complete_ns
        .map_or("never".to_string(), |t| t.to_string());
    escape(&format!(
        "op {} p{} {} {:?} [{}..{}]",
        id.0,
        op.process,
        op.kind.name(),
        op.outcome,
        op.invoke_ns,
        done
    ))
}

fn time_range(history: &History, faults: &[FaultSpan]) -> (u64, u64) {
    let starts = history.ops().iter().map(|o| o.invoke_ns);
    let t0 = starts
        .chain(faults.iter().map(|f| f.start_ns))
        .min()
        .unwrap_or(0);
    let ends = history
        .ops()
        .iter()
        .map(|o| o.complete_ns.unwrap_or(o.invoke_ns));
    let t1 = ends
        .chain(faults.iter().filter_map(|f| f.end_ns))
        .max()
        .unwrap_or(1);
    (t0, t1.max(t0 + 1))
}

/// The faults of a run and the time axis every plot shares.
struct Bands<'a> {
    faults: &'a [FaultSpan],
    t0: u64,
    t1: u64,
}

impl Bands<'_> {
    fn x(&self, t: u64) -> f64 {
        40.0 + (t.saturating_sub(self.t0)) as f64 / (self.t1 - self.t0) as f64 * (WIDTH - 50.0)
    }

    /// Light bands over `[top, top + height]` where faults were active, each titled.
    fn shade(&self, top: f64, height: f64) -> String {
        let mut out = String::new();
        for f in self.faults {
            let (a, b) = (self.x(f.start_ns), self.x(f.end_ns.unwrap_or(self.t1)));
            let _ = write!(
                out,
                "<rect x=\"{a:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{height:.1}\" fill=\"#f4b0b0\" fill-opacity=\"0.35\"><title>{}</title></rect>",
                (b - a).max(1.0),
                escape(&f.label)
            );
        }
        out
    }
}

/// The faults as a table and as one timeline row per fault.
fn faults_section(bands: &Bands) -> String {
    let mut out = String::from("<h2>Faults</h2>");
    let height = 10.0 + 12.0 * bands.faults.len() as f64;
    let _ = write!(
        out,
        "<svg width=\"{WIDTH}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    for (i, f) in bands.faults.iter().enumerate() {
        let (a, b) = (bands.x(f.start_ns), bands.x(f.end_ns.unwrap_or(bands.t1)));
        let y = 6.0 + 12.0 * i as f64;
        // The label goes right of its bar, or left of it in the right half of the plot.
        let (text_x, anchor) = if b < WIDTH / 2.0 {
            (b + 3.0, "start")
        } else {
            (a - 3.0, "end")
        };
        let _ = write!(
            out,
            "<rect x=\"{a:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"8\" fill=\"#c44\"><title>{label}</title></rect><text x=\"{text_x:.1}\" y=\"{:.1}\" font-size=\"9\" text-anchor=\"{anchor}\">{label}</text>",
            (b - a).max(1.0),
            y + 8.0,
            label = escape(&f.label)
        );
    }
    out.push_str("</svg><table><tr><th>from (s)</th><th>to (s)</th><th>fault</th></tr>");
    for f in bands.faults {
        let _ = write!(
            out,
            "<tr><td>{:.3}</td><td>{}</td><td>{}</td></tr>",
            f.start_ns as f64 / 1e9,
            f.end_ns
                .map_or("end".to_string(), |t| format!("{:.3}", t as f64 / 1e9)),
            escape(&f.label)
        );
    }
    out.push_str("</table>");
    out
}

/// Acknowledged sends per second, in one-second buckets from `t0`.
fn throughput(history: &History, t0: u64, t1: u64) -> Vec<(u64, f64)> {
    const BUCKET: u64 = 1_000_000_000;
    let buckets = ((t1 - t0) / BUCKET + 1).min(100_000) as usize;
    let mut counts = vec![0u64; buckets];
    for op in history.ops() {
        if op.outcome != Outcome::Ok {
            continue;
        }
        let Some(done) = op.complete_ns else { continue };
        let mut sends = 0;
        for_each_send(op, |_, _, _| sends += 1);
        let bucket = ((done.saturating_sub(t0)) / BUCKET) as usize;
        if let Some(c) = counts.get_mut(bucket) {
            *c += sends;
        }
    }
    counts
        .iter()
        .enumerate()
        .map(|(i, c)| (t0 + i as u64 * BUCKET, *c as f64))
        .collect()
}

fn latencies(history: &History) -> Vec<(u64, f64)> {
    let points: Vec<(u64, f64)> = history
        .ops()
        .iter()
        .filter_map(|o| {
            o.complete_ns
                .map(|c| (o.invoke_ns, (c - o.invoke_ns) as f64 / 1e6))
        })
        .collect();
    downsample(&points, 4000)
}

fn plot(title: &str, points: &[(u64, f64)], bands: &Bands, unit: &str, step: bool) -> String {
    let mut out = format!("<h2>{}</h2>", escape(title));
    if points.is_empty() {
        out.push_str("<p>No data.</p>");
        return out;
    }
    let (t0, t1) = (bands.t0, bands.t1);
    let max = points.iter().map(|p| p.1).fold(0.0f64, f64::max).max(1e-9);
    let x = |t: u64| bands.x(t);
    let y = |v: f64| HEIGHT - 20.0 - v / max * (HEIGHT - 30.0);
    let _ = write!(
        out,
        "<svg width=\"{WIDTH}\" height=\"{HEIGHT}\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    out.push_str(&bands.shade(10.0, HEIGHT - 30.0));
    let _ = write!(out, "<text x=\"2\" y=\"12\" font-size=\"10\">{max:.1} {unit}</text><text x=\"2\" y=\"{}\" font-size=\"10\">0</text>", HEIGHT - 20.0);
    let _ = write!(
        out,
        "<text x=\"40\" y=\"{}\" font-size=\"10\">{:.3} s</text>",
        HEIGHT - 4.0,
        t0 as f64 / 1e9
    );
    let _ = write!(
        out,
        "<text x=\"{}\" y=\"{}\" font-size=\"10\">{:.3} s</text>",
        WIDTH - 80.0,
        HEIGHT - 4.0,
        t1 as f64 / 1e9
    );
    if step {
        let mut path = String::new();
        let mut last_y = y(0.0);
        for (i, (t, v)) in points.iter().enumerate() {
            let _ = write!(
                path,
                "{}{:.1},{:.1} L{:.1},{:.1} ",
                if i == 0 { "M" } else { "L" },
                x(*t),
                last_y,
                x(*t),
                y(*v)
            );
            last_y = y(*v);
        }
        let _ = write!(out, "<path d=\"{path}\" fill=\"none\" stroke=\"#c33\"/>");
    } else {
        for (t, v) in points {
            let _ = write!(
                out,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"1.5\" fill=\"#36c\"/>",
                x(*t),
                y(*v)
            );
        }
    }
    out.push_str("</svg>");
    out
}

fn keys_of(op: &Op) -> BTreeSet<KeyId> {
    let mut keys = BTreeSet::new();
    for_each_send(op, |k, _, _| {
        keys.insert(k);
    });
    for_each_read(op, |k, _, _| {
        keys.insert(k);
    });
    match &op.kind {
        OpKind::Write { key, .. } | OpKind::RegisterRead { key, .. } | OpKind::Read { key, .. } => {
            keys.insert(*key);
        }
        _ => {}
    }
    keys
}

fn timelines(history: &History, verdict: &Verdict, bands: &Bands) -> String {
    let flagged: BTreeSet<OpId> = verdict
        .findings
        .iter()
        .flat_map(|f| f.anomaly.ops.iter().copied())
        .collect();
    let mut by_key: BTreeMap<KeyId, Vec<&Op>> = BTreeMap::new();
    for op in history.ops() {
        for k in keys_of(op) {
            by_key.entry(k).or_default().push(op);
        }
    }
    let mut out = String::from("<h2>Per-partition timelines</h2><p>One row per process; bars span invocation to completion. Red: involved in a finding; grey: failed; orange: indeterminate.</p>");
    for (key, ops) in by_key.iter().take(TIMELINE_KEYS) {
        let _ = write!(
            out,
            "<h3>{} ({} operations{})</h3>",
            escape(history.key_name(*key)),
            ops.len(),
            if ops.len() > TIMELINE_OPS {
                ", first shown"
            } else {
                ""
            }
        );
        out.push_str(&timeline_svg(ops, &flagged, bands));
    }
    out
}

fn timeline_svg(ops: &[&Op], flagged: &BTreeSet<OpId>, bands: &Bands) -> String {
    let shown = &ops[..ops.len().min(TIMELINE_OPS)];
    let processes: BTreeSet<u64> = shown.iter().map(|o| o.process).collect();
    let row: BTreeMap<u64, usize> = processes.iter().enumerate().map(|(i, p)| (*p, i)).collect();
    let height = 10.0 + 12.0 * processes.len() as f64;
    let t1 = bands.t1;
    let x = |t: u64| bands.x(t);
    let mut out =
        format!("<svg width=\"{WIDTH}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\">");
    out.push_str(&bands.shade(0.0, height));
    for (p, i) in &row {
        let _ = write!(
            out,
            "<text x=\"2\" y=\"{}\" font-size=\"9\">p{p}</text>",
            14.0 + 12.0 * *i as f64
        );
    }
    for op in shown {
        let color = if flagged.contains(&op.id) {
            "#d22"
        } else {
            match op.outcome {
                Outcome::Ok => "#6a6",
                Outcome::Fail => "#aaa",
                Outcome::Info => "#e90",
            }
        };
        let (a, b) = (x(op.invoke_ns), x(op.complete_ns.unwrap_or(t1)));
        let _ = write!(
            out,
            "<rect x=\"{a:.1}\" y=\"{}\" width=\"{:.1}\" height=\"8\" fill=\"{color}\"><title>op {} {}</title></rect>",
            6.0 + 12.0 * row[&op.process] as f64,
            (b - a).max(1.0),
            op.id.0,
            op.kind.name()
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gen::Rng;
    use crate::{check, CheckOptions};

    fn history() -> History {
        let mut h = History::new();
        let p0 = h.key("t-0").unwrap();
        let mut rng = Rng::new(1);
        for i in 0..20u64 {
            let at = i * 500_000_000;
            let send = h
                .invoke(
                    1,
                    at,
                    OpKind::Send {
                        key: p0,
                        value: i as i64,
                        offset: None,
                    },
                )
                .unwrap();
            let done = at + 1_000_000 + rng.below(1_000_000);
            let output = OpKind::Send {
                key: p0,
                value: i as i64,
                offset: Some(i as i64),
            };
            h.complete(send, done, Outcome::Ok, Some(output)).unwrap();
        }
        h
    }

    #[test]
    fn faults_are_listed_and_shaded_and_sends_counted_per_second() {
        let h = history();
        let verdict = check(&h, &CheckOptions::default());
        let faults = [FaultSpan {
            start_ns: 2_000_000_000,
            end_ns: Some(4_000_000_000),
            label: "partition <1> | [2, 3]".to_owned(),
        }];
        let page = html_with_faults(&h, &verdict, &faults);
        assert!(page.contains("<h2>Faults</h2>"));
        assert!(page.contains("partition &lt;1&gt; | [2, 3]"));
        assert!(!page.contains("partition <1>"));
        // One shaded band per plot and timeline, each titled with the fault.
        assert!(page.matches("fill-opacity=\"0.35\"").count() >= 4);
        assert!(page.contains("Throughput: acknowledged sends per second"));
        let plain = html(&h, &verdict);
        assert!(!plain.contains("<h2>Faults</h2>") && !plain.contains("fill-opacity"));
        // Two sends complete in each one-second bucket.
        let (t0, t1) = time_range(&h, &[]);
        let per_second = throughput(&h, t0, t1);
        assert_eq!(per_second.len(), 10);
        assert!(per_second.iter().all(|(_, n)| *n == 2.0), "{per_second:?}");
    }
}
