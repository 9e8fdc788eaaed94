//! The MCP tasks extension (`io.modelcontextprotocol/tasks`) on the wire, raw JSON
//! lines to the real `ctmr-skill serve` running the real demo bundle: a `tools/call` of
//! `run_batch` from a client that declared the extension is answered with
//! `resultType: "task"`, `tasks/get` reports progress and then the cohort,
//! `tasks/cancel` stops a run, read-only tools stay synchronous, and tasks outlive their
//! server.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::stdio::Server;

/// A copy of the demo bundle and small demo volumes under a fresh directory.
fn world(names: &[&str]) -> (tempfile::TempDir, PathBuf, PathBuf, Vec<PathBuf>) {
    let dir = common::fresh_dir();
    let base = dir.path().canonicalize().unwrap();
    let bundle = base.join("demo-bundle");
    common::demo_bundle_copy(&bundle);
    let volumes = names
        .iter()
        .map(|name| {
            let volume = base.join(format!("data/{name}.nii.gz"));
            std::fs::create_dir_all(volume.parent().unwrap()).unwrap();
            common::run_python(
                &common::repo_root().join("scripts/make-demo-volume.py"),
                &[volume.to_str().unwrap(), "--shape", "40", "40", "24"],
            );
            volume
        })
        .collect();
    (dir, base, bundle, volumes)
}

const TASKS: &str = "io.modelcontextprotocol/tasks";
const MINUTE: Duration = Duration::from_secs(60);

/// A server over `index` whose client declared the tasks extension; the operator
/// installed the bundle at `base/demo-bundle`.
fn tasks_server(base: &Path, index: &Path) -> Server {
    let mut server = Server::start_with_env(
        base,
        Some(&common::python()),
        &[
            ("CTMR_SKILL_RUNS_DIR", index),
            ("CTMR_SKILL_BUNDLE_ROOTS", &base.join("demo-bundle")),
        ],
    );
    let init = server.initialize_with("2025-11-25", json!({"extensions": {TASKS: {}}}));
    assert!(
        init["result"]["capabilities"]["extensions"]
            .get(TASKS)
            .is_some(),
        "the server advertises the tasks extension: {init}"
    );
    server
}

#[test]
fn run_batch_as_a_task_then_tasks_get_and_tasks_cancel() {
    let (_dir, base, bundle, volumes) = world(&["t1"]);
    let mut server = tasks_server(&base, &base.join("runs-index"));

    // A read-only tool answers at once, even for a client that declared tasks.
    let labels = server.request(
        1,
        "tools/call",
        json!({"name": "list_labels",
               "arguments": {"resolve": ["liver"], "upstream_root": bundle}}),
        MINUTE,
    );
    assert!(
        labels["result"]
            .get("resultType")
            .is_none_or(|t| t == "complete"),
        "{labels}"
    );
    assert_eq!(labels["result"]["isError"], false, "{labels}");

    // run_batch becomes a task; tasks/get reports progress, then the cohort.
    let created = server.request(
        2,
        "tools/call",
        json!({"name": "run_batch", "arguments": {"inputs": volumes,
               "output_root": base.join("cohort"), "upstream_root": bundle, "device": "cpu"}}),
        MINUTE,
    );
    assert_eq!(created["result"]["resultType"], "task", "{created}");
    assert_eq!(created["result"]["status"], "working", "{created}");
    let task_id = created["result"]["taskId"].as_str().unwrap().to_string();
    let mut id = 10;
    let polls = until_task_ends(&mut server, &mut id, &task_id);
    let done = polls.last().unwrap();
    assert_eq!(done["result"]["status"], "completed", "{done}");
    let result = &done["result"]["result"];
    assert_eq!(result["isError"], false, "{done}");
    assert_eq!(result["structuredContent"]["status"], "succeeded", "{done}");
    assert_eq!(result["structuredContent"]["volumes"][0]["id"], "t1");
    assert!(base.join("cohort/t1/output.json").is_file());
    let messages: Vec<&str> = polls
        .iter()
        .filter(|p| p["result"]["status"] == "working")
        .filter_map(|p| p["result"]["statusMessage"].as_str())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("volumes done") || m.contains("gates")),
        "{messages:?}"
    );

    // tasks/cancel stops a running batch; the task ends cancelled.
    let created = server.request(
        3,
        "tools/call",
        json!({"name": "run_batch", "arguments": {"inputs": volumes,
               "output_root": base.join("cancelled"), "upstream_root": bundle, "device": "cpu"}}),
        MINUTE,
    );
    let cancel_id = created["result"]["taskId"].as_str().unwrap().to_string();
    let ack = server.request(4, "tasks/cancel", json!({"taskId": cancel_id}), MINUTE);
    assert!(ack.get("error").is_none(), "{ack}");
    let ended = until_task_ends(&mut server, &mut id, &cancel_id);
    assert_eq!(ended.last().unwrap()["result"]["status"], "cancelled");

    // An unknown task is a clear error naming the id.
    let unknown = server.request(5, "tasks/get", json!({"taskId": "task-nope"}), MINUTE);
    assert!(
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .contains("task-nope"),
        "{unknown}"
    );
    server.close_and_wait(Duration::from_secs(30));
}

