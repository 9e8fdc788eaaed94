//! The MCP tasks extension (`io.modelcontextprotocol/tasks`) on the wire, with the
//! product's tools and the real demo bundle: a `tools/call` of `run_batch` from a client
//! that declared the extension is answered with `resultType: "task"`, `tasks/get`
//! reports progress and then the cohort, `tasks/cancel` stops a run, and read-only
//! tools stay synchronous.

mod common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines};

use common::stdio::Server;
use ctmr_skill::config::Config;
use ctmr_skill::jobs::JobTable;
use ctmr_skill::server::{serve, ServerOptions};
use ctmr_skill::tools::CtmrTools;

struct Wire {
    to_server: DuplexStream,
    from_server: Lines<BufReader<DuplexStream>>,
}

impl Wire {
    async fn send(&mut self, message: Value) {
        let mut line = serde_json::to_vec(&message).unwrap();
        line.push(b'\n');
        self.to_server.write_all(&line).await.unwrap();
    }

    /// The response to request `id` (notifications in between are skipped).
    async fn request(&mut self, id: u64, method: &str, params: Value) -> Value {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        loop {
            let line = tokio::time::timeout(Duration::from_secs(600), self.from_server.next_line())
                .await
                .expect("the server answers")
                .unwrap()
                .expect("the server is still there");
            let message: Value = serde_json::from_str(&line).unwrap();
            if message["id"] == json!(id) {
                return message;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_batch_as_a_task_then_tasks_get_and_tasks_cancel() {
    let dir = common::fresh_dir();
    let base = dir.path().canonicalize().unwrap();
    let bundle = base.join("demo-bundle");
    common::demo_bundle_copy(&bundle);
    let volume = base.join("data/t1.nii.gz");
    std::fs::create_dir_all(volume.parent().unwrap()).unwrap();
    common::run_python(
        &common::repo_root().join("scripts/make-demo-volume.py"),
        &[volume.to_str().unwrap(), "--shape", "40", "40", "24"],
    );

    let config = Config::new(base.clone(), vec![], None, Some(common::python()), 1);
    let tools = std::sync::Arc::new(CtmrTools::with_jobs(
        config,
        ctmr_skill::manifest::embedded().unwrap(),
        JobTable::new(base.join("runs-index")),
    ));
    let (client_w, server_r) = tokio::io::duplex(1 << 20);
    let (server_w, client_r) = tokio::io::duplex(1 << 20);
    let options = ServerOptions {
        name: "ctmr-skill".into(),
        version: "test".into(),
        instructions: "Segment cohorts.".into(),
    };
    let server = tokio::spawn(serve(tools, options, server_r, server_w));
    let mut wire = Wire {
        to_server: client_w,
        from_server: BufReader::new(client_r).lines(),
    };

    let init = wire
        .request(
            1,
            "initialize",
            json!({"protocolVersion": "2025-11-25",
                   "capabilities": {"extensions": {"io.modelcontextprotocol/tasks": {}}},
                   "clientInfo": {"name": "tasks-test", "version": "1"}}),
        )
        .await;
    assert!(
        init["result"]["capabilities"]["extensions"]
            .get("io.modelcontextprotocol/tasks")
            .is_some(),
        "the server advertises the tasks extension: {init}"
    );
    wire.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;

    // A read-only tool answers at once, even for a client that declared tasks.
    let labels = wire
        .request(
            2,
            "tools/call",
            json!({"name": "list_labels",
            "arguments": {"resolve": ["liver"], "upstream_root": bundle}}),
        )
        .await;
    assert!(
        labels["result"]
            .get("resultType")
            .is_none_or(|t| t == "complete"),
        "{labels}"
    );
    assert_eq!(labels["result"]["isError"], false, "{labels}");

    // run_batch becomes a task.
    let args = json!({"inputs": [volume], "output_root": base.join("cohort"),
                      "upstream_root": bundle, "device": "cpu"});
    let created = wire
        .request(
            3,
            "tools/call",
            json!({"name": "run_batch", "arguments": args}),
        )
        .await;
    assert_eq!(created["result"]["resultType"], "task", "{created}");
    assert_eq!(created["result"]["status"], "working", "{created}");
    let task_id = created["result"]["taskId"].as_str().unwrap().to_string();

    let t0 = Instant::now();
    let mut id = 10;
    let mut messages = Vec::new();
    let done = loop {
        id += 1;
        let got = wire
            .request(id, "tasks/get", json!({"taskId": task_id}))
            .await;
        let status = got["result"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if let Some(m) = got["result"]["statusMessage"].as_str() {
            messages.push(m.to_string());
        }
        if status != "working" {
            break got;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "the task did not finish"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(done["result"]["status"], "completed", "{done}");
    let result = &done["result"]["result"];
    assert_eq!(result["isError"], false, "{done}");
    assert_eq!(result["structuredContent"]["status"], "succeeded", "{done}");
    assert_eq!(result["structuredContent"]["volumes"][0]["id"], "t1");
    assert!(base.join("cohort/t1/output.json").is_file());
    assert!(
        messages
            .iter()
            .any(|m| m.contains("volumes done") || m.contains("gates")),
        "{messages:?}"
    );

    // tasks/cancel stops a running batch; the task ends cancelled.
    let args = json!({"inputs": [volume], "output_root": base.join("cancelled"),
                      "upstream_root": bundle, "device": "cpu"});
    let created = wire
        .request(
            4,
            "tools/call",
            json!({"name": "run_batch", "arguments": args}),
        )
        .await;
    let cancel_id = created["result"]["taskId"].as_str().unwrap().to_string();
    let ack = wire
        .request(5, "tasks/cancel", json!({"taskId": cancel_id}))
        .await;
    assert!(ack.get("error").is_none(), "{ack}");
    let t0 = Instant::now();
    let ended = loop {
        id += 1;
        let got = wire
            .request(id, "tasks/get", json!({"taskId": cancel_id}))
            .await;
        if got["result"]["status"] != "working" {
            break got;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "the cancelled task did not end"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(ended["result"]["status"], "cancelled", "{ended}");

    // An unknown task is a clear error naming the id.
    let unknown = wire
        .request(6, "tasks/get", json!({"taskId": "task-nope"}))
        .await;
    assert!(
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .contains("task-nope"),
        "{unknown}"
    );

    drop(wire);
    let _ = tokio::time::timeout(Duration::from_secs(30), server).await;
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

/// Poll `tasks/get` until the task leaves `working`.
fn until_task_ends(server: &mut Server, next_id: &mut i64, task_id: &str) -> Value {
    let t0 = Instant::now();
    loop {
        *next_id += 1;
        let got = server.request(
            *next_id,
            "tasks/get",
            json!({"taskId": task_id}),
            Duration::from_secs(60),
        );
        if got["result"]["status"] != "working" {
            return got;
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
    let dir = common::fresh_dir();
    let base = dir.path().canonicalize().unwrap();
    let bundle = base.join("demo-bundle");
    common::demo_bundle_copy(&bundle);
    let mut volumes = Vec::new();
    for name in ["t1", "t2"] {
        let volume = base.join(format!("data/{name}.nii.gz"));
        std::fs::create_dir_all(volume.parent().unwrap()).unwrap();
        common::run_python(
            &common::repo_root().join("scripts/make-demo-volume.py"),
            &[volume.to_str().unwrap(), "--shape", "40", "40", "24"],
        );
        volumes.push(volume);
    }
    let index = base.join("runs-index");
    let python = common::python();
    let env = [("CTMR_SKILL_RUNS_DIR", index.as_path())];
    let tasks = json!({"extensions": {"io.modelcontextprotocol/tasks": {}}});
    let minute = Duration::from_secs(60);

    let mut first = Server::start_with_env(&base, Some(&python), &env);
    first.initialize_with("2025-11-25", tasks.clone());
    let created = first.request(
        1,
        "tools/call",
        json!({"name": "run_batch", "arguments": {"inputs": [volumes[0]],
               "output_root": base.join("cohort"), "upstream_root": bundle, "device": "cpu"}}),
        minute,
    );
    assert_eq!(created["result"]["resultType"], "task", "{created}");
    let done_id = created["result"]["taskId"].as_str().unwrap().to_string();
    let mut id = 10;
    let done = until_task_ends(&mut first, &mut id, &done_id);
    assert_eq!(done["result"]["status"], "completed", "{done}");

    // The task is a run: get_run and list_runs know it under the same id.
    let run = first.request(
        2,
        "tools/call",
        json!({"name": "get_run", "arguments": {"run_id": done_id}}),
        minute,
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
        minute,
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
    let mut second = Server::start_with_env(&base, Some(&python), &env);
    second.initialize_with("2025-11-25", tasks);
    let done = second.request(4, "tasks/get", json!({"taskId": done_id}), minute);
    assert_eq!(done["result"]["status"], "completed", "{done}");
    let result = &done["result"]["result"];
    assert_eq!(result["isError"], false, "{done}");
    assert_eq!(
        result["structuredContent"]["volumes"][0]["id"], "t1",
        "{done}"
    );

    let lost = second.request(5, "tasks/get", json!({"taskId": lost_id}), minute);
    assert_eq!(lost["result"]["status"], "failed", "{lost}");
    assert!(
        lost["result"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stopped while this run was in flight"),
        "{lost}"
    );

    let refused = second.request(6, "tasks/cancel", json!({"taskId": done_id}), minute);
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
        minute,
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
