//! The supervised child process.
//!
//! Why each rule:
//! - never a shell, argv as built: what the evidence records is what ran;
//! - stdin null, stdout/stderr to log files (tails kept): our stdout is the MCP protocol;
//! - its own process group: MONAI/torch start helpers (data-loader workers, compilers),
//!   and timeout, cancellation and a dropped run must end all of them, not just the
//!   leader: SIGTERM to the group, SIGKILL after a grace period, SIGKILL to any
//!   stragglers once the leader is gone, and a drop guard that kills the group when the
//!   run future is dropped (a server that exits never leaves children behind).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::argv::{build_argv, build_batch_argv, BatchRequest, UpstreamRequest};
use super::error::UpstreamError;
use super::launch::plan_launch;
use super::output::{
    adopt_mask, check_output_dir, check_output_location, move_aside_stale, MaskAdoption,
    StaleOutput,
};
use super::python::{
    check_device, check_tensorrt, child_env, probe_environment_in, ChildEnv, DeviceRequest,
    EnvProbe,
};
use super::sandbox::{
    harden, sandbox_for, with_tmpdir, PreparedSandbox, PrivateTmp, SandboxReport, SandboxRequest,
};

/// Characters of each stream kept as a tail (the reference wrapper's 4000).
pub const TAIL_CHARS: usize = 4000;
/// Longest line handed to the progress hook; longer lines are split.
const MAX_LINE_BYTES: usize = 4096;
/// How long the log pumps may keep reading after the process group is gone (a process
/// that left the group could otherwise hold the pipes open forever).
const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// The exit code recorded for a timeout (`timeout(1)`'s and the reference wrapper's).
const TIMEOUT_EXIT_CODE: i32 = 124;

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// What the progress hook hears.
#[derive(Debug, Clone, PartialEq)]
pub enum ProgressEvent {
    /// One line of the child's output (split at `\n` and `\r`, so progress bars count).
    Line { stream: Stream, line: String },
    /// The periodic heartbeat.
    Tick { elapsed: Duration },
}

/// Called with every line and every tick; must be quick (it runs on the pump).
pub(crate) type ProgressHook = Arc<dyn Fn(ProgressEvent) + Send + Sync>;

/// How to supervise a run.
#[derive(Clone)]
pub struct RunOptions {
    /// Wall-clock limit; the group is terminated when it passes.
    pub timeout: Duration,
    /// Between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// Cancelling terminates the group like a timeout does.
    pub cancel: CancellationToken,
    /// Where `upstream.stdout.log` and `upstream.stderr.log` go (created if missing).
    pub log_dir: PathBuf,
    pub progress: Option<ProgressHook>,
    /// Heartbeat period for [`ProgressEvent::Tick`].
    pub tick: Duration,
    /// The environment the child starts from (normally ours); see [`child_env`].
    pub base_env: Vec<(OsString, OsString)>,
    /// Confine the child (the run and [`probe_for_request`]'s probe) with the Landlock
    /// sandbox ([`super::sandbox::sandbox_for`]); default true. Where Landlock is unavailable the
    /// child runs unconfined and [`RunResult::sandbox`] says why.
    pub sandbox: bool,
    /// Refuse to start ([`UpstreamError::SandboxUnavailable`]) instead of running
    /// unconfined when the sandbox cannot be applied; default false.
    pub require_sandbox: bool,
    /// Directories the child may write besides the log directory, its private `TMPDIR`
    /// and (for [`run`] and [`run_batch`]) the output directory.
    pub writable_dirs: Vec<PathBuf>,
    /// Told the child's pid (its process group id) once it started.
    pub on_spawn: Option<Arc<dyn Fn(u32) + Send + Sync>>,
}

