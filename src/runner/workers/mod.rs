//! The warm workers of `serve`: one [`Worker`] per interpreter, bundle root and device,
//! started on first use, stopped after [`crate::config::Config::worker_idle`] without
//! requests (freeing the GPU memory the model holds), replaced after a crash.
//!
//! A request runs through a worker only when the worker can run it exactly as the
//! documented command would ([`Warm::Fallback`] otherwise, and the caller runs that
//! command): the worker writes into its private scratch folder and the mask and logs
//! are moved into the pack here, so a pack looks the same whichever way it was made.

pub mod listing;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::call::{CallContext, Progress};
use crate::config::Config;
use crate::evidence::WorkerInfo;
use crate::upstream::gpu::{GpuCost, GpuSampler};
use crate::upstream::worker::{WarmReply, Worker, WorkerLost, WorkerSpec};
use crate::upstream::{
    self, adopt_mask, build_argv, DeviceRequest, EnvProbe, RunOutcome, RunResult, UpstreamRequest,
};

/// Which worker serves a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    python: PathBuf,
    root: PathBuf,
    device: DeviceRequest,
}

#[derive(Default)]
struct Slot {
    worker: Option<Worker>,
    /// Its file under `workers/`, for `doctor`; dropped (removed) with the worker.
    listing: Option<listing::Entry>,
    /// Bumped by every request; an idle stop only acts when nothing came since.
    generation: u64,
}

/// What a warm request came to.
pub enum Warm {
    /// The worker ran it: the result as a one-shot run would have recorded it.
    Served {
        result: Box<RunResult>,
        probe: Box<EnvProbe>,
        worker: WorkerInfo,
        measured: Box<Measured>,
    },
    /// The worker cannot run it identically (or could not start): nothing ran; run
    /// the documented command instead, and say why.
    Fallback(String),
    /// The request cannot run at all (the device is not there): the message says why.
    Refused(String),
}

/// What a served request cost the worker, and whether this call started it.
#[derive(Debug, Clone)]
pub struct Measured {
    pub cpu_seconds: Option<f64>,
    /// GPU figures of the worker's process group during the request.
    pub gpu: GpuCost,
    pub peak_rss_kib: Option<u64>,
    /// Seconds spent starting the worker, when this call started it.
    pub worker_start_seconds: Option<f64>,
}

/// The pool.
pub struct Workers {
    idle: Duration,
    require_sandbox: bool,
    base_env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    listing_dir: PathBuf,
    slots: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<Slot>>>>,
}

impl Workers {
    /// The pool when the config asks for warm workers (`serve` without `--no-warm`).
    pub fn for_config(config: &Config) -> Option<Arc<Self>> {
        config.warm_workers.then(|| Arc::new(Self::new(config)))
    }

