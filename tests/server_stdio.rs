//! `serve_stdio` in a real process over OS pipes (harness = false: libtest would
//! print its own lines to the child's stdout).
//!
//! The test re-runs its own executable as the server (`CTMR_SERVER_STDIO_CHILD`
//! set), with a tool that prints to stdout through `println!` and through a child
//! process that inherits stdout. Every line the client reads must still be a
//! JSON-RPC message, the noise must land on stderr, and closing stdin while a call
//! runs must cancel it and end the process cleanly.
//!
//! Then the official MCP Python SDK client (`tests/py/server_interop_client.py`)
//! talks to the same server in its three connection modes.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use ctmr_skill::server::{serve_stdio, ServerOptions};
use ctmr_skill::tools::{CallContext, Progress, ToolBox, ToolCallError, ToolOutcome, ToolSpec};
use futures::future::BoxFuture;
use serde_json::{json, Map, Value};

const CHILD_ENV: &str = "CTMR_SERVER_STDIO_CHILD";
const HANG: Duration = Duration::from_secs(30);

fn main() {
    match std::env::var_os(CHILD_ENV) {
        Some(dir) => child(PathBuf::from(dir)),
        None => {
            // Behave like a libtest binary towards `cargo test <filter>` and `--list`.
            let args: Vec<String> = std::env::args().skip(1).collect();
            if args.iter().any(|a| a == "--list") {
                println!("server_stdio: test");
                return;
            }
            let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
            if !filters.is_empty() && !filters.iter().any(|f| "server_stdio".contains(f.as_str())) {
                return;
            }
            raw_pipes();
            python_sdk_client();
        }
    }
}

// ---------------------------------------------------------------- server side

struct NoisyBox {
    markers: PathBuf,
}

impl ToolBox for NoisyBox {
    fn list(&self) -> Vec<ToolSpec> {
        ["noisy", "slow", "echo", "fails", "progress", "boom"]
            .into_iter()
            .map(|name| ToolSpec {
                name: name.into(),
                title: format!("The {name} tool"),
                description: format!("{name} test tool"),
                input_schema: json!({
                    "type": "object",
                    "properties": {"text": {"type": "string"}},
                    "additionalProperties": false
                }),
                output_schema: (name == "echo").then(|| {
                    json!({
                        "type": "object",
                        "properties": {"text": {"type": "string"}},
                        "required": ["text"],
                        "additionalProperties": false
                    })
                }),
                read_only: name != "slow",
            })
            .collect()
    }

    fn call(
        &self,
        name: &str,
        arguments: Map<String, Value>,
        ctx: CallContext,
    ) -> BoxFuture<'static, Result<ToolOutcome, ToolCallError>> {
        let name = name.to_owned();
        let markers = self.markers.clone();
        Box::pin(async move {
            match name.as_str() {
                "noisy" => {
                    println!("NOISE from println");
                    let status = tokio::process::Command::new("sh")
                        .args(["-c", "echo NOISE from a child process"])
                        .status()
                        .await
                        .map_err(|e| ToolCallError::Internal(e.to_string()))?;
                    // A child that reads its inherited stdin must not see protocol bytes.
                    let cat = tokio::process::Command::new("cat")
                        .stdin(std::process::Stdio::inherit())
                        .stdout(std::process::Stdio::piped())
                        .output()
                        .await
                        .map_err(|e| ToolCallError::Internal(e.to_string()))?;
                    Ok(ToolOutcome::Success {
                        structured: json!({
                            "child_ok": status.success(),
                            "child_read_from_stdin": String::from_utf8_lossy(&cat.stdout),
                        }),
                        summary: "made noise".into(),
                        images: Vec::new(),
                        brief: Default::default(),
                    })
                }
                "slow" => {
                    std::fs::write(markers.join("started"), b"").unwrap();
                    ctx.cancel.cancelled().await;
                    std::fs::write(markers.join("cancelled"), b"").unwrap();
                    Ok(ToolOutcome::Failure {
                        message: "cancelled".into(),
                        structured: None,
                        brief: Default::default(),
                    })
                }
                "echo" => Ok(ToolOutcome::Success {
                    summary: "echoed".into(),
                    structured: json!({"text": arguments.get("text").cloned().unwrap_or_default()}),
                    images: Vec::new(),
                    brief: Default::default(),
                }),
                "fails" => Ok(ToolOutcome::Failure {
                    message: "argument `text` is required; pass some text".into(),
                    structured: None,
                    brief: Default::default(),
                }),
                "progress" => {
                    for (i, p) in [1.0, 2.0, 2.0].into_iter().enumerate() {
                        (ctx.progress)(Progress {
                            progress: p,
                            total: Some(3.0),
                            message: Some(format!("step {i}")),
                            item: None,
                        });
                    }
                    Ok(ToolOutcome::Success {
                        summary: "progressed".into(),
                        structured: json!({}),
                        images: Vec::new(),
                        brief: Default::default(),
                    })
                }
                "boom" => Err(ToolCallError::Internal("disk on fire".into())),
                other => Err(ToolCallError::UnknownTool(other.into())),
            }
        })
    }
}

