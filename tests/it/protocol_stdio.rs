//! The real `ctmr-skill serve` binary over real pipes, raw JSON lines: what an agent's
//! MCP client sees. Includes the golden `tools/list` (schemas/tools/tools_list.json).

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::stdio::Server;

use serde_json::{json, Value};

#[test]
fn tools_list_matches_the_golden_file() {
    let dir = common::fresh_dir();
    let mut server = Server::start(dir.path(), None);
    server.initialize();
    server.send(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
    let listed = server.response(1, Duration::from_secs(10));
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo_root().join("schemas/tools/tools_list.json"))
            .unwrap(),
    )
    .unwrap();
    let (wire, golden_tools) = (
        listed["result"]["tools"].as_array().unwrap(),
        golden["tools"].as_array().unwrap(),
    );
    assert_eq!(wire.len(), golden_tools.len());
    for (seen, expected) in wire.iter().zip(golden_tools) {
        assert!(
            seen == expected,
            "tools/list entry {} drifted from schemas/tools/tools_list.json",
            expected["name"]
        );
    }
    for tool in golden["tools"].as_array().unwrap() {
        assert!(
            tool["description"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .contains("clinical"),
            "{}",
            tool["name"]
        );
    }
    server.close_and_wait(Duration::from_secs(5));
}

/// Issue 21 (6): every string a client fills freely states `maxLength`, every array
/// `maxItems` (and `maxLength` on string items).
fn assert_capped(tool: &Value) {
    let properties = tool["inputSchema"]["properties"].as_object().unwrap();
    for (name, p) in properties {
        let free_string = |s: &Value| s["type"] == "string" && s.get("enum").is_none();
        let capped = match p["type"].as_str() {
            Some("array") => {
                p["maxItems"].is_u64()
                    && (!free_string(&p["items"]) || p["items"]["maxLength"].is_u64())
            }
            _ => !free_string(p) || p["maxLength"].is_u64(),
        };
        assert!(capped, "{}.{name} has no cap: {p}", tool["name"]);
    }
}

/// Issue 17's budget: the whole `tools/list` answer, as sent, fits in 29.5 KB (25 KB, plus
/// issue 13's ninth tool `render_overlay` and `preview`, issue 15's `series_uid`, issue 14's
/// Slurm arguments of `run_batch` and issue 21's caps on every string and array); the server
/// advertises resources, and `resources/read` refuses what is not inside a known pack.
#[test]
fn tools_list_fits_the_budget_and_resources_are_advertised() {
    let dir = common::fresh_dir();
    let mut server = Server::start(dir.path(), None);
    let init = server.initialize_with("2025-06-18", json!({}));
    assert!(
        init["result"]["capabilities"]["resources"].is_object(),
        "{init}"
    );
    server.send(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
    let listed = server.response(1, Duration::from_secs(10));
    let bytes = listed.to_string().len();
    eprintln!("tools/list: {bytes} bytes");
    assert!(bytes <= 29_500, "tools/list is {bytes} bytes");
    for tool in listed["result"]["tools"].as_array().unwrap() {
        assert_capped(tool);
        let schema = tool["outputSchema"].to_string();
        assert!(
            !schema.contains("\"description\""),
            "{}: {schema}",
            tool["name"]
        );
    }
    server.send(json!({"jsonrpc": "2.0", "id": 2, "method": "resources/list"}));
    let resources = server.response(2, Duration::from_secs(10));
    assert!(resources["result"]["resources"].is_array(), "{resources}");
    let outside = dir.path().join("secret.json");
    std::fs::write(&outside, "{}").unwrap();
    server.send(
        json!({"jsonrpc": "2.0", "id": 3, "method": "resources/read",
        "params": {"uri": format!("ctmr://pack{}", outside.display())}}),
    );
    let refused = server.response(3, Duration::from_secs(10));
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not inside")),
        "{refused}"
    );
    server.close_and_wait(Duration::from_secs(5));
}