impl RunOptions {
    /// Defaults: 3 s kill grace, 5 s ticks, no hook, a fresh token, our own environment,
    /// the sandbox applied where available.
    pub fn new(log_dir: impl Into<PathBuf>, timeout: Duration) -> Self {
        RunOptions {
            timeout,
            kill_grace: Duration::from_secs(3),
            cancel: CancellationToken::new(),
            log_dir: log_dir.into(),
            progress: None,
            tick: Duration::from_secs(5),
            base_env: std::env::vars_os().collect(),
            sandbox: true,
            require_sandbox: false,
            writable_dirs: Vec::new(),
            on_spawn: None,
        }
    }
}

/// A command ready to supervise.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// `argv[0]` is the program.
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    pub env: ChildEnv,
}

/// How the child ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunOutcome {
    /// It ended by itself. A death by signal is `code = 128 + signal`, with `signal` set.
    Exited { code: i32, signal: Option<i32> },
    /// The timeout passed; the group was killed.
    TimedOut,
    /// The cancellation token fired; the group was killed (or the run never started).
    Cancelled,
    /// The program could not be started.
    SpawnFailed { reason: String },
}

/// Everything about one supervised run.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// The command on record: for [`run`] and [`run_batch`] the documented
    /// `python -m monai.bundle run ...`; for [`supervise`] the argv it ran.
    pub command: Vec<String>,
    /// The argv actually executed. For [`run`] and [`run_batch`] ([`super::launch::plan_launch`]):
    /// `command` itself on Python >= 3.11 (the bundle root is kept behind site-packages
    /// through the environment: `PYTHONSAFEPATH`, the `PYTHONPATH` path shim); on older
    /// Pythons [`super::launch_argv`] of `command`, `-m monai.bundle` replaced by the
    /// safe-path bootstrap, every other argument the same.
    pub launch_argv: Vec<String>,
    pub cwd: PathBuf,
    /// Environment variables we set or replaced for the child.
    pub env_set: BTreeMap<String, String>,
    /// Variables of the base environment the child did not get ([`ChildEnv::removed`]).
    pub env_removed: Vec<String>,
    pub outcome: RunOutcome,
    /// `Exited` → its code; `TimedOut` → 124; `Cancelled`, `SpawnFailed` → `None`.
    pub exit_code: Option<i32>,
    pub seconds: f64,
    pub started_at: String,
    pub finished_at: String,
    /// The start as a clock reading, for comparing file times.
    #[serde(skip)]
    pub started: SystemTime,
    /// The last [`TAIL_CHARS`] characters, prefixed with `...` when cut.
    pub stdout_tail: String,
    pub stderr_tail: String,
    pub stdout_log: PathBuf,
    pub stderr_log: PathBuf,
    /// Why a log could not be written completely, if it could not.
    pub log_write_error: Option<String>,
    /// Set by [`run`]: an earlier mask moved aside before the run.
    pub stale_output: Option<StaleOutput>,
    /// Set by [`run`]: whether the expected mask is this run's output.
    pub mask: Option<MaskAdoption>,
    pub device_requested: Option<DeviceRequest>,
    /// Set by [`run`]: the device the probe says will be used.
    pub device: Option<String>,
    /// Set by run_batch for a volume that finished before its batch process failed
    /// on a later one: that process's own exit code (`outcome`/`exit_code` are then
    /// the volume's, 0). `None` otherwise.
    pub batch_process_exit_code: Option<i32>,
    /// The Landlock sandbox the child ran under (or why it ran without one).
    pub sandbox: SandboxReport,
}

impl RunResult {
    /// The child exited with status 0.
    pub fn succeeded(&self) -> bool {
        matches!(self.outcome, RunOutcome::Exited { code: 0, .. })
    }
}

