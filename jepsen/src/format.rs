//! File formats: Seedlog's native JSON-lines event log, and a simple JSON array of whole
//! operations so other tools' histories can be checked.
//!
//! Native format, one event per line (`op` uses the field `f` for the operation kind):
//!
//! ```text
//! {"event":"invoke","id":0,"process":1,"time_ns":100,"op":{"f":"send","key":"orders-0","value":5}}
//! {"event":"ok","id":0,"time_ns":180,"op":{"f":"send","key":"orders-0","value":5,"offset":0}}
//! {"event":"invoke","id":1,"process":2,"time_ns":120,"op":{"f":"poll","records":[]}}
//! {"event":"ok","id":1,"time_ns":200,"op":{"f":"poll","records":[["orders-0",0,5]]}}
//! {"event":"crash","process":2,"time_ns":300}
//! ```
//!
//! Completion events are `ok`, `fail` or `info`; their `op` (optional) replaces the invoked one
//! to carry outputs. An invoked operation with no completion never returned.
//!
//! Operation-array format: `[{"client", "call_ns", "return_ns", "op", "key", "value",
//! "output"}, ...]` or `{"ops": [...]}`. `return_ns` null or missing means the call never
//! returned. `op` is `append` (alias `send`), `read` (alias `poll`) or `write`. A key with
//! appends is a log: `read`'s `value` is the start offset and `output` the values from there to
//! the end of the log (null if unknown). A key with writes is a register: `read`'s `output` is
//! the value read (null: never written). An optional `outcome` ("ok", "fail", "info") overrides
//! the default (ok if it returned).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::history::{History, HistoryError, KeyId, MicroOp, OpId, OpKind, Outcome, Record};

/// Why a history file could not be read.
#[derive(Debug)]
pub enum FormatError {
    /// Malformed JSON or an unexpected field, at a line (1-based; 0 for the array format).
    Json {
        /// The line.
        line: usize,
        /// The parser's message.
        message: String,
    },
    /// A well-formed line that does not describe a valid history event.
    Invalid {
        /// The line (1-based).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// An entry of the operation array that does not describe a valid operation.
    InvalidEntry {
        /// The entry's index (0-based).
        index: usize,
        /// What is wrong.
        message: String,
    },
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::Json { line, message } => {
                write!(f, "line {line}: malformed JSON: {message}")
            }
            FormatError::Invalid { line, message } => write!(f, "line {line}: {message}"),
            FormatError::InvalidEntry { index, message } => {
                write!(f, "operation {index}: {message}")
            }
        }
    }
}

impl std::error::Error for FormatError {}

fn invalid(line: usize, e: impl fmt::Display) -> FormatError {
    FormatError::Invalid {
        line,
        message: e.to_string(),
    }
}

fn invalid_entry(index: usize, e: impl fmt::Display) -> FormatError {
    FormatError::InvalidEntry {
        index,
        message: e.to_string(),
    }
}

/// The two file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// JSON lines of invoke/complete events.
    JsonLines,
    /// A JSON array of whole operations (or `{"ops": [...]}`).
    OpArray,
}

/// Guesses the format from the text: a leading `[`, or a single object with an `ops` array,
/// is the operation array; anything else is JSON lines.
#[must_use]
pub fn detect(text: &str) -> Format {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        return Format::OpArray;
    }
    match serde_json::from_str::<Value>(trimmed) {
        Ok(Value::Object(map)) if map.get("ops").is_some_and(Value::is_array) => Format::OpArray,
        _ => Format::JsonLines,
    }
}

/// Parses a history in either format, detecting which.
///
/// # Errors
/// A [`FormatError`] naming the offending line or entry.
pub fn parse(text: &str) -> Result<History, FormatError> {
    match detect(text) {
        Format::JsonLines => parse_jsonl(text),
        Format::OpArray => parse_op_array(text),
    }
}

/// A record as `[key, offset, value]`.
type RecordJson = (String, i64, i64);

/// A transaction step in the native format.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "snake_case")]
enum MopJson {
    Send {
        key: String,
        value: i64,
        #[serde(default)]
        offset: Option<i64>,
    },
    Poll {
        #[serde(default)]
        records: Vec<RecordJson>,
    },
}

