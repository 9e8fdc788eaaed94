//! The MCP server on the wire: real bytes over in-process pipes
//! (`tokio::io::duplex`), raw JSON-RPC lines in and out, a test toolbox with
//! tools that echo, fail, crash, run slowly with progress, and ignore cancellation.
//!
//! Ordering is asserted through events the tools send (started / cancelled),
//! never through sleeps; the only time bounds are generous "no hang" limits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ctmr_skill::server::{serve_tuned, ServerError, ServerOptions, Tuning};
use ctmr_skill::tools::{CallContext, Progress, ToolBox, ToolCallError, ToolOutcome, ToolSpec};
use futures::future::BoxFuture;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

/// Longest we wait for any single message before calling it a hang.
const HANG: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq)]
enum Event {
    Started(String),
    Cancelled(String),
}

struct TestBox {
    events: mpsc::UnboundedSender<Event>,
    release: Arc<Notify>,
}

fn object_schema(props: Value) -> Value {
    json!({"type": "object", "properties": props, "additionalProperties": false})
}

impl ToolBox for TestBox {
    fn list(&self) -> Vec<ToolSpec> {
        let spec = |name: &str, read_only: bool, output: Option<Value>| ToolSpec {
            name: name.into(),
            title: format!("The {name} tool"),
            description: format!("Test tool `{name}`."),
            input_schema: object_schema(json!({"text": {"type": "string"}})),
            output_schema: output,
            read_only,
        };
        vec![
            spec(
                "echo",
                true,
                Some(object_schema(json!({"echo": {"type": "object"}}))),
            ),
            spec("fails", true, None),
            spec("boom", false, None),
            spec("slow", false, None),
            spec("stubborn", false, None),
            spec("panics", false, None),
        ]
    }

    fn call(
        &self,
        name: &str,
        arguments: Map<String, Value>,
        ctx: CallContext,
    ) -> BoxFuture<'static, Result<ToolOutcome, ToolCallError>> {
        let name = name.to_owned();
        let events = self.events.clone();
        let release = self.release.clone();
        Box::pin(async move {
            match name.as_str() {
                "echo" => Ok(ToolOutcome::Success {
                    summary: format!("echoed {} argument(s)", arguments.len()),
                    structured: json!({ "echo": arguments }),
                    images: Vec::new(),
                    brief: Default::default(),
                }),
                "fails" => Ok(ToolOutcome::Failure {
                    message: "argument `text` must not be empty; pass some text".into(),
                    structured: Some(json!({"evidence": {"rule": "non-empty"}})),
                    brief: Default::default(),
                }),
                "boom" => Err(ToolCallError::Internal("disk on fire".into())),
                "panics" => panic!("tool bug"),
                "slow" => {
                    let reports = arguments
                        .get("reports")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    for (i, r) in reports.iter().enumerate() {
                        (ctx.progress)(Progress {
                            progress: r.as_f64().unwrap(),
                            total: Some(10.0),
                            message: Some(format!("step {i}")),
                            item: None,
                        });
                    }
                    let _ = events.send(Event::Started(name.clone()));
                    tokio::select! {
                        _ = ctx.cancel.cancelled() => {
                            let _ = events.send(Event::Cancelled(name));
                            Ok(ToolOutcome::Failure { message: "cancelled".into(), structured: None, brief: Default::default() })
                        }
                        _ = release.notified() => Ok(ToolOutcome::Success {
                            summary: "slow done".into(),
                            structured: json!({"done": true}),
                            images: Vec::new(),
                            brief: Default::default(),
                        }),
                    }
                }
                "stubborn" => {
                    let _ = events.send(Event::Started(name));
                    tokio::time::sleep(Duration::from_secs(600)).await;
                    Ok(ToolOutcome::Success {
                        summary: "never".into(),
                        structured: json!({}),
                        images: Vec::new(),
                        brief: Default::default(),
                    })
                }
                other => Err(ToolCallError::UnknownTool(other.to_owned())),
            }
        })
    }
}

struct Client {
    to_server: Option<DuplexStream>,
    from_server: Lines<BufReader<DuplexStream>>,
    server: JoinHandle<Result<(), ServerError>>,
    events: mpsc::UnboundedReceiver<Event>,
    release: Arc<Notify>,
}

