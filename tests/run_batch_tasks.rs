//! The MCP tasks extension (`io.modelcontextprotocol/tasks`) on the wire, with the
//! product's tools and the real demo bundle: a `tools/call` of `run_batch` from a client
//! that declared the extension is answered with `resultType: "task"`, `tasks/get`
//! reports progress and then the cohort, `tasks/cancel` stops a run, and read-only
//! tools stay synchronous.

mod common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines};

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