/// An operation in the native format.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "snake_case")]
enum OpJson {
    Send {
        key: String,
        value: i64,
        #[serde(default)]
        offset: Option<i64>,
    },
    Poll {
        #[serde(default)]
        records: Vec<RecordJson>,
        #[serde(default)]
        rebalanced: bool,
    },
    Txn {
        mops: Vec<MopJson>,
    },
    Assign {
        keys: Vec<String>,
    },
    Subscribe {
        keys: Vec<String>,
    },
    OffsetCommit {
        offsets: Vec<(String, i64)>,
    },
    Crash,
    Read {
        key: String,
        from: i64,
        #[serde(default)]
        values: Option<Vec<i64>>,
    },
    Write {
        key: String,
        value: i64,
    },
    RegisterRead {
        key: String,
        #[serde(default)]
        value: Option<i64>,
    },
}

/// One line of the native format.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct EventJson {
    event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    process: Option<u64>,
    time_ns: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    op: Option<OpJson>,
}

fn records_in(h: &mut History, records: Vec<RecordJson>) -> Result<Vec<Record>, HistoryError> {
    records
        .into_iter()
        .map(|(key, offset, value)| {
            Ok(Record {
                key: h.key(&key)?,
                offset,
                value,
            })
        })
        .collect()
}

fn keys_in(h: &mut History, keys: &[String]) -> Result<Vec<KeyId>, HistoryError> {
    keys.iter().map(|k| h.key(k)).collect()
}

fn op_in(h: &mut History, op: OpJson) -> Result<OpKind, HistoryError> {
    Ok(match op {
        OpJson::Send { key, value, offset } => OpKind::Send {
            key: h.key(&key)?,
            value,
            offset,
        },
        OpJson::Poll {
            records,
            rebalanced,
        } => OpKind::Poll {
            records: records_in(h, records)?,
            rebalanced,
        },
        OpJson::Txn { mops } => {
            let mut out = Vec::with_capacity(mops.len());
            for mop in mops {
                out.push(match mop {
                    MopJson::Send { key, value, offset } => MicroOp::Send {
                        key: h.key(&key)?,
                        value,
                        offset,
                    },
                    MopJson::Poll { records } => MicroOp::Poll {
                        records: records_in(h, records)?,
                    },
                });
            }
            OpKind::Txn { mops: out }
        }
        OpJson::Assign { keys } => OpKind::Assign {
            keys: keys_in(h, &keys)?,
        },
        OpJson::Subscribe { keys } => OpKind::Subscribe {
            keys: keys_in(h, &keys)?,
        },
        OpJson::OffsetCommit { offsets } => OpKind::OffsetCommit {
            offsets: offsets
                .iter()
                .map(|(k, o)| Ok((h.key(k)?, *o)))
                .collect::<Result<_, HistoryError>>()?,
        },
        OpJson::Crash => OpKind::Crash,
        OpJson::Read { key, from, values } => OpKind::Read {
            key: h.key(&key)?,
            from,
            values,
        },
        OpJson::Write { key, value } => OpKind::Write {
            key: h.key(&key)?,
            value,
        },
        OpJson::RegisterRead { key, value } => OpKind::RegisterRead {
            key: h.key(&key)?,
            value,
        },
    })
}

fn records_out(h: &History, records: &[Record]) -> Vec<RecordJson> {
    records
        .iter()
        .map(|r| (h.key_name(r.key).to_string(), r.offset, r.value))
        .collect()
}

fn keys_out(h: &History, keys: &[KeyId]) -> Vec<String> {
    keys.iter().map(|k| h.key_name(*k).to_string()).collect()
}

fn op_out(h: &History, op: &OpKind) -> OpJson {
    let name = |k: &KeyId| h.key_name(*k).to_string();
    match op {
        OpKind::Send { key, value, offset } => OpJson::Send {
            key: name(key),
            value: *value,
            offset: *offset,
        },
        OpKind::Poll {
            records,
            rebalanced,
        } => OpJson::Poll {
            records: records_out(h, records),
            rebalanced: *rebalanced,
        },
        OpKind::Txn { mops } => OpJson::Txn {
            mops: mops
                .iter()
                .map(|m| match m {
                    MicroOp::Send { key, value, offset } => MopJson::Send {
                        key: name(key),
                        value: *value,
                        offset: *offset,
                    },
                    MicroOp::Poll { records } => MopJson::Poll {
                        records: records_out(h, records),
                    },
                })
                .collect(),
        },
        OpKind::Assign { keys } => OpJson::Assign {
            keys: keys_out(h, keys),
        },
        OpKind::Subscribe { keys } => OpJson::Subscribe {
            keys: keys_out(h, keys),
        },
        OpKind::OffsetCommit { offsets } => OpJson::OffsetCommit {
            offsets: offsets.iter().map(|(k, o)| (name(k), *o)).collect(),
        },
        OpKind::Crash => OpJson::Crash,
        OpKind::Read { key, from, values } => OpJson::Read {
            key: name(key),
            from: *from,
            values: values.clone(),
        },
        OpKind::Write { key, value } => OpJson::Write {
            key: name(key),
            value: *value,
        },
        OpKind::RegisterRead { key, value } => OpJson::RegisterRead {
            key: name(key),
            value: *value,
        },
    }
}