fn test_tuning() -> Tuning {
    Tuning {
        keepalive: Duration::from_millis(200),
        ..Tuning::default()
    }
}

fn start() -> Client {
    start_with(test_tuning())
}

fn start_with(tuning: Tuning) -> Client {
    let (events_tx, events) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let toolbox = Arc::new(TestBox {
        events: events_tx,
        release: release.clone(),
    });
    let (client_w, server_r) = tokio::io::duplex(64 * 1024);
    let (server_w, client_r) = tokio::io::duplex(64 * 1024);
    let opts = ServerOptions {
        name: "ctmr-skill-test".into(),
        version: "9.9.9".into(),
        instructions: "Call echo.".into(),
    };
    let server = tokio::spawn(serve_tuned(toolbox, opts, tuning, server_r, server_w));
    Client {
        to_server: Some(client_w),
        from_server: BufReader::new(client_r).lines(),
        server,
        events,
        release,
    }
}

impl Client {
    async fn send_raw(&mut self, bytes: &[u8]) {
        let w = self.to_server.as_mut().expect("input still open");
        w.write_all(bytes).await.unwrap();
        w.flush().await.unwrap();
    }

    async fn send(&mut self, message: Value) {
        let mut line = serde_json::to_vec(&message).unwrap();
        line.push(b'\n');
        self.send_raw(&line).await;
    }

    async fn request(&mut self, id: Value, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
    }

    /// The next line the server writes, parsed.
    async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(HANG, self.from_server.next_line())
            .await
            .expect("server wrote nothing (hang)")
            .expect("read server output")
            .expect("server output ended");
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("server wrote non-JSON {line:?}: {e}"))
    }

    /// Read until the response (result or error) for `id`; also return what came before.
    async fn response(&mut self, id: &Value) -> (Value, Vec<Value>) {
        let mut before = vec![];
        loop {
            let m = self.next().await;
            assert_eq!(m["jsonrpc"], "2.0", "{m}");
            if m.get("method").is_none() && &m["id"] == id {
                return (m, before);
            }
            before.push(m);
        }
    }

    async fn call(&mut self, id: Value, method: &str, params: Value) -> Value {
        self.request(id.clone(), method, params).await;
        self.response(&id).await.0
    }

    async fn initialize(&mut self, version: &str) -> Value {
        let r = self
            .call(
                json!("init"),
                "initialize",
                json!({
                    "protocolVersion": version,
                    "capabilities": {},
                    "clientInfo": {"name": "wire-test", "version": "1.0"}
                }),
            )
            .await;
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        r
    }

    async fn event(&mut self) -> Event {
        tokio::time::timeout(HANG, self.events.recv())
            .await
            .expect("no tool event (hang)")
            .expect("event channel open")
    }

    /// Close the server's input (EOF) and wait for `serve` to return.
    async fn close_and_wait(&mut self) -> (Result<(), ServerError>, Duration) {
        let t = Instant::now();
        drop(self.to_server.take());
        let result = tokio::time::timeout(HANG, &mut self.server)
            .await
            .expect("serve() did not return after EOF (hang)")
            .expect("server task");
        (result, t.elapsed())
    }
}

fn error_code(m: &Value) -> i64 {
    m["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("not an error: {m}"))
}

const LEGACY_VERSIONS: [&str; 3] = ["2025-03-26", "2025-06-18", "2025-11-25"];

#[tokio::test]
async fn initialize_negotiates_each_legacy_version() {
    for version in LEGACY_VERSIONS {
        let mut c = start();
        let r = c.initialize(version).await;
        let result = &r["result"];
        assert_eq!(result["protocolVersion"], version, "{r}");
        assert_eq!(result["capabilities"]["tools"]["listChanged"], false, "{r}");
        assert_eq!(result["serverInfo"]["name"], "ctmr-skill-test");
        assert_eq!(result["serverInfo"]["version"], "9.9.9");
        let instructions = result["instructions"].as_str().unwrap().to_lowercase();
        assert!(instructions.contains("call echo."), "{instructions}");
        assert!(
            instructions.contains("not for clinical use"),
            "{instructions}"
        );
        let pong = c.call(json!(1), "ping", json!({})).await;
        assert_eq!(pong["result"], json!({}), "{pong}");
        let (end, _) = c.close_and_wait().await;
        end.unwrap();
    }
}

#[tokio::test]
async fn initialize_with_an_unknown_version_gets_a_supported_one() {
    let mut c = start();
    let r = c.initialize("2023-01-01").await;
    let chosen = r["result"]["protocolVersion"].as_str().unwrap().to_owned();
    assert!(LEGACY_VERSIONS.contains(&chosen.as_str()), "{r}");
}

fn meta_2026() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "wire-test", "version": "1.0"}
    })
}