/// Run a single-volume request: refuse before starting when `device=cuda` has no CUDA
/// under `probe`, when the output would land in the bundle or over the input; move a
/// stale mask aside; supervise; then adopt the mask only if this run wrote it.
/// The child is started as [`super::launch::plan_launch`] says for the probed Python (MONAI
/// cannot be shadowed from the bundle root); the result's `command` is the documented one.
/// `probe` must come from [`super::probe_environment`] under the same environment.
pub async fn run(
    req: &UpstreamRequest,
    probe: &EnvProbe,
    opts: &RunOptions,
) -> Result<RunResult, UpstreamError> {
    let argv = build_argv(req)?;
    check_device(req.device, probe)?;
    check_tensorrt(req.tensorrt, probe)?;
    std::fs::metadata(&req.input).map_err(|source| UpstreamError::Io {
        action: "cannot read the input",
        path: req.input.clone(),
        source,
    })?;
    let mask_path = check_output_location(&req.input, &req.output_dir, &req.bundle_root)?;
    create_dir(&req.output_dir)?;
    let stale = move_aside_stale(&mask_path, Utc::now())?;
    let env = child_env(opts.base_env.clone(), &req.output_dir, req.device);
    let launch = plan_launch(&argv, env, &probe.python_version)?;
    let inv = Invocation {
        argv: launch.argv.clone(),
        cwd: req.bundle_root.clone(),
        env: launch.env.clone(),
    };
    let mut result = supervise_writing(&inv, opts, std::slice::from_ref(&req.output_dir)).await?;
    result.command = argv;
    result.stale_output = stale;
    result.mask = Some(adopt_mask(&mask_path, result.started));
    result.device_requested = Some(req.device);
    result.device = Some(probe.device.clone());
    Ok(result)
}

/// Probe the environment exactly as [`run`] will start `req` (same base environment,
/// output-derived variables, device setting, working directory and sandbox settings).
pub async fn probe_for_request(
    req: &UpstreamRequest,
    opts: &RunOptions,
    timeout: Duration,
) -> Result<EnvProbe, UpstreamError> {
    let env = child_env(opts.base_env.clone(), &req.output_dir, req.device);
    let sandbox = sandbox_request(opts, std::slice::from_ref(&req.output_dir));
    probe_environment_in(&req.python, &env, &req.bundle_root, timeout, &sandbox).await
}

/// The sandbox settings of `opts`, writable: the log directory, `extra` and
/// `opts.writable_dirs` (the private `TMPDIR` is added where it is created).
fn sandbox_request(opts: &RunOptions, extra: &[PathBuf]) -> SandboxRequest {
    let mut writable = vec![opts.log_dir.clone()];
    writable.extend(extra.iter().cloned());
    writable.extend(opts.writable_dirs.iter().cloned());
    SandboxRequest {
        enabled: opts.sandbox,
        required: opts.require_sandbox,
        writable,
        append_files: Vec::new(),
    }
}

/// Run a batch request (the same refusals, minus the per-file ones; the upstream's own
/// resume logic decides which volumes it writes).
pub async fn run_batch(
    req: &BatchRequest,
    probe: &EnvProbe,
    opts: &RunOptions,
) -> Result<RunResult, UpstreamError> {
    let argv = build_batch_argv(req)?;
    check_device(req.device, probe)?;
    check_tensorrt(req.tensorrt, probe)?;
    check_output_dir(&req.output_dir, &req.bundle_root)?;
    create_dir(&req.output_dir)?;
    let env = child_env(opts.base_env.clone(), &req.output_dir, req.device);
    let launch = plan_launch(&argv, env, &probe.python_version)?;
    let inv = Invocation {
        argv: launch.argv.clone(),
        cwd: req.bundle_root.clone(),
        env: launch.env.clone(),
    };
    let mut result = supervise_writing(&inv, opts, std::slice::from_ref(&req.output_dir)).await?;
    result.command = argv;
    result.device_requested = Some(req.device);
    result.device = Some(probe.device.clone());
    Ok(result)
}

fn create_dir(dir: &Path) -> Result<(), UpstreamError> {
    std::fs::create_dir_all(dir).map_err(|source| UpstreamError::Io {
        action: "cannot create the directory",
        path: dir.to_path_buf(),
        source,
    })
}