/// Serializes a history as native JSON lines (events in time order, completions before
/// invocations at equal times, except that an operation completing at the instant it was
/// invoked completes after its own invocation). Parsing the result gives back an equal history.
#[must_use]
pub fn to_jsonl(history: &History) -> String {
    // (time, 0 = completion of an earlier invocation / 1 = crash or invocation / 2 = completion
    // of an invocation at the same instant, op id)
    let mut events: Vec<(u64, u8, OpId)> = Vec::with_capacity(history.len() * 2);
    for op in history.ops() {
        events.push((op.invoke_ns, 1, op.id));
        if let (Some(done), false) = (op.complete_ns, matches!(op.kind, OpKind::Crash)) {
            let phase = if done == op.invoke_ns { 2 } else { 0 };
            events.push((done, phase, op.id));
        }
    }
    events.sort_unstable();
    let mut out = String::new();
    for (time_ns, phase, id) in events {
        let op = history
            .op(id)
            .expect("events come from the history's own ops");
        let event = match (phase, &op.kind) {
            (_, OpKind::Crash) => EventJson {
                event: "crash".into(),
                id: None,
                process: Some(op.process),
                time_ns,
                op: None,
            },
            (1, kind) => EventJson {
                event: "invoke".into(),
                id: Some(u64::from(id.0)),
                process: Some(op.process),
                time_ns,
                op: Some(op_out(history, kind)),
            },
            (_, kind) => EventJson {
                event: outcome_name(op.outcome).into(),
                id: Some(u64::from(id.0)),
                process: None,
                time_ns,
                op: Some(op_out(history, kind)),
            },
        };
        out.push_str(&serde_json::to_string(&event).expect("event structs always serialize"));
        out.push('\n');
    }
    out
}

fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Ok => "ok",
        Outcome::Fail => "fail",
        Outcome::Info => "info",
    }
}

/// Parses the native JSON-lines format.
///
/// # Errors
/// A [`FormatError`] naming the offending line.
pub fn parse_jsonl(text: &str) -> Result<History, FormatError> {
    let mut h = History::new();
    let mut ids: BTreeMap<u64, OpId> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let event: EventJson = serde_json::from_str(line).map_err(|e| FormatError::Json {
            line: n,
            message: e.to_string(),
        })?;
        apply_event(&mut h, &mut ids, event).map_err(|m| invalid(n, m))?;
    }
    Ok(h)
}

fn apply_event(h: &mut History, ids: &mut BTreeMap<u64, OpId>, e: EventJson) -> Result<(), String> {
    let kind =
        e.op.map(|op| op_in(h, op))
            .transpose()
            .map_err(|x| x.to_string())?;
    match e.event.as_str() {
        "invoke" => {
            let (Some(id), Some(process), Some(kind)) = (e.id, e.process, kind) else {
                return Err("invoke needs id, process and op".into());
            };
            if ids.contains_key(&id) {
                return Err(format!("op id {id} invoked twice"));
            }
            let op_id = h
                .invoke(process, e.time_ns, kind)
                .map_err(|x| x.to_string())?;
            ids.insert(id, op_id);
        }
        "ok" | "fail" | "info" => {
            let outcome = match e.event.as_str() {
                "ok" => Outcome::Ok,
                "fail" => Outcome::Fail,
                _ => Outcome::Info,
            };
            let id = e.id.ok_or("completion needs the id of its invocation")?;
            let op_id = *ids
                .get(&id)
                .ok_or_else(|| format!("completion of op {id}, which was never invoked"))?;
            h.complete(op_id, e.time_ns, outcome, kind)
                .map_err(|x| x.to_string())?;
        }
        "crash" => {
            let process = e.process.ok_or("crash needs a process")?;
            h.crash(process, e.time_ns).map_err(|x| x.to_string())?;
        }
        other => return Err(format!("unknown event {other:?}")),
    }
    Ok(())
}

/// One entry of the operation-array format.
#[derive(Clone, Debug, Deserialize)]
struct ExtOp {
    client: Value,
    call_ns: u64,
    #[serde(default)]
    return_ns: Option<u64>,
    op: String,
    key: Value,
    #[serde(default)]
    value: Value,
    #[serde(default)]
    output: Value,
    #[serde(default)]
    outcome: Option<String>,
}