fn child(markers: PathBuf) {
    ctmr_skill::server::init_stderr_logging();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let result = runtime.block_on(serve_stdio(
        Arc::new(NoisyBox { markers }),
        ServerOptions {
            name: "stdio-test".into(),
            version: "0".into(),
            instructions: String::new(),
        },
    ));
    if let Err(e) = result {
        eprintln!("serve_stdio failed: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------- client side

fn wait_for_file(path: &Path) {
    let t = Instant::now();
    while !path.exists() {
        assert!(t.elapsed() < HANG, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn raw_pipes() {
    let markers = tempfile::tempdir().unwrap();
    let mut server = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, markers.path())
        .env("RUST_LOG", "debug") // every log line must go to stderr, none to stdout
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the server process");
    let mut stdin = server.stdin.take().unwrap();

    let (lines_tx, lines) = mpsc::channel::<String>();
    let stdout = server.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut stderr = server.stderr.take().unwrap();
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    let mut every_line = vec![];
    let send = |stdin: &mut std::process::ChildStdin, m: Value| {
        writeln!(stdin, "{m}").unwrap();
        stdin.flush().unwrap();
    };
    let response = |id: Value, every_line: &mut Vec<Value>| -> Value {
        loop {
            let line = lines.recv_timeout(HANG).expect("server answered nothing");
            let m: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("non-protocol line on stdout {line:?}: {e}"));
            assert_eq!(m["jsonrpc"], "2.0", "{line}");
            every_line.push(m.clone());
            if m["id"] == id && m.get("method").is_none() {
                return m;
            }
        }
    };

    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "stdio-test", "version": "1"}}}),
    );
    let init = response(json!(1), &mut every_line);
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18", "{init}");
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );

    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "noisy"}}),
    );
    let noisy = response(json!(2), &mut every_line);
    assert_eq!(
        noisy["result"]["structuredContent"],
        json!({"child_ok": true, "child_read_from_stdin": ""}),
        "{noisy}"
    );

    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "slow"}}),
    );
    wait_for_file(&markers.path().join("started"));
    let closed_at = Instant::now();
    drop(stdin); // EOF mid-call
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        if closed_at.elapsed() > HANG {
            let _ = server.kill();
            panic!("server process did not exit after stdin EOF");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!(
        "server process exited {:?} after stdin EOF with a call running",
        closed_at.elapsed()
    );
    let stderr = stderr_reader.join().unwrap();
    assert!(
        status.success(),
        "server exit {status:?}; stderr:\n{stderr}"
    );
    assert!(
        markers.path().join("cancelled").exists(),
        "the running call was not cancelled at EOF"
    );
    // Anything still on stdout must be protocol too.
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(1)) {
        let m: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("non-protocol line on stdout {line:?}: {e}"));
        every_line.push(m);
    }
    assert!(
        stderr.contains("NOISE from println") && stderr.contains("NOISE from a child process"),
        "stray output did not reach stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("MCP input closed"),
        "RUST_LOG=debug logs did not reach stderr:\n{stderr}"
    );
    eprintln!("server_stdio: ok ({} protocol lines)", every_line.len());
}

/// The official MCP Python SDK as the client, in each of its connection modes.
fn python_sdk_client() {
    let markers = tempfile::tempdir().unwrap();
    let script = common::repo_root().join("tests/py/server_interop_client.py");
    let out = Command::new(common::python())
        .arg(&script)
        .arg(std::env::current_exe().unwrap())
        .arg(markers.path())
        .stderr(Stdio::inherit())
        .output()
        .expect("run the Python MCP client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "Python MCP client failed; stdout:\n{stdout}"
    );
    let reports: Vec<Value> = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("Python client report is not JSON ({e}):\n{stdout}"));
    let expected_versions = [
        ("legacy", "2025-11-25"),
        ("auto", "2026-07-28"),
        ("2026-07-28", "2026-07-28"),
    ];
    assert_eq!(reports.len(), expected_versions.len());
    for (report, (mode, version)) in reports.iter().zip(expected_versions) {
        let ctx = format!("mode {mode}: {report}");
        assert_eq!(report["mode"], mode, "{ctx}");
        assert_eq!(report["protocol_version"], version, "{ctx}");
        // A pinned-version client synthesizes its discover result instead of
        // asking, so only the other modes see our capabilities and instructions.
        if mode != "2026-07-28" {
            assert_eq!(report["tools_capability"], true, "{ctx}");
            assert!(
                report["instructions"]
                    .as_str()
                    .is_some_and(|s| s.to_lowercase().contains("not for clinical use")),
                "{ctx}"
            );
        }
        assert_eq!(
            report["tools"]["echo"],
            json!({"title": "The echo tool", "read_only": true, "has_output_schema": true}),
            "{ctx}"
        );
        assert_eq!(report["tools"]["slow"]["read_only"], false, "{ctx}");
        assert_eq!(report["echo"]["is_error"], false, "{ctx}");
        assert_eq!(report["echo"]["structured"], json!({"text": "hi"}), "{ctx}");
        assert_eq!(report["echo"]["texts"][0], "echoed", "{ctx}");
        assert_eq!(report["fails"]["is_error"], true, "{ctx}");
        assert_eq!(
            report["fails"]["texts"][0], "argument `text` is required; pass some text",
            "{ctx}"
        );
        let seen = report["progress"]["seen"].as_array().unwrap();
        assert_eq!(seen.len(), 3, "{ctx}");
        let values: Vec<f64> = seen.iter().map(|p| p[0].as_f64().unwrap()).collect();
        assert!(values.windows(2).all(|w| w[1] > w[0]), "{ctx}");
        assert_eq!(seen[0], json!([1.0, 3.0, "step 0"]), "{ctx}");
        assert_eq!(report["unknown_tool"], -32602, "{ctx}");
        assert_eq!(report["boom"], -32603, "{ctx}");
        assert_eq!(
            report["after_errors"],
            json!({"text": "still here"}),
            "{ctx}"
        );
    }
    eprintln!("server_stdio: Python SDK client ok in modes legacy, auto, 2026-07-28");
}
