//! File formats, the CLI's exit codes, and the generated semantics document.

mod common;

use common::H;
use seedlog_jepsen::format::{detect, parse, to_jsonl, Format};
use seedlog_jepsen::semantics::render_markdown;
use seedlog_jepsen::{check, CheckOptions, OpKind, Outcome, Validity};

fn temp_file(name: &str, text: &str) -> String {
    let path = std::env::temp_dir().join(format!("seedlog-jepsen-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn sample() -> H {
    let mut t = H::new();
    t.send(1, "x", 10, Some(0));
    let mops = vec![t.send_mop("y", 5, 0), t.poll_mop(&[("x", 0, 10)])];
    t.txn(2, Outcome::Info, mops);
    t.poll(3, &[("x", 0, 10)]);
    t.assign(3, &["x", "y"]);
    let key = t.h.key("r").unwrap();
    t.push(4, Outcome::Ok, OpKind::Write { key, value: 1 });
    t.h.invoke(
        5,
        200,
        OpKind::Send {
            key,
            value: 9,
            offset: None,
        },
    )
    .unwrap();
    t.h.crash(5, 300).unwrap();
    t
}

// Dumping a history to JSON lines and parsing it back must give the same operations, so a
// simulator seed can be checked offline exactly as it was checked online.
#[test]
fn jsonl_round_trip() {
    let t = sample();
    let text = to_jsonl(&t.h);
    assert_eq!(detect(&text), Format::JsonLines);
    let back = parse(&text).unwrap();
    assert_eq!(back.ops().len(), t.h.ops().len());
    for (a, b) in t.h.ops().iter().zip(back.ops()) {
        assert_eq!(
            (a.process, a.invoke_ns, a.complete_ns, a.outcome),
            (b.process, b.invoke_ns, b.complete_ns, b.outcome)
        );
        assert_eq!(a.kind.name(), b.kind.name());
    }
    assert_eq!(to_jsonl(&back), text);
}

// An operation refused at the instant it was sent (a synchronous refusal in the simulator)
// completes at its own invocation time; the dump must still list the invocation first so the
// file parses back.
#[test]
fn jsonl_round_trip_with_instant_completion() {
    let mut t = sample();
    let key = t.h.key("x").unwrap();
    let id =
        t.h.invoke(
            9,
            500,
            OpKind::Send {
                key,
                value: 77,
                offset: None,
            },
        )
        .unwrap();
    t.h.complete(id, 500, Outcome::Fail, None).unwrap();
    let text = to_jsonl(&t.h);
    let back = parse(&text).expect("a dumped history parses back");
    assert_eq!(back.ops().len(), t.h.ops().len());
    assert_eq!(to_jsonl(&back), text);
}

// Other tools' histories arrive as an operation array: appends and reads on a log, writes and
// reads on a register, with missing return times meaning "never returned".
#[test]
fn op_array_format() {
    let text = r#"{"ops": [
        {"client": 0, "call_ns": 0, "return_ns": 10, "op": "append", "key": 1, "value": 7, "output": 0},
        {"client": "b", "call_ns": 5, "return_ns": null, "op": "append", "key": 1, "value": 8, "output": null},
        {"client": 2, "call_ns": 20, "return_ns": 30, "op": "read", "key": 1, "value": 0, "output": [7]},
        {"client": 2, "call_ns": 40, "return_ns": 50, "op": "write", "key": "r", "value": 3},
        {"client": 0, "call_ns": 60, "return_ns": 70, "op": "read", "key": "r", "output": 3}
    ]}"#;
    assert_eq!(detect(text), Format::OpArray);
    let h = parse(text).unwrap();
    assert_eq!(h.len(), 5);
    assert_eq!(h.ops()[1].outcome, Outcome::Info);
    assert!(matches!(
        h.ops()[4].kind,
        OpKind::RegisterRead { value: Some(3), .. }
    ));
    assert!(check(&h, &CheckOptions::default()).is_valid());
    let bad = text.replace(r#""output": 3}"#, r#""output": 4}"#);
    assert_eq!(
        check(&parse(&bad).unwrap(), &CheckOptions::default()).validity,
        Validity::Invalid
    );
}

// Malformed input must be an error naming the line, never a panic.
#[test]
fn malformed_input_is_an_error() {
    assert!(parse("{\"event\":\"ok\",\"id\":3,\"time_ns\":1}\n")
        .unwrap_err()
        .to_string()
        .contains("line 1"));
    assert!(parse("not json").is_err());
    assert!(parse("[{\"client\":0}]").is_err());
    let busy = "{\"event\":\"invoke\",\"id\":0,\"process\":1,\"time_ns\":1,\"op\":{\"f\":\"crash\"}}\n\
                {\"event\":\"invoke\",\"id\":1,\"process\":1,\"time_ns\":2,\"op\":{\"f\":\"crash\"}}\n";
    assert!(parse(busy).unwrap_err().to_string().contains("line 2"));
}

// The CLI's exit codes are the contract with scripts: 0 valid, 1 invalid, 2 unknown or
// unusable input; --json and --html must produce their outputs.
#[test]
fn cli_exit_codes() {
    let valid = temp_file("valid.jsonl", &to_jsonl(&sample().h));
    assert_eq!(
        seedlog_jepsen::cli::run_check(std::slice::from_ref(&valid)),
        0
    );
    let html =
        std::env::temp_dir().join(format!("seedlog-jepsen-{}-report.html", std::process::id()));
    let html = html.to_string_lossy().into_owned();
    assert_eq!(
        seedlog_jepsen::cli::run_check(&[valid, "--json".into(), "--html".into(), html.clone()]),
        0
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg") && page.contains("Verdict: valid"));

    let mut bad = H::new();
    bad.send(1, "x", 10, Some(0));
    bad.send(1, "x", 20, Some(1));
    bad.poll(2, &[("x", 1, 20)]);
    let invalid = temp_file("invalid.jsonl", &to_jsonl(&bad.h));
    assert_eq!(seedlog_jepsen::cli::run_check(&[invalid]), 1);

    let mut cyc = H::new();
    let m1 = vec![cyc.send_mop("x", 1, 0), cyc.send_mop("y", 2, 1)];
    cyc.txn_at(1, 10, 50, m1);
    let m2 = vec![cyc.send_mop("x", 3, 1), cyc.send_mop("y", 4, 0)];
    cyc.txn_at(2, 10, 50, m2);
    let unknown = temp_file("unknown.jsonl", &to_jsonl(&cyc.h));
    assert_eq!(
        seedlog_jepsen::cli::run_check(&[
            unknown,
            "--transactions".into(),
            "--timeout-secs".into(),
            "0".into()
        ]),
        2
    );

    let garbage = temp_file("garbage.jsonl", "{not json");
    assert_eq!(seedlog_jepsen::cli::run_check(&[garbage]), 2);
    assert_eq!(
        seedlog_jepsen::cli::run_check(&["/nonexistent/seedlog/history".into()]),
        2
    );
    assert_eq!(seedlog_jepsen::cli::run_check(&["--bogus".into()]), 2);
}

// SEMANTICS.md must be exactly what the verdict logic enforces; regenerate it with
// `UPDATE_SEMANTICS=1 cargo test -p seedlog-jepsen --test formats_cli`.
#[test]
fn semantics_document_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/SEMANTICS.md");
    let expected = render_markdown();
    if std::env::var_os("UPDATE_SEMANTICS").is_some() {
        std::fs::write(path, &expected).unwrap();
    }
    let actual = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        actual == expected,
        "SEMANTICS.md is out of date; rerun with UPDATE_SEMANTICS=1"
    );
}