#[test]
fn faults_and_refusals_never_kill_the_server() {
    let dir = common::fresh_dir();
    let mut server = Server::start(dir.path(), None);
    server.initialize();

    server.send_raw("{this is not json");
    let parse = server.wait_for("parse error", Duration::from_secs(10), |m| {
        m.get("error").is_some()
    });
    assert_eq!(parse["error"]["code"], -32700);

    server.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/frobnicate"}));
    assert_eq!(
        server.response(2, Duration::from_secs(10))["error"]["code"],
        -32601
    );

    server.call(3, "no_such_tool", json!({}));
    assert_eq!(
        server.response(3, Duration::from_secs(10))["error"]["code"],
        -32602
    );

    server.call(
        4,
        "run_script",
        json!({"input": "/x.nii.gz", "modality": "CT"}),
    );
    let bad = server.response(4, Duration::from_secs(10));
    assert_eq!(bad["result"]["isError"], true);
    let text = bad["result"]["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("argument 'modality'") && text.contains("CT_BODY"),
        "{text}"
    );

    server.call(
        5,
        "inspect_label_map",
        json!({"mask": dir.path().join("missing.nii.gz")}),
    );
    let missing = server.response(5, Duration::from_secs(10));
    assert_eq!(missing["result"]["isError"], true);
    assert!(missing["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("missing.nii.gz"));

    // Still alive and answering.
    server.send(json!({"jsonrpc": "2.0", "id": 6, "method": "ping"}));
    assert_eq!(
        server.response(6, Duration::from_secs(10))["result"],
        json!({})
    );
    server.close_and_wait(Duration::from_secs(5));
}

#[test]
fn inspect_label_map_answers_with_structured_content() {
    let dir = common::fresh_dir();
    let mask = dir.path().join("mask.nii.gz");
    common::make_volume(&mask, &[]);
    let mut server = Server::start(dir.path(), None);
    server.initialize();
    server.call(1, "inspect_label_map", json!({"mask": mask}));
    let result = server.response(1, Duration::from_secs(30))["result"].clone();
    assert_eq!(result["isError"], false, "{result}");
    assert_eq!(
        result["structuredContent"]["mask"]["shape"],
        json!([24, 20, 16])
    );
    assert_eq!(
        result["structuredContent"]["total_voxels"],
        json!(24 * 20 * 16)
    );
    server.close_and_wait(Duration::from_secs(5));
}

fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.split(") ").nth(1).unwrap_or("").starts_with('Z'),
        Err(_) => false,
    }
}

fn wait_for_file(path: &Path, limit: Duration) -> String {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(text) = std::fs::read_to_string(path) {
            if !text.trim().is_empty() {
                return text;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{} never appeared", path.display());
}

/// A long run_script (the stand-in upstream sleeps): ping and tools/list still answer,
/// progress arrives, cancellation kills the process group and marks the pack; then
/// EOF in the middle of a second long call ends the server and its upstream children.
#[test]
fn long_calls_stay_responsive_cancel_and_end_on_eof() {
    let dir = common::fresh_dir();
    let base = dir.path().canonicalize().unwrap();
    let (root, python) = common::standin_bundle(&base, "sleep");
    let input = base.join("ct.nii.gz");
    common::make_volume(&input, &[]);
    let mut server =
        Server::start_with_env(&base, Some(&python), &[("CTMR_SKILL_BUNDLE_ROOTS", &root)]);
    server.initialize();

    let out = base.join("out1");
    server.send(
        json!({"jsonrpc": "2.0", "id": 10, "method": "tools/call", "params": {
        "name": "run_script", "_meta": {"progressToken": "run-10"},
        "arguments": {"input": input, "output_dir": out, "upstream_root": root}}}),
    );
    let first = server.wait_for("progress", Duration::from_secs(30), |m| {
        m["method"] == "notifications/progress"
    });
    assert_eq!(first["params"]["progressToken"], "run-10");
    let grandchild: i32 = wait_for_file(
        &out.join("standin_grandchild.pid"),
        Duration::from_secs(180),
    )
    .trim()
    .parse()
    .unwrap();

    server.send(json!({"jsonrpc": "2.0", "id": 11, "method": "ping"}));
    server.response(11, Duration::from_secs(10));
    // A second request reusing the id in flight is answered (not silently dropped).
    server.send(json!({"jsonrpc": "2.0", "id": 10, "method": "ping"}));
    let reused = server.wait_for("reply to the reused id", Duration::from_secs(10), |m| {
        m["id"] == json!(10) && m.get("error").is_some()
    });
    assert_eq!(reused["error"]["code"], -32600, "{reused}");
    assert!(
        reused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already in use"),
        "{reused}"
    );
    server.send(json!({"jsonrpc": "2.0", "id": 12, "method": "tools/list"}));
    assert!(server.response(12, Duration::from_secs(10))["result"]["tools"].is_array());

    server.send(json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 10, "reason": "test"}}));
    let evidence = wait_for_file(&out.join("output.json"), Duration::from_secs(30));
    let evidence: Value = serde_json::from_str(&evidence).unwrap();
    assert_eq!(evidence["status"], "cancelled");
    assert!(
        !pid_alive(grandchild),
        "the upstream's grandchild survived cancellation"
    );

    // A second long call, then EOF: the server exits and takes its children with it.
    let out2 = base.join("out2");
    server.call(
        20,
        "run_script",
        json!({"input": input, "output_dir": out2, "upstream_root": root}),
    );
    let grandchild: i32 = wait_for_file(
        &out2.join("standin_grandchild.pid"),
        Duration::from_secs(180),
    )
    .trim()
    .parse()
    .unwrap();
    server.close_and_wait(Duration::from_secs(10));
    let start = Instant::now();
    while pid_alive(grandchild) && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!pid_alive(grandchild), "the upstream outlived the server");
}
