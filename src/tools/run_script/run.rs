//! Executing a gated request: the upstream run, then the evidence built from the
//! files it left (never from what the child printed), then the pack on disk.

use std::sync::Arc;
use std::time::Duration;

use super::gates::Gated;
use crate::call::{CallContext, Progress};
use crate::config::Config;
use crate::evidence::builder::model_sha256;
use crate::evidence::{write_evidence, Evidence, InputHashes, RunIds, UpstreamRun, WorkerInfo};
use crate::manifest::Manifest;
use crate::tools::workers::{Warm, Workers};
use crate::upstream::{self, UpstreamRequest};

/// The phases of a run, in order, as progress reports name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Validating,
    StartingUpstream,
    Inference,
    Writing,
    Inspecting,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
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
pub struct StartFailure(pub String);

/// Run the upstream for `gated` and write the evidence pack. Returns the evidence
/// whatever the outcome (succeeded, failed, timed out, cancelled). With `workers`, the
/// run goes through a warm worker when it can be run there identically; otherwise the
/// documented command runs in its own process.
pub async fn execute(
    gated: Gated,
    config: &Config,
    manifest: &Manifest,
    ctx: &CallContext,
    workers: Option<&Workers>,
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
    let ran = run_upstream(&upstream_request, config, ctx, workers, request).await?;

    report(ctx, Phase::Writing, None);
    report(ctx, Phase::Inspecting, None);
    let (model, input) = hashing.await.unwrap_or((None, None));
    let overrides = overrides_of(&gated.request);
    let upstream_run = UpstreamRun {
        result: &ran.result,
        probe: &ran.probe,
        python: &python,
        worker: ran.worker,
        fallback_reason: ran.fallback_reason,
        environment_lock: locking.await.ok().flatten(),
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

/// How the upstream ran.
struct Ran {
    result: upstream::RunResult,
    probe: upstream::EnvProbe,
    worker: Option<WorkerInfo>,
    fallback_reason: Option<String>,
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
            } => {
                return Ok(Ran {
                    result: *result,
                    probe: *probe,
                    worker: Some(worker),
                    fallback_reason: None,
                })
            }
            Warm::Refused(message) => return Err(StartFailure(message)),
            Warm::Fallback(reason) => Some(reason),
        },
        None => None,
    };
    let (result, probe) = one_shot(req, config, ctx, timeout).await?;
    Ok(Ran {
        result,
        probe,
        worker: None,
        fallback_reason,
    })
}

/// The documented command in its own process, after a probe of its environment.
async fn one_shot(
    req: &UpstreamRequest,
    config: &Config,
    ctx: &CallContext,
    timeout: Duration,
) -> Result<(upstream::RunResult, upstream::EnvProbe), StartFailure> {
    let mut options = upstream::RunOptions::new(req.output_dir.join("logs"), timeout);
    options.base_env = config.child_env.clone();
    options.require_sandbox = config.require_sandbox;
    options.on_spawn = Some(ctx.children.clone());
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
    let probe = upstream::probe_for_request(req, &options, Duration::from_secs(120))
        .await
        .map_err(|e| StartFailure(e.to_string()))?;
    let result = upstream::run(req, &probe, &options)
        .await
        .map_err(|e| StartFailure(e.to_string()))?;
    Ok((result, probe))
}

/// The interpreter a run uses ($CTMR_SKILL_PYTHON, the project venv, PATH).
pub fn find_python(config: &Config) -> Result<upstream::PythonChoice, StartFailure> {
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
pub fn declared_entry_point(argv: &[String], manifest: &Manifest) -> Result<(), StartFailure> {
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
pub fn overrides_of(request: &super::request::RunRequest) -> Vec<(String, String)> {
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
