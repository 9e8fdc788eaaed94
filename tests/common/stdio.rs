//! A raw JSON-lines client for the real `ctmr-skill serve` binary over real pipes:
//! what an agent's MCP client sees, with nothing of an SDK in between.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// One `ctmr-skill serve` process; every stdout line it writes must be JSON-RPC.
pub(crate) struct Server {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Server {
    pub(crate) fn start(cwd: &Path, python: Option<&Path>) -> Server {
        Server::start_with_env(cwd, python, &[])
    }

    /// With extra environment variables (e.g. `CTMR_SKILL_RUNS_DIR`).
    pub(crate) fn start_with_env(
        cwd: &Path,
        python: Option<&Path>,
        env: &[(&str, &Path)],
    ) -> Server {
        Server::start_with_args(cwd, python, env, &[])
    }

    /// With extra environment variables and `serve` flags (e.g. `--warm`).
    pub(crate) fn start_with_args(
        cwd: &Path,
        python: Option<&Path>,
        env: &[(&str, &Path)],
        flags: &[&str],
    ) -> Server {
        let mut command = Command::new(super::binary());
        command.arg("serve").args(flags);
        command.env_remove("NV_SEGMENT_CTMR_ROOT");
        if let Some(python) = python {
            command.env("CTMR_SKILL_PYTHON", python);
        }
        for (key, value) in env {
            command.env(key, value);
        }
        Server::spawn(command, cwd)
    }

    /// `serve` under an address-space limit (`ulimit -v`, in KiB) set by `sh`, which
    /// then execs the server: `child` is the server's own process.
    pub(crate) fn start_limited(cwd: &Path, limit_kib: u64) -> Server {
        let mut command = Command::new("sh");
        command.env_remove("NV_SEGMENT_CTMR_ROOT");
        command
            .arg("-c")
            .arg(format!("ulimit -v {limit_kib} && exec \"$0\" serve"))
            .arg(super::binary());
        Server::spawn(command, cwd)
    }

    fn spawn(mut command: Command, cwd: &Path) -> Server {
        command
            .current_dir(cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = command.spawn().expect("spawn ctmr-skill serve");
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
        Server {
            child,
            stdin,
            lines,
        }
    }

    pub(crate) fn send_raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    pub(crate) fn send(&mut self, message: Value) {
        self.send_raw(&message.to_string());
    }

    /// Every stdout line must be a JSON-RPC message; return the first that matches.
    pub(crate) fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
            let message: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("non-JSON on stdout: {line}: {e}"));
            assert_eq!(message["jsonrpc"], "2.0", "{line}");
            if matches(&message) {
                return message;
            }
        }
    }

    pub(crate) fn response(&self, id: i64, timeout: Duration) -> Value {
        self.wait_for(&format!("response {id}"), timeout, |m| {
            m["id"] == json!(id) && m.get("method").is_none()
        })
    }

    pub(crate) fn initialize(&mut self) {
        self.initialize_with("2025-06-18", json!({}));
    }

    /// `initialize` with this revision and client capabilities, then
    /// `notifications/initialized`; returns the `initialize` response.
    pub(crate) fn initialize_with(&mut self, protocol: &str, capabilities: Value) -> Value {
        self.send(
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": protocol, "capabilities": capabilities,
            "clientInfo": {"name": "raw-test", "version": "0"}}}),
        );
        let init = self.response(0, Duration::from_secs(30));
        assert_eq!(init["result"]["protocolVersion"], protocol, "{init}");
        assert!(init["result"]["instructions"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("not for clinical use"));
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        init
    }

    /// Send request `id` and wait for its response.
    pub(crate) fn request(
        &mut self,
        id: i64,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Value {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        self.response(id, timeout)
    }

    pub(crate) fn call(&mut self, id: i64, name: &str, arguments: Value) {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": arguments}}));
    }

    pub(crate) fn close_and_wait(mut self, limit: Duration) -> Duration {
        drop(self.stdin.take());
        let start = Instant::now();
        loop {
            if self.child.try_wait().unwrap().is_some() {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "server still running {limit:?} after stdin closed"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
