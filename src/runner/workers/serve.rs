//! One request through a running worker: the documented command's arguments pointed
//! at the worker's scratch folder, the reply, and the mask and logs moved into the pack
//! so the run is recorded exactly as the documented command's would be.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::{Measured, Warm};
use crate::call::CallContext;
use crate::evidence::WorkerInfo;
use crate::upstream::gpu::GpuSampler;
use crate::upstream::worker::{WarmReply, Worker, WorkerLost};
use crate::upstream::{
    self, adopt_mask, build_argv, EnvProbe, RunOutcome, RunResult, UpstreamRequest,
};

/// One request's end, before it is shaped for the caller.
pub(super) enum Served {
    Ran(Box<RunResult>, Box<EnvProbe>, WorkerInfo, Box<Measured>),
    Fallback(String),
    Refused(String),
    /// The worker is gone; the result records how the run ended.
    Lost(Box<RunResult>, Box<EnvProbe>, WorkerInfo, Box<Measured>),
}

impl Served {
    pub(super) fn into_warm(self) -> Warm {
        match self {
            Served::Ran(result, probe, worker, measured)
            | Served::Lost(result, probe, worker, measured) => Warm::Served {
                result,
                probe,
                worker,
                measured,
            },
            Served::Fallback(reason) => Warm::Fallback(reason),
            Served::Refused(message) => Warm::Refused(message),
        }
    }
}

/// Send one request to `worker` and turn its reply into a [`RunResult`].
pub(super) async fn serve(
    worker: &mut Worker,
    req: &UpstreamRequest,
    ctx: &CallContext,
    timeout: Duration,
    started_worker: Option<f64>,
) -> Served {
    if let Err(e) = upstream::check_device(req.device, &worker.probe)
        .and_then(|()| upstream::check_tensorrt(req.tensorrt, &worker.probe))
    {
        return Served::Refused(e.to_string());
    }
    let prepared = match prepare(worker, req) {
        Ok(p) => p,
        Err(e) => return Served::Refused(e),
    };
    (ctx.children)(worker.pid);
    let started = SystemTime::now();
    let started_at = chrono::Utc::now().to_rfc3339();
    let t0 = Instant::now();
    let cpu_before = upstream::usage::process_cpu_seconds(worker.pid);
    let sampler = GpuSampler::start(Arc::new(AtomicU32::new(worker.pid)));
    let reply = worker
        .request(&prepared.arguments, &prepared.logs, &ctx.cancel, timeout)
        .await;
    let measured = Box::new(Measured {
        gpu: sampler.finish(),
        cpu_seconds: cpu_before
            .zip(upstream::usage::process_cpu_seconds(worker.pid))
            .map(|(a, b)| b - a),
        peak_rss_kib: upstream::usage::process_peak_rss_kib(worker.pid),
        worker_start_seconds: started_worker,
    });
    if let Ok(WarmReply {
        fallback: Some(reason),
        ..
    }) = &reply
    {
        let _ = std::fs::remove_dir_all(&prepared.scratch);
        return Served::Fallback(reason.clone());
    }
    let outcome = match &reply {
        Ok(r) => RunOutcome::Exited {
            code: r.exit_code.unwrap_or(1),
            signal: None,
        },
        Err(WorkerLost::Cancelled) => RunOutcome::Cancelled,
        Err(WorkerLost::TimedOut) => RunOutcome::TimedOut,
        Err(WorkerLost::Died(why)) => RunOutcome::SpawnFailed {
            reason: why.clone(),
        },
    };
    let mut result = prepared.finish(req, worker, outcome, started, started_at, t0);
    let info = WorkerInfo {
        id: worker.id.clone(),
        pid: worker.pid,
        started_at: worker.started_at.clone(),
        requests_served: reply.as_ref().map(|r| r.served).unwrap_or_default(),
        model_load_seconds: reply.as_ref().ok().and_then(|r| r.load_seconds),
        start_seconds: worker.start_seconds,
    };
    result.seconds = reply.as_ref().map(|r| r.seconds).unwrap_or(result.seconds);
    let probe = Box::new(worker.probe.clone());
    match reply {
        Ok(_) => Served::Ran(Box::new(result), probe, info, measured),
        Err(_) => Served::Lost(Box::new(result), probe, info, measured),
    }
}