    pub fn new(config: &Config) -> Self {
        Workers {
            idle: config.worker_idle,
            require_sandbox: config.require_sandbox,
            base_env: config.child_env.clone(),
            listing_dir: listing::dir_for(&config.runs_dir),
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn slot(&self, key: &Key) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entry(key.clone()).or_default().clone()
    }

    /// Run `req` (the documented request, with the real output directory) through the
    /// warm worker for its interpreter, bundle and device.
    pub async fn run(&self, req: &UpstreamRequest, ctx: &CallContext, timeout: Duration) -> Warm {
        let key = Key {
            python: req.python.clone(),
            root: req.bundle_root.clone(),
            device: req.device,
        };
        let slot = self.slot(&key);
        let mut guard = slot.lock().await;
        guard.generation += 1;
        let started = match self.ensure_started(&mut guard, &key, ctx).await {
            Ok(started) => started,
            Err(e) => return Warm::Fallback(format!("the warm worker could not start: {e}")),
        };
        let worker = guard.worker.as_mut().expect("started above");
        let outcome = serve(worker, req, ctx, timeout, started).await;
        match &outcome {
            Served::Lost(..) => {
                // Its process group is killed; the next request starts anew.
                guard.worker = None;
                guard.listing = None;
            }
            Served::Ran(_, _, info, _) => {
                if let Some(listing) = guard.listing.as_mut() {
                    listing.served(info.requests_served);
                }
            }
            Served::Fallback(_) | Served::Refused(_) => {}
        }
        let generation = guard.generation;
        drop(guard);
        self.stop_when_idle(slot, generation);
        outcome.into_warm()
    }

    /// Start the slot's worker unless it runs; the seconds it took when this call
    /// started it.
    async fn ensure_started(
        &self,
        slot: &mut Slot,
        key: &Key,
        ctx: &CallContext,
    ) -> Result<Option<f64>, upstream::UpstreamError> {
        if slot.worker.is_some() {
            return Ok(None);
        }
        report(
            ctx,
            "starting a warm worker (Python, torch, MONAI, then the model on the first request)",
        );
        let worker = Worker::start(&self.spec(key)).await?;
        slot.listing = Some(listing::Entry::create(
            &self.listing_dir,
            listing::Listed {
                id: worker.id.clone(),
                pid: worker.pid,
                server_pid: std::process::id(),
                python: key.python.clone(),
                bundle_root: key.root.clone(),
                device: key.device.as_str().to_string(),
                started_at: worker.started_at.clone(),
                start_seconds: worker.start_seconds,
                requests_served: 0,
                last_request_at: None,
                idle_stop_seconds: self.idle.as_secs(),
            },
        ));
        let seconds = worker.start_seconds;
        slot.worker = Some(worker);
        Ok(Some(seconds))
    }

    /// Start the worker for this interpreter, bundle and device now (`serve --warm`),
    /// so the first call does not wait for Python, torch and MONAI to import. It stops
    /// after the idle time like any other.
    pub async fn prestart(
        &self,
        python: PathBuf,
        root: PathBuf,
        device: DeviceRequest,
    ) -> Result<f64, upstream::UpstreamError> {
        let key = Key {
            python,
            root,
            device,
        };
        let slot = self.slot(&key);
        let mut guard = slot.lock().await;
        guard.generation += 1;
        let started = self
            .ensure_started(&mut guard, &key, &CallContext::detached())
            .await?;
        let generation = guard.generation;
        drop(guard);
        self.stop_when_idle(slot, generation);
        Ok(started.unwrap_or_default())
    }

    fn spec(&self, key: &Key) -> WorkerSpec {
        WorkerSpec {
            python: key.python.clone(),
            bundle_root: key.root.clone(),
            device: key.device,
            base_env: self.base_env.clone(),
            require_sandbox: self.require_sandbox,
        }
    }

    /// Stop the worker after the idle time unless another request came meanwhile.
    fn stop_when_idle(&self, slot: Arc<tokio::sync::Mutex<Slot>>, generation: u64) {
        let idle = self.idle;
        tokio::spawn(async move {
            tokio::time::sleep(idle).await;
            let mut guard = slot.lock().await;
            if guard.generation == generation && guard.worker.take().is_some() {
                guard.listing = None;
                tracing::info!("warm worker stopped after {} s idle", idle.as_secs());
            }
        });
    }
}

fn report(ctx: &CallContext, message: &str) {
    (ctx.progress)(Progress {
        progress: 5.0,
        total: Some(100.0),
        message: Some(message.to_string()),
        item: None,
    });
}

/// One request's end, before it is shaped for the caller.
enum Served {
    Ran(Box<RunResult>, Box<EnvProbe>, WorkerInfo, Box<Measured>),
    Fallback(String),
    Refused(String),
    /// The worker is gone; the result records how the run ended.
    Lost(Box<RunResult>, Box<EnvProbe>, WorkerInfo, Box<Measured>),
}

impl Served {
    fn into_warm(self) -> Warm {
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
async fn serve(
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
