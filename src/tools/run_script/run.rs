//! Executing a gated request: the upstream run, then the evidence built from the
//! files it left (never from what the child printed), then the pack on disk.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::gates::Gated;
use crate::call::{CallContext, Progress};
use crate::config::Config;
use crate::evidence::builder::model_sha256;
use crate::evidence::{
    write_evidence, Evidence, GpuCost, InputHashes, RunCost, RunIds, UpstreamRun, WorkerInfo,
};
use crate::manifest::Manifest;
use crate::runner::workers::{Warm, Workers};
use crate::upstream::gpu::GpuSampler;
use crate::upstream::{self, UpstreamRequest};

/// The phases of a run, in order, as progress reports name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Validating,
    StartingUpstream,
    Inference,
    Writing,
    Inspecting,
}

impl Phase {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Phase::Validating => "validating",
            Phase::StartingUpstream => "starting upstream",
            Phase::Inference => "inference",
            Phase::Writing => "writing",
            Phase::Inspecting => "inspecting",
        }
    }

    /// Where the phase starts, as a fraction of a run (inference takes most of it).
    fn fraction(self) -> f64 {
        match self {
            Phase::Validating => 0.0,
            Phase::StartingUpstream => 0.05,
            Phase::Inference => 0.1,
            Phase::Writing => 0.85,
            Phase::Inspecting => 0.9,
        }
    }
}

fn report(ctx: &CallContext, phase: Phase, detail: Option<String>) {
    let message = match detail {
        Some(d) => format!("{}: {d}", phase.as_str()),
        None => phase.as_str().to_string(),
    };
    (ctx.progress)(Progress {
        progress: phase.fraction() * 100.0,
        total: Some(100.0),
        message: Some(message),
        item: None,
    });
}

/// A run that could not start for a reason found after the gates (no Python, no CUDA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StartFailure(pub String);

/// Run the upstream for `gated` and write the evidence pack. Returns the evidence
/// whatever the outcome (succeeded, failed, timed out, cancelled). With `workers`, the
/// run goes through a warm worker when it can be run there identically; otherwise the
/// documented command runs in its own process.
pub(crate) async fn execute(
    gated: Gated,
    config: &Config,
    manifest: &Manifest,
    ctx: &CallContext,
    workers: Option<&Workers>,
    timing: Timing,
) -> Result<Evidence, StartFailure> {
    let request = &gated.request;
    let run_id = crate::jobs::new_run_id();
    let created_at = chrono::Utc::now().to_rfc3339();
    report(ctx, Phase::StartingUpstream, None);

    let python = find_python(config)?;
    let upstream_request = upstream_request(&gated, &python);
    if let Ok(argv) = upstream::build_argv(&upstream_request) {
        declared_entry_point(&argv, manifest)?;
    }
    // Hash the inputs while the upstream runs: the real model file is ~900 MB, and a
    // client that disconnects right after the run must still get a complete pack.
    let (model_path, input_path) = (gated.inventory.model_pt_path.clone(), request.input.clone());
    let hashing = tokio::task::spawn_blocking(move || {
        (
            model_sha256(&model_path),
            upstream::sha256_file(&input_path).ok(),
        )
    });
    let interpreter = python.path.clone();
    let locking = tokio::task::spawn_blocking(move || {
        crate::evidence::replay::environment_lock(&interpreter)
    });
    let mut ran = run_upstream(&upstream_request, config, ctx, workers, request).await?;

    report(ctx, Phase::Writing, None);
    report(ctx, Phase::Inspecting, None);
    let waited = std::time::Instant::now();
    let (model, input) = hashing.await.unwrap_or((None, None));
    ran.phases.insert("gates".into(), round3(timing.gates));
    ran.phases
        .insert("queue_wait".into(), round3(timing.queue_wait));
    ran.phases.insert(
        "hashing_wait".into(),
        round3(waited.elapsed().as_secs_f64()),
    );
    ran.cost.wall_seconds = round3(timing.call_start.elapsed().as_secs_f64());
    let overrides = overrides_of(&gated.request);
    let upstream_run = UpstreamRun {
        result: &ran.result,
        probe: &ran.probe,
        python: &python,
        worker: ran.worker,
        fallback_reason: ran.fallback_reason,
        environment_lock: locking.await.ok().flatten(),
        phases: ran.phases,
        cost: Some(ran.cost),
    };
    write_evidence(
        &gated.facts(&overrides),
        &upstream_run,
        &RunIds { run_id, created_at },
        InputHashes { model, input },
        &manifest.skill(),
    )
    .map_err(StartFailure)
}