/// A request ready to send: its arguments (output into the worker's scratch), where
/// its logs go, and what the documented command would have left where.
struct Prepared {
    arguments: Vec<String>,
    documented: Vec<String>,
    scratch: PathBuf,
    logs: PathBuf,
    mask_path: PathBuf,
    scratch_mask: PathBuf,
    stale: Option<upstream::StaleOutput>,
}

fn prepare(worker: &mut Worker, req: &UpstreamRequest) -> Result<Prepared, String> {
    let documented = build_argv(req).map_err(|e| e.to_string())?;
    let mask_path = upstream::check_output_location(&req.input, &req.output_dir, &req.bundle_root)
        .map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&req.output_dir)
        .map_err(|e| format!("cannot create {}: {e}", req.output_dir.display()))?;
    let stale =
        upstream::move_aside_stale(&mask_path, chrono::Utc::now()).map_err(|e| e.to_string())?;
    let scratch = worker
        .scratch()
        .map_err(|e| format!("cannot create the worker's scratch folder: {e}"))?;
    let mut inside = req.clone();
    inside.output_dir = scratch.clone();
    let argv = build_argv(&inside).map_err(|e| e.to_string())?;
    let run_at = argv
        .iter()
        .position(|a| a == "run")
        .ok_or("the documented command has no `run`")?;
    Ok(Prepared {
        arguments: argv[run_at + 1..].to_vec(),
        documented,
        logs: scratch.join("logs"),
        scratch_mask: upstream::expected_mask_path(&scratch, &req.input),
        scratch,
        mask_path,
        stale,
    })
}

impl Prepared {
    /// Move the mask and logs into the pack and record the run as the documented
    /// command's result.
    fn finish(
        self,
        req: &UpstreamRequest,
        worker: &Worker,
        outcome: RunOutcome,
        started: SystemTime,
        started_at: String,
        t0: Instant,
    ) -> RunResult {
        if self.scratch_mask.is_file() {
            if let Err(e) = move_file(&self.scratch_mask, &self.mask_path) {
                tracing::warn!("cannot move the warm worker's mask into the pack: {e}");
            }
        }
        let logs = req.output_dir.join("logs");
        let _ = std::fs::create_dir_all(&logs);
        let mut paths = Vec::new();
        for name in ["upstream.stdout.log", "upstream.stderr.log"] {
            let to = logs.join(name);
            if std::fs::copy(self.logs.join(name), &to).is_err() {
                let _ = std::fs::write(&to, b"");
            }
            paths.push(to);
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
        let exit_code = match &outcome {
            RunOutcome::Exited { code, .. } => Some(*code),
            RunOutcome::TimedOut => Some(124),
            _ => None,
        };
        RunResult {
            command: self.documented,
            launch_argv: worker.argv.clone(),
            cwd: req.bundle_root.clone(),
            env_set: worker.env_set.clone(),
            env_removed: worker.env_removed.clone(),
            outcome,
            exit_code,
            seconds: t0.elapsed().as_secs_f64(),
            started_at,
            finished_at: chrono::Utc::now().to_rfc3339(),
            started,
            stdout_tail: upstream::tail_of_file(&paths[0]),
            stderr_tail: upstream::tail_of_file(&paths[1]),
            stdout_log: paths[0].clone(),
            stderr_log: paths[1].clone(),
            log_write_error: None,
            stale_output: self.stale,
            mask: Some(adopt_mask(&self.mask_path, started)),
            device_requested: Some(req.device),
            device: Some(worker.probe.device.clone()),
            batch_process_exit_code: None,
            sandbox: worker.sandbox.clone(),
        }
    }
}

/// Rename, or copy and remove across file systems.
fn move_file(from: &Path, to: &Path) -> std::io::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::rename(from, to).or_else(|_| {
        std::fs::copy(from, to)?;
        std::fs::remove_file(from)
    })
}
