//! The warm workers of `serve`: one [`Worker`] per interpreter, bundle root and device,
//! started on first use, stopped after [`crate::config::Config::worker_idle`] without
//! requests (freeing the GPU memory the model holds), replaced after a crash.
//!
//! A request runs through a worker only when the worker can run it exactly as the
//! documented command would ([`Warm::Fallback`] otherwise, and the caller runs that
//! command): the worker writes into its private scratch folder and the mask and logs
//! are moved into the pack here, so a pack looks the same whichever way it was made.

pub(crate) mod listing;
mod serve;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::call::{CallContext, Progress};
use crate::config::Config;
use crate::evidence::WorkerInfo;
use crate::upstream::gpu::GpuCost;
use crate::upstream::worker::{Worker, WorkerSpec};
use crate::upstream::{self, DeviceRequest, EnvProbe, RunResult, UpstreamRequest};
use serve::{serve, Served};

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
pub(crate) enum Warm {
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
pub(crate) struct Measured {
    pub cpu_seconds: Option<f64>,
    /// GPU figures of the worker's process group during the request.
    pub gpu: GpuCost,
    pub peak_rss_kib: Option<u64>,
    /// Seconds spent starting the worker, when this call started it.
    pub worker_start_seconds: Option<f64>,
}

/// The pool.
pub(crate) struct Workers {
    idle: Duration,
    require_sandbox: bool,
    base_env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    listing_dir: PathBuf,
    slots: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<Slot>>>>,
}

impl Workers {
    /// The pool when the config asks for warm workers (`serve` without `--no-warm`).
    pub(crate) fn for_config(config: &Config) -> Option<Arc<Self>> {
        config.warm_workers.then(|| Arc::new(Self::new(config)))
    }

    pub(crate) fn new(config: &Config) -> Self {
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
    pub(crate) async fn run(
        &self,
        req: &UpstreamRequest,
        ctx: &CallContext,
        timeout: Duration,
    ) -> Warm {
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
    pub(crate) async fn prestart(
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