fn scalar_name(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn int(v: &Value, what: &str) -> Result<Option<i64>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("{what} {n} is not a 64-bit integer")),
        Value::String(s) => s
            .parse()
            .map(Some)
            .map_err(|_| format!("{what} {s:?} is not an integer")),
        other => Err(format!("{what} must be an integer, got {other}")),
    }
}

/// Parses the operation-array format.
///
/// # Errors
/// A [`FormatError`] naming the offending entry.
pub fn parse_op_array(text: &str) -> Result<History, FormatError> {
    let root: Value = serde_json::from_str(text).map_err(|e| FormatError::Json {
        line: e.line(),
        message: e.to_string(),
    })?;
    let list = match root {
        Value::Array(list) => list,
        Value::Object(mut map) => match map.remove("ops") {
            Some(Value::Array(list)) => list,
            _ => {
                return Err(invalid_entry(
                    0,
                    "expected an array of operations or {\"ops\": [...]}",
                ))
            }
        },
        _ => {
            return Err(invalid_entry(
                0,
                "expected an array of operations or {\"ops\": [...]}",
            ))
        }
    };
    let mut ops = Vec::with_capacity(list.len());
    for (i, v) in list.into_iter().enumerate() {
        let op: ExtOp = serde_json::from_value(v).map_err(|e| invalid_entry(i, e))?;
        ops.push(op);
    }
    // Keys with appends are logs, keys with writes are registers.
    let mut log_keys = std::collections::BTreeSet::new();
    let mut register_keys = std::collections::BTreeSet::new();
    for op in &ops {
        let key = scalar_name(&op.key).unwrap_or_default();
        match op.op.as_str() {
            "append" | "send" => log_keys.insert(key),
            "write" => register_keys.insert(key),
            _ => false,
        };
    }
    let mut order: Vec<usize> = (0..ops.len()).collect();
    order.sort_by_key(|i| (ops[*i].call_ns, *i));
    let mut h = History::new();
    let mut clients: BTreeMap<String, u64> = BTreeMap::new();
    for i in order {
        let op = &ops[i];
        let client = scalar_name(&op.client)
            .ok_or_else(|| invalid_entry(i, "client must be a string or number"))?;
        let next = clients.len() as u64;
        let process = match client.parse::<u64>() {
            Ok(p) => p,
            Err(_) => *clients.entry(client).or_insert(next + (1 << 40)),
        };
        let key_name = scalar_name(&op.key)
            .ok_or_else(|| invalid_entry(i, "key must be a string or number"))?;
        let is_register = register_keys.contains(&key_name) && !log_keys.contains(&key_name);
        let key = h.key(&key_name).map_err(|e| invalid_entry(i, e))?;
        let kind = ext_kind(op, key, is_register).map_err(|e| invalid_entry(i, e))?;
        let outcome = match op.outcome.as_deref() {
            None | Some("ok") => Outcome::Ok,
            Some("fail") => Outcome::Fail,
            Some("info") => Outcome::Info,
            Some(other) => return Err(invalid_entry(i, format!("unknown outcome {other:?}"))),
        };
        h.push_complete(process, op.call_ns, op.return_ns, outcome, kind)
            .map_err(|e| invalid_entry(i, e))?;
    }
    Ok(h)
}

fn ext_kind(op: &ExtOp, key: KeyId, is_register: bool) -> Result<OpKind, String> {
    match (op.op.as_str(), is_register) {
        ("append" | "send", _) => Ok(OpKind::Send {
            key,
            value: int(&op.value, "value")?.ok_or("append needs a value")?,
            offset: int(&op.output, "offset")?,
        }),
        ("write", _) => Ok(OpKind::Write {
            key,
            value: int(&op.value, "value")?.ok_or("write needs a value")?,
        }),
        ("read" | "poll", true) => Ok(OpKind::RegisterRead {
            key,
            value: int(&op.output, "value")?,
        }),
        ("read" | "poll", false) if !op.output.is_array() && !op.output.is_null() => {
            Ok(OpKind::RegisterRead {
                key,
                value: int(&op.output, "value")?,
            })
        }
        ("read" | "poll", false) => {
            let values = match &op.output {
                Value::Array(items) => Some(
                    items
                        .iter()
                        .map(|v| int(v, "value")?.ok_or_else(|| "null value in a read".to_string()))
                        .collect::<Result<Vec<i64>, String>>()?,
                ),
                _ => None,
            };
            Ok(OpKind::Read {
                key,
                from: int(&op.value, "start offset")?.unwrap_or(0),
                values,
            })
        }
        (other, _) => Err(format!("unknown op {other:?}")),
    }
}