#[tokio::test]
async fn stateless_2026_discover_list_and_call() {
    let mut c = start();
    let d = c
        .call(json!(1), "server/discover", json!({"_meta": meta_2026()}))
        .await;
    let result = &d["result"];
    let versions: Vec<&str> = result["supportedVersions"]
        .as_array()
        .unwrap_or_else(|| panic!("{d}"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        versions,
        ["2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"]
    );
    assert!(result["capabilities"]["tools"].is_object(), "{d}");
    assert!(result["instructions"]
        .as_str()
        .unwrap()
        .to_lowercase()
        .contains("not for clinical use"));

    // Without the required per-request metadata a 2026 request is refused.
    let bare = c.call(json!(2), "tools/list", json!({})).await;
    assert_eq!(error_code(&bare), -32602, "{bare}");

    let list = c
        .call(json!(3), "tools/list", json!({"_meta": meta_2026()}))
        .await;
    assert_eq!(
        list["result"]["tools"].as_array().unwrap().len(),
        6,
        "{list}"
    );

    let echo = c
        .call(
            json!(4),
            "tools/call",
            json!({"_meta": meta_2026(), "name": "echo", "arguments": {"text": "hi"}}),
        )
        .await;
    assert_eq!(
        echo["result"]["structuredContent"],
        json!({"echo": {"text": "hi"}}),
        "{echo}"
    );
    assert_eq!(echo["result"]["isError"], false);

    // Progress and cancellation work the same way without a session.
    let mut meta = meta_2026();
    meta["progressToken"] = json!(77);
    c.request(
        json!(5),
        "tools/call",
        json!({"_meta": meta, "name": "slow", "arguments": {"reports": [2]}}),
    )
    .await;
    assert_eq!(c.event().await, Event::Started("slow".into()));
    let m = c.next().await;
    assert_eq!(progress_of(&m), Some((json!(77), 2.0)), "{m}");
    c.send(json!({
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": {"requestId": 5}
    }))
    .await;
    assert_eq!(c.event().await, Event::Cancelled("slow".into()));
}

#[tokio::test]
async fn tools_list_golden_shape() {
    let mut c = start();
    c.initialize("2025-06-18").await;
    let r = c.call(json!(1), "tools/list", json!({})).await;
    let tool = |name: &str, read_only: bool, output: Option<Value>| {
        let mut t = json!({
            "name": name,
            "title": format!("The {name} tool"),
            "description": format!("Test tool `{name}`."),
            "inputSchema": object_schema(json!({"text": {"type": "string"}})),
            "annotations": {"title": format!("The {name} tool"), "readOnlyHint": read_only},
        });
        if let Some(o) = output {
            t["outputSchema"] = o;
        }
        t
    };
    let expected = json!({"tools": [
        tool("echo", true, Some(object_schema(json!({"echo": {"type": "object"}})))),
        tool("fails", true, None),
        tool("boom", false, None),
        tool("slow", false, None),
        tool("stubborn", false, None),
        tool("panics", false, None),
    ]});
    assert_eq!(r["result"], expected, "{r}");
}

#[tokio::test]
async fn call_outcomes_map_to_results_and_errors() {
    let mut c = start();
    c.initialize("2025-11-25").await;

    let echo = c
        .call(
            json!(1),
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "hi"}}),
        )
        .await;
    let result = &echo["result"];
    assert_eq!(result["isError"], false, "{echo}");
    assert_eq!(result["structuredContent"], json!({"echo": {"text": "hi"}}));
    assert_eq!(
        result["content"][0],
        json!({"type": "text", "text": "echoed 1 argument(s)"})
    );
    let json_block: Value =
        serde_json::from_str(result["content"][1]["text"].as_str().unwrap()).unwrap();
    assert_eq!(json_block, result["structuredContent"]);

    let fails = c
        .call(json!(2), "tools/call", json!({"name": "fails"}))
        .await;
    assert_eq!(fails["result"]["isError"], true, "{fails}");
    assert_eq!(
        fails["result"]["content"][0]["text"],
        "argument `text` must not be empty; pass some text"
    );
    assert_eq!(
        fails["result"]["structuredContent"],
        json!({"evidence": {"rule": "non-empty"}})
    );

    let boom = c
        .call(json!(3), "tools/call", json!({"name": "boom"}))
        .await;
    assert_eq!(error_code(&boom), -32603, "{boom}");
    assert!(boom["error"]["message"]
        .as_str()
        .unwrap()
        .contains("disk on fire"));

    let panics = c
        .call(json!(4), "tools/call", json!({"name": "panics"}))
        .await;
    assert_eq!(error_code(&panics), -32603, "{panics}");

    let unknown = c
        .call(json!(5), "tools/call", json!({"name": "nope"}))
        .await;
    assert_eq!(error_code(&unknown), -32602, "{unknown}");
    let message = unknown["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("'nope'") && message.contains("echo"),
        "{message}"
    );

    let not_object = c
        .call(
            json!(6),
            "tools/call",
            json!({"name": "echo", "arguments": [1, 2]}),
        )
        .await;
    assert_eq!(error_code(&not_object), -32602, "{not_object}");

    let no_method = c.call(json!(7), "no/such/method", json!({})).await;
    assert_eq!(error_code(&no_method), -32601, "{no_method}");

    // After all of that the server still works.
    let again = c
        .call(
            json!(8),
            "tools/call",
            json!({"name": "echo", "arguments": {}}),
        )
        .await;
    assert_eq!(again["result"]["isError"], false, "{again}");
    let (end, _) = c.close_and_wait().await;
    end.unwrap();
}

