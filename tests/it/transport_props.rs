//! Properties of the real `ctmr-skill serve` stdio transport under arbitrary input
//! lines (random bytes, random JSON values, request-shaped junk, deeply nested
//! arrays, very long lines): every line it writes is a JSON-RPC 2.0 message, it
//! never crashes, and it still answers `ping` after each batch and at the end.
//! One server serves all cases (a fresh one only if a case killed it), so the run
//! takes seconds.

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};

/// A raw byte-level client: unlike `common::stdio`, it can send lines that are not
/// UTF-8.
struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    dir: tempfile::TempDir,
    next_probe: u64,
}

impl Client {
    fn start() -> Client {
        let dir = common::fresh_dir();
        let mut child = Command::new(common::binary())
            .arg("serve")
            .current_dir(dir.path())
            .env_remove("NV_SEGMENT_CTMR_ROOT")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ctmr-skill serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        let mut client = Client {
            child,
            stdin,
            lines,
            dir,
            next_probe: 0,
        };
        client.send(
            json!({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "transport-props", "version": "0"}}})
            .to_string()
            .as_bytes(),
        );
        client
            .until(&json!("init"), Duration::from_secs(30))
            .expect("initialize answered");
        client.send(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        client
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }

    /// Write `bytes` and a newline; a broken pipe is left for the next probe to find.
    fn send(&mut self, bytes: &[u8]) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = stdin
                .write_all(bytes)
                .and_then(|_| stdin.write_all(b"\n"))
                .and_then(|_| stdin.flush());
        }
    }

    /// Read messages until the response with `id`; every line must be JSON-RPC 2.0.
    fn until(&mut self, id: &Value, timeout: Duration) -> Result<Value, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .map_err(|_| format!("no response {id} within {timeout:?}"))?;
            let message: Value =
                serde_json::from_str(&line).map_err(|e| format!("non-JSON on stdout: {e}"))?;
            if message["jsonrpc"] != "2.0" {
                return Err(format!("not JSON-RPC 2.0: {line}"));
            }
            let is_response = message.get("result").is_some() || message.get("error").is_some();
            if !is_response && message.get("method").is_none() {
                return Err(format!("neither a response nor a request: {line}"));
            }
            if is_response && message["id"] == *id {
                return Ok(message);
            }
        }
    }

    /// `ping` answers with a result.
    fn ping(&mut self) -> Result<(), String> {
        self.next_probe += 1;
        let id = json!(format!("probe-{}", self.next_probe));
        self.send(
            json!({"jsonrpc": "2.0", "id": id, "method": "ping"})
                .to_string()
                .as_bytes(),
        );
        let pong = self.until(&id, Duration::from_secs(20))?;
        if pong.get("result").is_none() {
            return Err(format!("ping failed: {pong}"));
        }
        Ok(())
    }

    fn close(mut self) {
        drop(self.stdin.take());
        let start = Instant::now();
        while self.alive() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the server did not exit after stdin closed"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = &self.dir;
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,24}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::from),
            proptest::collection::btree_map(".{0,10}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// One input line, without its newline.
fn line() -> impl Strategy<Value = Vec<u8>> {
    let method = prop_oneof![
        Just("tools/call".to_string()),
        Just("tools/list".to_string()),
        Just("initialize".to_string()),
        Just("resources/list".to_string()),
        ".{0,16}",
    ];
    prop_oneof![
        // Random bytes.
        vec(any::<u8>(), 0..256),
        // Any JSON value.
        json_value().prop_map(|v| v.to_string().into_bytes()),
        // Request-shaped junk: odd ids, methods and params.
        (json_value(), method, json_value()).prop_map(|(id, m, p)| {
            json!({"jsonrpc": "2.0", "id": id, "method": m, "params": p})
                .to_string()
                .into_bytes()
        }),
        // A request with a mangled version or missing pieces.
        (json_value(), json_value()).prop_map(|(v, id)| {
            json!({"jsonrpc": v, "id": id, "method": "ping"})
                .to_string()
                .into_bytes()
        }),
        // Deeply nested arrays.
        (1usize..20_000).prop_map(|d| {
            let mut s = "[".repeat(d).into_bytes();
            s.extend(std::iter::repeat_n(b']', d));
            s
        }),
        // Long lines, under the 16 MiB limit: a long string and plain filler.
        (1usize..400_000).prop_map(|n| format!("\"{}\"", "a".repeat(n)).into_bytes()),
        (1usize..400_000, any::<u8>()).prop_map(|(n, b)| vec![b; n]),
    ]
    .prop_map(|mut bytes| {
        // A line never contains its terminator.
        for b in &mut bytes {
            if *b == b'\n' {
                *b = b' ';
            }
        }
        bytes
    })
}

#[test]
fn arbitrary_lines_never_crash_the_server_and_ping_still_answers() {
    let client = std::cell::RefCell::new(Client::start());
    let mut runner = TestRunner::new(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    });
    let started = Instant::now();
    let result = runner.run(&vec(line(), 1..6), |batch| {
        let mut client = client.borrow_mut();
        if !client.alive() {
            *client = Client::start();
        }
        for l in &batch {
            client.send(l);
        }
        client.ping().map_err(TestCaseError::fail)?;
        if !client.alive() {
            return Err(TestCaseError::fail("the server exited"));
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }

    // Over the line limit: refused with a JSON-RPC error, and the server goes on.
    let mut client = client.into_inner();
    client.send(&vec![b'x'; 17 << 20]);
    client.ping().unwrap();
    assert!(client.alive());
    client.ping().unwrap();
    client.close();
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "took {:?}",
        started.elapsed()
    );
}
