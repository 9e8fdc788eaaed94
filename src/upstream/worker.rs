//! Warm upstream workers: one Python process that keeps the bundle's network loaded
//! between requests ([`WORKER_SCRIPT`]).
//!
//! Why: a run's own work (the model on one volume) takes seconds, but every one-shot
//! call also pays for starting Python, importing torch and MONAI and loading the
//! weights. A worker pays that once. It runs the bundle's own workflow per request
//! (`ConfigWorkflow` with exactly the documented command's arguments; the bundle's
//! transforms, inferer and writer), only handing later requests the network object
//! the first one built and loaded. A request that would change the network, its
//! weights or its device is answered with a fallback reason, and the caller runs the
//! documented command instead.
//!
//! The worker is sandboxed like a one-shot run, but its Landlock rules are fixed when
//! it starts, so it writes only into its private directory: each request's output goes
//! to a scratch folder there, and the caller moves the mask into the pack. Requests and
//! replies travel as JSON lines over a UNIX socket in that directory, never over the
//! child's stdout. The worker dies with the server (`PR_SET_PDEATHSIG`), its process
//! group is killed when it is dropped, cancelled or past a request's timeout. It is
//! started, killed and tailed by the same helpers as a one-shot run
//! (`supervise.rs`: `spawn_child`, `GroupGuard`, `tail_of_file`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

use super::python::{probe_answer, RawProbe};
use super::sandbox::{sandbox_for, PrivateTmp, SandboxReport, SandboxRequest};
use super::supervise::{spawn_child, tail_of_file, GroupGuard};
use super::{child_env, DeviceRequest, EnvProbe, UpstreamError};

/// The worker program, shipped in the binary and written into the worker's private
/// directory when it starts.
pub(crate) const WORKER_SCRIPT: &str = include_str!("worker.py");

/// How long a worker may take to start and report its environment (torch's import
/// with CUDA initialisation took 17 s cold on an H200).
pub(crate) const WORKER_START_TIMEOUT: Duration = Duration::from_secs(300);

/// What a worker is started with.
#[derive(Debug, Clone)]
pub(crate) struct WorkerSpec {
    pub python: PathBuf,
    pub bundle_root: PathBuf,
    pub device: DeviceRequest,
    /// The environment the child starts from (see [`child_env`]).
    pub base_env: Vec<(OsString, OsString)>,
    pub require_sandbox: bool,
}

/// One worker's answer to a request.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct WarmReply {
    #[serde(default)]
    pub ok: bool,
    pub exit_code: Option<i32>,
    /// Set when the worker cannot serve the request identically; nothing ran.
    pub fallback: Option<String>,
    #[serde(default)]
    pub seconds: f64,
    /// Requests this worker has served, this one included.
    #[serde(default)]
    pub served: u64,
    /// Seconds the first request spent building the network and loading the weights.
    pub load_seconds: Option<f64>,
}

/// A running worker.
pub(crate) struct Worker {
    /// `w-<uuid>`, for the evidence.
    pub id: String,
    pub pid: u32,
    pub started_at: String,
    /// Seconds from spawn to its environment report (Python, torch, MONAI imported).
    pub start_seconds: f64,
    /// What the interpreter provides, reported by the worker itself (no separate probe).
    pub probe: EnvProbe,
    pub sandbox: SandboxReport,
    pub env_set: std::collections::BTreeMap<String, String>,
    pub env_removed: Vec<String>,
    /// The argv that started it.
    pub argv: Vec<String>,
    lines: Lines<BufReader<OwnedReadHalf>>,
    writer: OwnedWriteHalf,
    next_id: u64,
    // Dropped after the fields above: the process group dies, then the directory goes.
    _group: GroupGuard,
    _child: tokio::process::Child,
    dir: PrivateTmp,
}

/// Why a request got no reply: the worker is gone (or was killed) and must be replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WorkerLost {
    Cancelled,
    TimedOut,
    /// It exited or closed its socket; the text says what it left on stderr.
    Died(String),
}