#[tokio::test]
async fn garbage_lines_get_errors_and_the_server_keeps_going() {
    let mut c = start();
    c.initialize("2025-06-18").await;

    c.send_raw(b"{this is not json\n").await;
    let m = c.next().await;
    assert_eq!(error_code(&m), -32700, "{m}");
    assert_eq!(m["id"], Value::Null, "{m}");

    c.send_raw(b"\xff\xfe\xfd\n").await;
    assert_eq!(error_code(&c.next().await), -32700);

    c.send_raw(b"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]\n")
        .await;
    let m = c.next().await;
    assert_eq!(error_code(&m), -32600, "{m}");

    c.send_raw(b"{\"jsonrpc\":\"2.0\",\"id\":2.5,\"method\":\"ping\"}\n")
        .await;
    let m = c.next().await;
    assert_eq!(
        (error_code(&m), m["id"].clone()),
        (-32600, Value::Null),
        "{m}"
    );

    // Blank lines and malformed notifications get no answer; the next request does.
    c.send_raw(
        b"\n\r\n{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":7}\n",
    )
    .await;
    let pong = c.call(json!("after"), "ping", json!({})).await;
    assert_eq!(pong["result"], json!({}), "{pong}");
}

#[tokio::test]
async fn a_line_over_16_mib_is_refused_without_killing_the_server() {
    let mut c = start();
    c.initialize("2025-06-18").await;
    let limit = Tuning::default().max_line_bytes;
    assert_eq!(limit, 16 * 1024 * 1024);

    // A big but legal message still goes through.
    let big_text = "b".repeat(2 * 1024 * 1024);
    let big = c
        .call(
            json!(1),
            "tools/call",
            json!({"name": "echo", "arguments": {"text": big_text}}),
        )
        .await;
    assert_eq!(
        big["result"]["structuredContent"]["echo"]["text"]
            .as_str()
            .map(str::len),
        Some(big_text.len())
    );

    // 17 MiB on one line, written concurrently because the pipe is small.
    let mut huge = br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":""#.to_vec();
    huge.resize(huge.len() + 17 * 1024 * 1024, b'x');
    huge.extend_from_slice(b"\"}}}\n");
    let mut writer = c.to_server.take().unwrap();
    let feeder = tokio::spawn(async move {
        writer.write_all(&huge).await.unwrap();
        writer
    });
    let m = c.next().await;
    assert_eq!(
        (error_code(&m), m["id"].clone()),
        (-32600, Value::Null),
        "{m}"
    );
    assert!(
        m["error"]["message"].as_str().unwrap().contains("16777216"),
        "{m}"
    );
    c.to_server = Some(feeder.await.unwrap());

    let pong = c.call(json!(3), "ping", json!({})).await;
    assert_eq!(pong["result"], json!({}), "{pong}");
}