/// Supervise `inv`: spawn it in its own process group with logs, a private `TMPDIR`
/// and the sandbox of `opts` (writable: the log directory, the `TMPDIR`,
/// `opts.writable_dirs`), enforce the timeout and the cancellation token, and clean up
/// the whole group. `Err` when the log files or the `TMPDIR` cannot be created, or the
/// sandbox is required and unavailable; a program that cannot start is
/// [`RunOutcome::SpawnFailed`].
pub async fn supervise(inv: &Invocation, opts: &RunOptions) -> Result<RunResult, UpstreamError> {
    supervise_writing(inv, opts, &[]).await
}

/// [`supervise`], the child also allowed to write below `extra_writable`.
async fn supervise_writing(
    inv: &Invocation,
    opts: &RunOptions,
    extra_writable: &[PathBuf],
) -> Result<RunResult, UpstreamError> {
    let logs = Logs::create(&opts.log_dir)?;
    let t0 = Instant::now();
    let mut result = new_result(inv, &logs);
    if opts.cancel.is_cancelled() {
        return Ok(finish(result, t0));
    }
    let Some((program, args)) = inv.argv.split_first() else {
        result.outcome = RunOutcome::SpawnFailed {
            reason: "empty command".into(),
        };
        return Ok(finish(result, t0));
    };
    let tmp = PrivateTmp::create().map_err(|source| UpstreamError::Io {
        action: "cannot create the private temp dir in",
        path: std::env::temp_dir(),
        source,
    })?;
    let env = with_tmpdir(&inv.env, tmp.path());
    result.env_set = env.set_by_us.clone();
    let mut request = sandbox_request(opts, extra_writable);
    request.writable.push(tmp.path().to_path_buf());
    // The documented command appends to the bundle's own log file(s) in its cwd.
    request.append_files = super::bundle_logs::bundle_log_files(&inv.cwd);
    let sandbox = sandbox_for(&request, &env)
        .map_err(|reason| UpstreamError::SandboxUnavailable { reason })?;
    result.sandbox = sandbox.report.clone();
    let spawned = spawn_child(
        &inv.cwd,
        &env,
        program,
        args,
        &sandbox,
        (Stdio::piped(), Stdio::piped()),
    );
    drop(sandbox);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            result.outcome = RunOutcome::SpawnFailed {
                reason: format!("cannot start {program} in {}: {e}", inv.cwd.display()),
            };
            return Ok(finish(result, t0));
        }
    };
    let pgid = child.id();
    if let (Some(hook), Some(pid)) = (&opts.on_spawn, pgid) {
        hook(pid);
    }
    let mut guard = GroupGuard(pgid);
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());

    // Fires when the group is gone; the pumps then get DRAIN_GRACE to reach end-of-file.
    let group_gone = CancellationToken::new();
    let hook = opts.progress.clone();
    let pump_out = pump(
        stdout,
        logs.out_file,
        Stream::Stdout,
        hook.clone(),
        group_gone.clone(),
    );
    let pump_err = pump(
        stderr,
        logs.err_file,
        Stream::Stderr,
        hook.clone(),
        group_gone.clone(),
    );
    let watch = watch_child(&mut child, pgid, opts, t0, &group_gone);
    let ((out_tail, out_err), (err_tail, err_err), outcome) =
        tokio::join!(pump_out, pump_err, watch);
    guard.disarm();

    result.exit_code = exit_code_of(&outcome);
    result.outcome = outcome;
    result.stdout_tail = out_tail;
    result.stderr_tail = err_tail;
    result.log_write_error = out_err.or(err_err);
    Ok(finish(result, t0))
}

/// The two log files of a run, created (truncated) in the log directory.
struct Logs {
    stdout_log: PathBuf,
    stderr_log: PathBuf,
    out_file: tokio::fs::File,
    err_file: tokio::fs::File,
}