fn upstream_request(gated: &Gated, python: &upstream::PythonChoice) -> UpstreamRequest {
    let request = &gated.request;
    UpstreamRequest {
        python: python.path.clone(),
        bundle_root: gated.root.clone(),
        input: request.input.clone(),
        output_dir: request.output_dir.clone(),
        modality: request.settings.modality.as_str().to_string(),
        label_prompts: gated.prompts.clone().filter(|p| !p.is_empty()),
        overrides: overrides_of(request),
        device: request.settings.device,
        tensorrt: request.settings.tensorrt,
    }
}

/// When the call began, and the seconds of its first phases (the gates, the wait for
/// a run slot), measured by the caller.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub call_start: std::time::Instant,
    pub gates: f64,
    pub queue_wait: f64,
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// How the upstream ran, and what it cost.
struct Ran {
    result: upstream::RunResult,
    probe: upstream::EnvProbe,
    worker: Option<WorkerInfo>,
    fallback_reason: Option<String>,
    phases: BTreeMap<String, f64>,
    cost: RunCost,
}

fn cost(
    cpu_seconds: Option<f64>,
    peak_rss_kib: Option<u64>,
    measured_on: &str,
    gpu: GpuCost,
) -> RunCost {
    RunCost {
        wall_seconds: 0.0,
        cpu_seconds: cpu_seconds.map(round3),
        peak_rss_mib: peak_rss_kib.map(|k| round3(k as f64 / 1024.0)),
        measured_on: measured_on.into(),
        gpu,
    }
}

/// Through a warm worker when there is one and it can serve the request identically
/// (TensorRT builds its own engine per config list, so it always runs one-shot); the
/// documented command in its own process otherwise.
async fn run_upstream(
    req: &UpstreamRequest,
    config: &Config,
    ctx: &CallContext,
    workers: Option<&Workers>,
    request: &super::request::RunRequest,
) -> Result<Ran, StartFailure> {
    let timeout = request.settings.timeout;
    let fallback_reason = match workers {
        Some(_) if req.tensorrt => Some(
            "tensorrt runs the documented command (its engine is built per config list)"
                .to_string(),
        ),
        Some(workers) => match workers.run(req, ctx, timeout).await {
            Warm::Served {
                result,
                probe,
                worker,
                measured,
            } => {
                let mut phases = BTreeMap::new();
                if let Some(start) = measured.worker_start_seconds {
                    phases.insert("worker_start".into(), round3(start));
                }
                let load = worker
                    .model_load_seconds
                    .filter(|_| worker.requests_served == 1);
                if let Some(load) = load {
                    phases.insert("model_load".into(), round3(load));
                }
                phases.insert("upstream".into(), round3(result.seconds));
                return Ok(Ran {
                    result: *result,
                    probe: *probe,
                    worker: Some(worker),
                    fallback_reason: None,
                    phases,
                    cost: cost(
                        measured.cpu_seconds,
                        measured.peak_rss_kib,
                        "the warm worker process during this request (peak memory: since it started)",
                        measured.gpu,
                    ),
                });
            }
            Warm::Refused(message) => return Err(StartFailure(message)),
            Warm::Fallback(reason) => Some(reason),
        },
        None => None,
    };
    let (result, probe, phases, cost) = one_shot(req, config, ctx, timeout).await?;
    Ok(Ran {
        result,
        probe,
        worker: None,
        fallback_reason,
        phases,
        cost,
    })
}

/// The documented command in its own process, after a probe of its environment.
async fn one_shot(
    req: &UpstreamRequest,
    config: &Config,
    ctx: &CallContext,
    timeout: Duration,
) -> Result<
    (
        upstream::RunResult,
        upstream::EnvProbe,
        BTreeMap<String, f64>,
        RunCost,
    ),
    StartFailure,