#[tokio::test]
async fn ping_and_list_answer_while_a_slow_call_runs() {
    let mut c = start();
    c.initialize("2025-11-25").await;
    c.request(json!(10), "tools/call", json!({"name": "slow"}))
        .await;
    assert_eq!(c.event().await, Event::Started("slow".into()));

    let (pong, before) = {
        c.request(json!(11), "ping", json!({})).await;
        c.response(&json!(11)).await
    };
    assert_eq!(pong["result"], json!({}));
    assert!(
        before.iter().all(|m| m["id"] != 10),
        "slow result came first: {before:?}"
    );
    let list = c.call(json!(12), "tools/list", json!({})).await;
    assert!(list["result"]["tools"].is_array());
    let echo = c
        .call(
            json!(13),
            "tools/call",
            json!({"name": "echo", "arguments": {}}),
        )
        .await;
    assert_eq!(echo["result"]["isError"], false);

    c.release.notify_one();
    let (slow, _) = c.response(&json!(10)).await;
    assert_eq!(
        slow["result"]["structuredContent"],
        json!({"done": true}),
        "{slow}"
    );
}

fn progress_of(m: &Value) -> Option<(Value, f64)> {
    (m["method"] == "notifications/progress").then(|| {
        (
            m["params"]["progressToken"].clone(),
            m["params"]["progress"].as_f64().unwrap(),
        )
    })
}

#[tokio::test]
async fn progress_is_forwarded_increasing_with_keepalives() {
    let mut c = start();
    c.initialize("2025-06-18").await;
    c.request(
        json!(20),
        "tools/call",
        json!({"_meta": {"progressToken": "tok"}, "name": "slow", "arguments": {"reports": [1, 5, 3]}}),
    )
    .await;
    assert_eq!(c.event().await, Event::Started("slow".into()));

    // Three reports, then at least two heartbeats while the tool is quiet.
    let mut seen = vec![];
    while seen.len() < 5 {
        let m = c.next().await;
        let (token, value) = progress_of(&m).unwrap_or_else(|| panic!("unexpected {m}"));
        assert_eq!(token, "tok");
        assert_eq!(m["params"]["total"], 10.0, "{m}");
        assert!(m["params"]["message"].is_string(), "{m}");
        seen.push(value);
    }
    assert_eq!(&seen[..2], &[1.0, 5.0]);
    assert!(
        seen.windows(2).all(|w| w[1] > w[0]),
        "not increasing: {seen:?}"
    );

    c.release.notify_one();
    let (done, before) = c.response(&json!(20)).await;
    assert_eq!(done["result"]["isError"], false, "{done}");
    let mut all = seen.clone();
    all.extend(before.iter().filter_map(progress_of).map(|(_, v)| v));
    assert!(
        all.windows(2).all(|w| w[1] > w[0]),
        "not increasing: {all:?}"
    );

    // Nothing follows the response: a ping right after gets its answer with no
    // progress in between.
    let (pong, between) = {
        c.request(json!(21), "ping", json!({})).await;
        c.response(&json!(21)).await
    };
    assert_eq!(pong["result"], json!({}));
    assert!(
        between.is_empty(),
        "messages after the call ended: {between:?}"
    );
}

#[tokio::test]
async fn no_progress_without_a_token() {
    let mut c = start();
    c.initialize("2025-06-18").await;
    c.request(
        json!(30),
        "tools/call",
        json!({"name": "slow", "arguments": {"reports": [1, 2]}}),
    )
    .await;
    assert_eq!(c.event().await, Event::Started("slow".into()));
    // Several heartbeat periods pass; none may produce a notification.
    tokio::time::sleep(test_tuning().keepalive * 4).await;
    c.request(json!(31), "ping", json!({})).await;
    let (_, before) = c.response(&json!(31)).await;
    assert!(before.is_empty(), "unexpected messages: {before:?}");
    c.release.notify_one();
    let (done, before) = c.response(&json!(30)).await;
    assert_eq!(done["result"]["isError"], false);
    assert!(before.is_empty(), "unexpected messages: {before:?}");
}