impl Logs {
    fn create(log_dir: &Path) -> Result<Logs, UpstreamError> {
        create_dir(log_dir)?;
        let stdout_log = log_dir.join("upstream.stdout.log");
        let stderr_log = log_dir.join("upstream.stderr.log");
        let open = |path: &Path| {
            std::fs::File::create(path)
                .map(tokio::fs::File::from_std)
                .map_err(|source| UpstreamError::Io {
                    action: "cannot create the log",
                    path: path.to_path_buf(),
                    source,
                })
        };
        let (out_file, err_file) = (open(&stdout_log)?, open(&stderr_log)?);
        Ok(Logs {
            stdout_log,
            stderr_log,
            out_file,
            err_file,
        })
    }
}

/// The record of a run that starts now; outcome `Cancelled` until it is known.
fn new_result(inv: &Invocation, logs: &Logs) -> RunResult {
    let started = SystemTime::now();
    RunResult {
        command: inv.argv.clone(),
        launch_argv: inv.argv.clone(),
        cwd: inv.cwd.clone(),
        env_set: inv.env.set_by_us.clone(),
        env_removed: inv.env.removed.clone(),
        outcome: RunOutcome::Cancelled,
        exit_code: None,
        seconds: 0.0,
        started_at: rfc3339(started),
        finished_at: String::new(),
        started,
        stdout_tail: String::new(),
        stderr_tail: String::new(),
        stdout_log: logs.stdout_log.clone(),
        stderr_log: logs.stderr_log.clone(),
        log_write_error: None,
        stale_output: None,
        mask: None,
        batch_process_exit_code: None,
        device_requested: None,
        device: None,
        sandbox: SandboxReport::not_enforced(None, "the child was not started"),
    }
}

/// Stamp the duration (to the millisecond) and the finishing time.
fn finish(mut r: RunResult, t0: Instant) -> RunResult {
    r.seconds = (t0.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    r.finished_at = rfc3339(SystemTime::now());
    r
}

/// Start the program: no shell, exactly this environment, stdin null, stdout and
/// stderr where `output` says (pipes for a run, log files for a warm worker), its own
/// process group, killed if the handle is dropped, hardened ([`harden`]: the sandbox,
/// death with the server).
pub(crate) fn spawn_child(
    cwd: &Path,
    env: &ChildEnv,
    program: impl AsRef<std::ffi::OsStr>,
    args: &[String],
    sandbox: &PreparedSandbox,
    output: (Stdio, Stdio),
) -> std::io::Result<tokio::process::Child> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .current_dir(cwd)
        .env_clear()
        .envs(&env.vars)
        .stdin(Stdio::null())
        .stdout(output.0)
        .stderr(output.1)
        .kill_on_drop(true);
    #[cfg(unix)]
    cmd.process_group(0);
    harden(&mut cmd, sandbox);
    cmd.spawn()
}

/// Wait for the child, the deadline or the cancellation token, ticking the hook;
/// terminate the group on a deadline or cancellation, then kill what is left of it
/// and fire `group_gone`.
async fn watch_child(
    child: &mut tokio::process::Child,
    pgid: Option<u32>,
    opts: &RunOptions,
    t0: Instant,
    group_gone: &CancellationToken,
) -> RunOutcome {
    // Clamped: a zero period panics in tokio, a huge one overflows the clock.
    let period = opts
        .tick
        .clamp(Duration::from_millis(10), Duration::from_secs(86_400));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = tokio::time::sleep(opts.timeout);
    tokio::pin!(deadline);
    let ended = loop {
        tokio::select! {
            status = child.wait() => break Ok(status),
            _ = &mut deadline => break Err(RunOutcome::TimedOut),
            _ = opts.cancel.cancelled() => break Err(RunOutcome::Cancelled),
            _ = ticker.tick() => {
                if let Some(h) = &opts.progress {
                    h(ProgressEvent::Tick { elapsed: t0.elapsed() });
                }
            }
        }
    };
    let outcome = match ended {
        Ok(Ok(status)) => exited(status),
        Ok(Err(e)) => RunOutcome::SpawnFailed {
            reason: format!("lost track of the child: {e}"),
        },
        Err(killed) => {
            terminate(pgid, child, opts.kill_grace).await;
            killed
        }
    };
    // The leader is gone; helpers it left in the group go too.
    if let Some(pid) = pgid {
        kill_group(pid, libc::SIGKILL);
    }
    group_gone.cancel();
    outcome
}