impl Worker {
    /// Start a worker and wait for its environment report.
    pub(crate) async fn start(spec: &WorkerSpec) -> Result<Worker, UpstreamError> {
        let io = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| UpstreamError::Io {
                action,
                path,
                source,
            }
        };
        let dir = PrivateTmp::create().map_err(io("cannot create", &std::env::temp_dir()))?;
        for sub in ["scratch", "tmp", "logs"] {
            std::fs::create_dir_all(dir.path().join(sub))
                .map_err(io("cannot create", &dir.path().join(sub)))?;
        }
        let script = dir.path().join("ctmr_worker.py");
        std::fs::write(&script, WORKER_SCRIPT).map_err(io("cannot write", &script))?;
        let socket = dir.path().join("worker.sock");
        let listener = UnixListener::bind(&socket).map_err(io("cannot listen on", &socket))?;
        let mut env = child_env(
            spec.base_env.clone(),
            &dir.path().join("scratch"),
            spec.device,
        );
        env.vars
            .insert("TMPDIR".into(), dir.path().join("tmp").into_os_string());
        let writable: Vec<PathBuf> = ["scratch", "tmp", "logs"]
            .iter()
            .map(|d| dir.path().join(d))
            .collect();
        let sandbox = sandbox_for(
            &SandboxRequest {
                enabled: true,
                required: spec.require_sandbox,
                writable,
                append_files: super::bundle_logs::bundle_log_files(&spec.bundle_root),
            },
            &env,
        )
        .map_err(|reason| UpstreamError::SandboxUnavailable { reason })?;
        let argv = vec![
            spec.python.display().to_string(),
            script.display().to_string(),
            socket.display().to_string(),
            spec.bundle_root.display().to_string(),
        ];
        let output = (
            log_file(&dir.path().join("logs/worker.stdout.log"))?,
            log_file(&dir.path().join("logs/worker.stderr.log"))?,
        );
        let t0 = Instant::now();
        let spawned = spawn_child(
            &spec.bundle_root,
            &env,
            &spec.python,
            &argv[1..],
            &sandbox,
            output,
        );
        let mut child = spawned.map_err(|e| UpstreamError::Io {
            action: "cannot start the warm worker with",
            path: spec.python.clone(),
            source: e,
        })?;
        let pid = child.id().unwrap_or_default();
        let group = GroupGuard(child.id());
        let died = |dir: &PrivateTmp, what: String| UpstreamError::ProbeFailed {
            python: spec.python.clone(),
            detail: format!("the warm worker {what}"),
            stderr_tail: tail_of_file(&dir.path().join("logs/worker.stderr.log")),
        };
        let accepted = tokio::select! {
            a = tokio::time::timeout(WORKER_START_TIMEOUT, listener.accept()) => a,
            status = child.wait() => {
                return Err(died(&dir, format!("exited before it connected ({status:?})")));
            }
        };
        let (stream, _) = match accepted {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(died(&dir, format!("could not connect: {e}"))),
            Err(_) => return Err(died(&dir, "did not connect in time".into())),
        };
        let (read, writer) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let hello = match tokio::time::timeout(WORKER_START_TIMEOUT, lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            _ => return Err(died(&dir, "sent no environment report".into())),
        };
        let raw: RawProbe = serde_json::from_str(&hello)
            .map_err(|e| died(&dir, format!("sent an unreadable report ({e})")))?;
        let probe = probe_answer(&spec.python, raw)?;
        Ok(Worker {
            id: format!("w-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            pid,
            started_at: chrono::Utc::now().to_rfc3339(),
            start_seconds: t0.elapsed().as_secs_f64(),
            probe,
            sandbox: sandbox.report.clone(),
            env_set: env.set_by_us.clone(),
            env_removed: env.removed.clone(),
            argv,
            lines,
            writer,
            next_id: 0,
            _group: group,
            _child: child,
            dir,
        })
    }

    /// A fresh scratch folder for one request's output (inside what the worker may write).
    pub(crate) fn scratch(&mut self) -> std::io::Result<PathBuf> {
        self.next_id += 1;
        let path = self
            .dir
            .path()
            .join("scratch")
            .join(format!("r{}", self.next_id));
        std::fs::create_dir_all(&path)?;
        Ok(path)
    }

    /// Run one request: `arguments` are the documented command's arguments after
    /// `python -m monai.bundle run` (with `--output_dir` inside [`Worker::scratch`]);
    /// the bundle's output goes to `logs` as `upstream.stdout.log` / `.stderr.log`.
    pub(crate) async fn request(
        &mut self,
        arguments: &[String],
        logs: &Path,
        cancel: &CancellationToken,
        timeout: Duration,
    ) -> Result<WarmReply, WorkerLost> {
        self.next_id += 1;
        let line = serde_json::json!({"id": self.next_id, "argv": arguments, "log_dir": logs});
        let mut bytes = line.to_string().into_bytes();
        bytes.push(b'\n');
        if self.writer.write_all(&bytes).await.is_err() {
            return Err(self.lost("closed its socket"));
        }
        let reply = tokio::select! {
            r = tokio::time::timeout(timeout, self.lines.next_line()) => r,
            _ = cancel.cancelled() => return Err(WorkerLost::Cancelled),
        };
        match reply {
            Err(_) => Err(WorkerLost::TimedOut),
            Ok(Ok(Some(line))) => serde_json::from_str(&line)
                .map_err(|e| WorkerLost::Died(format!("sent an unreadable reply ({e})"))),
            Ok(_) => Err(self.lost("exited during the request")),
        }
    }

    fn lost(&self, what: &str) -> WorkerLost {
        WorkerLost::Died(format!(
            "the warm worker (pid {}) {what}: {}",
            self.pid,
            tail_of_file(&self.dir.path().join("logs/worker.stderr.log"))
        ))
    }
}

fn log_file(path: &Path) -> Result<Stdio, UpstreamError> {
    std::fs::File::create(path)
        .map(Stdio::from)
        .map_err(|source| UpstreamError::Io {
            action: "cannot create",
            path: path.to_path_buf(),
            source,
        })
}