#[tokio::test]
async fn cancelled_notification_cancels_the_call() {
    let mut c = start();
    c.initialize("2025-11-25").await;
    c.request(json!(40), "tools/call", json!({"name": "slow"}))
        .await;
    assert_eq!(c.event().await, Event::Started("slow".into()));
    c.send(json!({
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": {"requestId": 40, "reason": "user pressed stop"}
    }))
    .await;
    assert_eq!(c.event().await, Event::Cancelled("slow".into()));

    // The server keeps serving, and the cancelled request gets no response.
    let (pong, before) = {
        c.request(json!(41), "ping", json!({})).await;
        c.response(&json!(41)).await
    };
    assert_eq!(pong["result"], json!({}));
    assert!(
        before.iter().all(|m| m["id"] != 40),
        "cancelled call answered: {before:?}"
    );
    let (end, _) = c.close_and_wait().await;
    end.unwrap();
}

#[tokio::test]
async fn eof_mid_call_cancels_and_returns() {
    let mut c = start();
    c.initialize("2025-06-18").await;
    c.request(json!(50), "tools/call", json!({"name": "slow"}))
        .await;
    assert_eq!(c.event().await, Event::Started("slow".into()));
    let (end, took) = c.close_and_wait().await;
    end.unwrap();
    eprintln!("serve() returned {took:?} after EOF with a cooperative call running");
    assert_eq!(c.event().await, Event::Cancelled("slow".into()));
}

#[tokio::test]
async fn eof_with_a_tool_that_ignores_cancellation_still_returns() {
    let mut c = start();
    c.initialize("2025-06-18").await;
    c.request(json!(60), "tools/call", json!({"name": "stubborn"}))
        .await;
    assert_eq!(c.event().await, Event::Started("stubborn".into()));
    let (end, took) = c.close_and_wait().await;
    end.unwrap();
    // The tool sleeps 600 s; returning at all proves the grace period bounds shutdown.
    eprintln!(
        "serve() returned {took:?} after EOF with a call ignoring cancellation (grace {:?})",
        test_tuning().shutdown_grace
    );
}

#[tokio::test]
async fn eof_before_any_message_is_a_clean_end() {
    let mut c = start();
    let (end, _) = c.close_and_wait().await;
    end.unwrap();
}

#[tokio::test]
async fn notifications_before_initialize_do_not_break_the_handshake() {
    let mut c = start();
    c.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;
    c.send(
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}),
    )
    .await;
    let pre = c.call(json!(0), "ping", json!({})).await;
    assert_eq!(pre["result"], json!({}), "{pre}");
    let r = c.initialize("2025-06-18").await;
    assert_eq!(r["result"]["protocolVersion"], "2025-06-18", "{r}");
}

#[tokio::test]
async fn many_concurrent_calls_each_get_their_own_answer() {
    let mut c = start();
    c.initialize("2025-06-18").await;
    // One write carrying 200 requests: responses come back in any order, each
    // on its own line and matched to its id.
    let mut batch = Vec::new();
    for i in 0..200 {
        let m = if i % 5 == 0 {
            json!({"jsonrpc": "2.0", "id": i, "method": "ping"})
        } else {
            json!({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                   "params": {"name": "echo", "arguments": {"text": format!("n{i}")}}})
        };
        batch.extend(serde_json::to_vec(&m).unwrap());
        batch.push(b'\n');
    }
    c.send_raw(&batch).await;
    let mut answered = std::collections::BTreeSet::new();
    while answered.len() < 200 {
        let m = c.next().await;
        let id = m["id"].as_i64().unwrap_or_else(|| panic!("{m}"));
        if id % 5 == 0 {
            assert_eq!(m["result"], json!({}), "{m}");
        } else {
            assert_eq!(
                m["result"]["structuredContent"]["echo"]["text"],
                format!("n{id}"),
                "{m}"
            );
        }
        assert!(answered.insert(id), "answered twice: {id}");
    }
}