> {
    let mut options = upstream::RunOptions::new(req.output_dir.join("logs"), timeout);
    options.base_env = config.child_env.clone();
    options.require_sandbox = config.require_sandbox;
    // The child leads its own process group: the GPU sampler attributes by that group.
    let group = Arc::new(AtomicU32::new(0));
    let (children, spawned) = (ctx.children.clone(), group.clone());
    options.on_spawn = Some(Arc::new(move |pid| {
        spawned.store(pid, Ordering::Relaxed);
        children(pid);
    }));
    options.cancel = ctx.cancel.clone();
    let hook_ctx = ctx.clone();
    let started = std::time::Instant::now();
    options.progress = Some(Arc::new(move |event| {
        let detail = match event {
            upstream::ProgressEvent::Line { line, .. } => line.chars().take(160).collect(),
            upstream::ProgressEvent::Tick { .. } => {
                format!("{:.0} s elapsed", started.elapsed().as_secs_f64())
            }
        };
        report(&hook_ctx, Phase::Inference, Some(detail));
    }));
    // The probe runs under exactly the environment the run will get, so the device it
    // reports is the device the run uses.
    let probing = std::time::Instant::now();
    let probe = cached_probe(req, &options, config).await?;
    let mut phases =
        BTreeMap::from([("probe".to_string(), round3(probing.elapsed().as_secs_f64()))]);
    let before = upstream::usage::children_usage();
    let sampler = GpuSampler::start(group);
    let result = upstream::run(req, &probe, &options).await;
    let gpu = sampler.finish();
    let result = result.map_err(|e| StartFailure(e.to_string()))?;
    let after = upstream::usage::children_usage();
    phases.insert("upstream".into(), round3(result.seconds));
    let cost = cost(
        Some(after.0 - before.0),
        Some(after.1),
        "the upstream process tree, as children this server reaped during the run (peak memory: the largest child so far)",
        gpu,
    );
    Ok((result, probe, phases, cost))
}

/// The environment probe of the run's interpreter, bundle and device, cached
/// ([`crate::runner::probe_cache`]).
async fn cached_probe(
    req: &UpstreamRequest,
    options: &upstream::RunOptions,
    config: &Config,
) -> Result<upstream::EnvProbe, StartFailure> {
    crate::runner::probe_cache::cached(
        config,
        &req.python,
        &req.bundle_root,
        req.device,
        || async {
            upstream::probe_for_request(req, options, Duration::from_secs(120))
                .await
                .map_err(|e| e.to_string())
        },
    )
    .await
    .map_err(StartFailure)
}

/// The interpreter a run uses ($CTMR_SKILL_PYTHON, the project venv, PATH).
pub(crate) fn find_python(config: &Config) -> Result<upstream::PythonChoice, StartFailure> {
    upstream::find_python(
        config.python.as_deref(),
        config.python_env.as_deref().map(std::path::Path::as_os_str),
        &config.cwd,
        config.exe.as_deref(),
        config.path_var.as_deref(),
    )
    .map_err(|e| StartFailure(e.to_string()))
}

/// Refuse a command that would leave the manifest's declared entry point (a defect of
/// ctmr-skill or of an edited manifest, never of the caller's request).
pub(crate) fn declared_entry_point(
    argv: &[String],
    manifest: &Manifest,
) -> Result<(), StartFailure> {
    super::knobs::check_declared_entry_point(argv, &manifest.runtime).map_err(|why| {
        StartFailure(format!(
            "refused before running anything: the command would not be the manifest's declared \
             entry point (`{} --config_file {}`): {why}. This is a ctmr-skill defect; the command \
             was {argv:?}",
            manifest.runtime.official_entrypoint, manifest.runtime.config_file
        ))
    })
}

/// The documented memory/speed overrides passed to the bundle as `--key value`
/// (`tensorrt` is not one: it adds a config file, see [`upstream::config_files`]).
pub(crate) fn overrides_of(request: &super::request::RunRequest) -> Vec<(String, String)> {
    let mut overrides = Vec::new();
    if let Some(patch) = &request.settings.patch_size {
        overrides.push((
            "patch_size".to_string(),
            format!("{patch:?}").replace(' ', ""),
        ));
    }
    if let Some(n) = request.settings.sw_batch_size {
        overrides.push(("sw_batch_size".to_string(), n.to_string()));
    }
    if request.settings.cpu_postprocessing {
        let (key, value) = upstream::CPU_POSTPROCESSING_OVERRIDE;
        overrides.push((key.to_string(), value.to_string()));
    }
    overrides
}