/// `Exited` → its code; `TimedOut` → 124; otherwise none.
fn exit_code_of(outcome: &RunOutcome) -> Option<i32> {
    match outcome {
        RunOutcome::Exited { code, .. } => Some(*code),
        RunOutcome::TimedOut => Some(TIMEOUT_EXIT_CODE),
        _ => None,
    }
}

fn exited(status: std::process::ExitStatus) -> RunOutcome {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return RunOutcome::Exited {
                code: 128 + sig,
                signal: Some(sig),
            };
        }
    }
    RunOutcome::Exited {
        code: status.code().unwrap_or(-1),
        signal: None,
    }
}

/// SIGTERM to the group; SIGKILL if the leader is still there after `grace`.
async fn terminate(pgid: Option<u32>, child: &mut tokio::process::Child, grace: Duration) {
    let Some(pid) = pgid else {
        let _ = child.kill().await;
        return;
    };
    kill_group(pid, libc::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        kill_group(pid, libc::SIGKILL);
        let _ = child.wait().await;
    }
}

/// Send `signal` to process group `pgid`; false when no such group is left.
pub(crate) fn kill_group(pgid: u32, signal: i32) -> bool {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return false;
    };
    if pgid <= 1 {
        return false;
    }
    // SAFETY: killpg has no memory-safety preconditions; the id is a group we created.
    unsafe { libc::killpg(pgid, signal) == 0 }
}

/// Kills the group with SIGKILL when dropped armed (the run future was dropped
/// mid-run, or a warm worker was dropped); through [`kill_group`], so never group 0 or 1.
pub(crate) struct GroupGuard(pub(crate) Option<u32>);

impl GroupGuard {
    pub(crate) fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            kill_group(pid, libc::SIGKILL);
        }
    }
}

/// Copy `reader` to `file`, hand lines to the hook, keep a tail. Returns the tail and
/// the first log-write error. Keeps draining the pipe even when the log cannot be
/// written, so the child never blocks on a full pipe.
async fn pump(
    reader: Option<impl AsyncRead + Unpin>,
    mut file: tokio::fs::File,
    stream: Stream,
    hook: Option<ProgressHook>,
    group_gone: CancellationToken,
) -> (String, Option<String>) {
    let mut tail = TailBuffer::default();
    let mut write_error: Option<String> = None;
    let Some(mut reader) = reader else {
        return (tail.finish(), None);
    };
    let mut line: Vec<u8> = Vec::new();
    let emit = |line: &mut Vec<u8>| {
        if let Some(h) = &hook {
            if !line.is_empty() {
                h(ProgressEvent::Line {
                    stream,
                    line: String::from_utf8_lossy(line).into_owned(),
                });
            }
        }
        line.clear();
    };
    let drain_deadline = async {
        group_gone.cancelled().await;
        tokio::time::sleep(DRAIN_GRACE).await;
    };
    tokio::pin!(drain_deadline);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            r = reader.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            _ = &mut drain_deadline => break,
        };
        let chunk = &buf[..n];
        if write_error.is_none() {
            if let Err(e) = file.write_all(chunk).await {
                write_error = Some(format!("{stream:?} log: {e}"));
            }
        }
        tail.push(chunk);
        for &b in chunk {
            if b == b'\n' || b == b'\r' {
                emit(&mut line);
            } else {
                line.push(b);
                if line.len() >= MAX_LINE_BYTES {
                    emit(&mut line);
                }
            }
        }
    }
    emit(&mut line);
    if write_error.is_none() {
        if let Err(e) = file.flush().await {
            write_error = Some(format!("{stream:?} log: {e}"));
        }
    }
    (tail.finish(), write_error)
}