/// Pids of processes whose command line mentions `needle` (the upstream runs name
/// their output directory in their argv).
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

/// Poll `tasks/get` until the task leaves `working`; every answer, the last one last.
fn until_task_ends(server: &mut Server, next_id: &mut i64, task_id: &str) -> Vec<Value> {
    let t0 = Instant::now();
    let mut polls = Vec::new();
    loop {
        *next_id += 1;
        let got = server.request(*next_id, "tasks/get", json!({"taskId": task_id}), MINUTE);
        let working = got["result"]["status"] == "working";
        polls.push(got);
        if !working {
            return polls;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "task {task_id} did not end"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The real binary: a task is a run of the one job table (get_run and list_runs see
/// it), SIGTERM ends the server without orphaning the upstream, and a server started
/// afresh over the same runs index still answers tasks/get for both tasks: the
/// finished one with its cohort, the one that was in flight as failed (interrupted).
#[test]
fn tasks_are_runs_and_outlive_their_server() {
    let (_dir, base, bundle, volumes) = world(&["t1", "t2"]);
    let index = base.join("runs-index");

    let mut first = tasks_server(&base, &index);
    let created = first.request(
        1,
        "tools/call",
        json!({"name": "run_batch", "arguments": {"inputs": [volumes[0]],
               "output_root": base.join("cohort"), "upstream_root": bundle, "device": "cpu"}}),
        MINUTE,
    );
    assert_eq!(created["result"]["resultType"], "task", "{created}");
    let done_id = created["result"]["taskId"].as_str().unwrap().to_string();
    let mut id = 10;
    let done = until_task_ends(&mut first, &mut id, &done_id);
    assert_eq!(done.last().unwrap()["result"]["status"], "completed");

    // The task is a run: get_run and list_runs know it under the same id.
    let run = first.request(
        2,
        "tools/call",
        json!({"name": "get_run", "arguments": {"run_id": done_id}}),
        MINUTE,
    );
    assert_eq!(
        run["result"]["structuredContent"]["run"]["state"], "succeeded",
        "{run}"
    );
    assert_eq!(
        run["result"]["structuredContent"]["run"]["tool"],
        "run_batch"
    );

    // A second task, still in flight when its server is told to stop.
    let in_flight_root = base.join("in-flight");
    let created = first.request(
        3,
        "tools/call",
        json!({"name": "run_batch", "arguments": {"inputs": volumes,
               "output_root": in_flight_root, "upstream_root": bundle, "device": "cpu"}}),
        MINUTE,
    );
    let lost_id = created["result"]["taskId"].as_str().unwrap().to_string();
    let needle = in_flight_root.to_str().unwrap().to_string();
    let t0 = Instant::now();
    while processes_mentioning(&needle).is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "the upstream run never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: sending a signal to our own child process.
    assert_eq!(
        unsafe { libc::kill(first.child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let t0 = Instant::now();
    let status = loop {
        if let Some(status) = first.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the server ignored SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "SIGTERM ends the session cleanly: {status}"
    );
    let t0 = Instant::now();
    while !processes_mentioning(&needle).is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "the upstream outlived its server: {:?}",
            processes_mentioning(&needle)
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // A new server over the same runs index.
    let mut second = tasks_server(&base, &index);
    let done = second.request(4, "tasks/get", json!({"taskId": done_id}), MINUTE);
    assert_eq!(done["result"]["status"], "completed", "{done}");
    let result = &done["result"]["result"];
    assert_eq!(result["isError"], false, "{done}");
    assert_eq!(
        result["structuredContent"]["volumes"][0]["id"], "t1",
        "{done}"
    );

    let lost = second.request(5, "tasks/get", json!({"taskId": lost_id}), MINUTE);
    assert_eq!(lost["result"]["status"], "failed", "{lost}");
    assert!(
        lost["result"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stopped while this run was in flight"),
        "{lost}"
    );

    let refused = second.request(6, "tasks/cancel", json!({"taskId": done_id}), MINUTE);
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already ended"),
        "{refused}"
    );
    let listed = second.request(
        7,
        "tools/call",
        json!({"name": "list_runs", "arguments": {}}),
        MINUTE,
    );
    let runs = listed["result"]["structuredContent"]["runs"]
        .as_array()
        .unwrap()
        .clone();
    let state = |id: &str| {
        runs.iter()
            .find(|r| r["run_id"] == id)
            .map(|r| r["state"].clone())
    };
    assert_eq!(state(&done_id), Some(json!("succeeded")), "{listed}");
    assert_eq!(state(&lost_id), Some(json!("interrupted")), "{listed}");
    second.close_and_wait(Duration::from_secs(30));
}