/// The last bytes of a stream, enough for [`TAIL_CHARS`] characters of any UTF-8.
#[derive(Default)]
struct TailBuffer {
    bytes: std::collections::VecDeque<u8>,
    dropped: bool,
}

impl TailBuffer {
    const CAP: usize = TAIL_CHARS * 4 + 4;

    fn push(&mut self, chunk: &[u8]) {
        let chunk = if chunk.len() > Self::CAP {
            self.dropped = true;
            &chunk[chunk.len() - Self::CAP..]
        } else {
            chunk
        };
        let overflow = (self.bytes.len() + chunk.len()).saturating_sub(Self::CAP);
        if overflow > 0 {
            self.dropped = true;
            self.bytes.drain(..overflow);
        }
        self.bytes.extend(chunk);
    }

    fn finish(self) -> String {
        let (a, b) = self.bytes.as_slices();
        let text = String::from_utf8_lossy(&[a, b].concat()).into_owned();
        let count = text.chars().count();
        if !self.dropped && count <= TAIL_CHARS {
            return text;
        }
        let start = text
            .char_indices()
            .nth(count.saturating_sub(TAIL_CHARS))
            .map_or(text.len(), |(i, _)| i);
        format!("...{}", &text[start..])
    }
}

/// The last `n` characters of `s`, prefixed with `...` when anything was cut.
pub(crate) fn tail_of(s: &str, n: usize) -> String {
    let count = s.chars().count();
    if count <= n {
        return s.to_string();
    }
    let start = s.char_indices().nth(count - n).map_or(0, |(i, _)| i);
    format!("...{}", &s[start..])
}

/// The last [`TAIL_CHARS`] characters of a log file (empty when unreadable), for messages.
pub(crate) fn tail_of_file(path: &Path) -> String {
    tail_of(
        &std::fs::read_to_string(path).unwrap_or_default(),
        TAIL_CHARS,
    )
}

fn rfc3339(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_keep_the_last_characters() {
        assert_eq!(tail_of("abc", 5), "abc");
        assert_eq!(tail_of("abcdef", 3), "...def");
        assert_eq!(tail_of("ééééé", 2), "...éé");

        let mut t = TailBuffer::default();
        t.push(b"short");
        assert_eq!(t.finish(), "short");

        let mut t = TailBuffer::default();
        let long: String = (0..10_000)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        for chunk in long.as_bytes().chunks(333) {
            t.push(chunk);
        }
        let tail = t.finish();
        assert_eq!(tail, format!("...{}", &long[long.len() - TAIL_CHARS..]));

        // Multi-byte characters cut mid-way at the window's start still leave whole
        // characters at the end.
        let mut t = TailBuffer::default();
        let wide = "日".repeat(6000);
        t.push(wide.as_bytes());
        let tail = t.finish();
        assert_eq!(tail, format!("...{}", "日".repeat(TAIL_CHARS)));
    }

    #[test]
    fn group_kills_never_reach_our_own_group_or_init() {
        // Signal 0 only checks: without the guard, group 0 (our own) would answer true.
        assert!(!kill_group(0, 0));
        assert!(!kill_group(1, 0));
        assert!(!kill_group(u32::MAX, 0));
        // A worker whose child had no pid arms a guard on nothing; its drop kills nothing.
        drop(GroupGuard(None));
        drop(GroupGuard(Some(0)));
    }

    #[test]
    fn file_tails_are_the_last_characters_or_empty() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("worker.stderr.log");
        assert_eq!(tail_of_file(&log), "");
        std::fs::write(&log, "x".repeat(TAIL_CHARS + 3) + "end").unwrap();
        let tail = tail_of_file(&log);
        assert!(tail.starts_with("...") && tail.ends_with("end"));
        assert_eq!(tail.chars().count(), TAIL_CHARS + 3);
    }
}
