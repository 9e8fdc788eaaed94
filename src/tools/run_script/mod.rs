//! `run_script`: run the upstream bundle on one volume and return its evidence.
//!
//! Flow: [`request`] normalises either call form into one validated request;
//! [`gates`] evaluates every gate before anything runs (the bundle-dependent knobs
//! through [`knobs`]); a run slot is taken (queued
//! calls report their position as progress); [`run`] supervises the upstream and
//! writes the evidence pack. [`tool`] makes it a registry [`Tool`] with a typed output.

pub(crate) mod argv;
mod dicom_input;
pub mod gates;
pub(crate) mod knobs;
pub(crate) mod request;
pub(crate) mod run;
pub(crate) mod summary;
mod tool;

use std::sync::Arc;

pub(crate) use self::tool::refusal_document;
pub use self::tool::RunOutput;

use serde_json::{json, Map, Value};

use crate::call::{CallContext, Progress};
use crate::config::Config;
use crate::evidence::{Evidence, RunStatus};
use crate::manifest::{Manifest, ToolDecl};
use crate::runner::slots::{queued_message, DevicePool, RunSlots};
use crate::runner::workers::Workers;
use crate::tools::registry::Tool;
use crate::verifier::trust::TrustSummary;

/// The tool, with its run slots (the concurrency limit on upstream runs).
pub struct RunScript {
    config: Arc<Config>,
    manifest: Arc<Manifest>,
    slots: Arc<RunSlots>,
    /// The warm workers, when the config asks for them (`serve`).
    workers: Option<Arc<Workers>>,
}

/// What a call ended as, before it is shaped for MCP or the CLI.
#[derive(Debug)]
pub enum RunCall {
    /// The arguments or a gate refused; nothing ran.
    Refused { message: String, document: Value },
    /// The run could not start after the gates (e.g. no Python runtime).
    NotStarted { message: String },
    /// The upstream ran (or was cancelled / timed out): the evidence is on disk.
    Ran(Box<Evidence>),
    /// `verify: true` and the run succeeded: the evidence, and the paired verifier's
    /// trust summary (also written into the pack as `trust_summary.json`).
    Verified(Box<Evidence>, Box<TrustSummary>),
}

impl RunScript {
    pub fn new(config: Arc<Config>, manifest: Arc<Manifest>) -> Self {
        let workers = Workers::for_config(&config);
        Self::with_workers(config, manifest, workers)
    }

    /// With the server's warm workers (shared with `serve --warm`'s start-up).
    pub(crate) fn with_workers(
        config: Arc<Config>,
        manifest: Arc<Manifest>,
        workers: Option<Arc<Workers>>,
    ) -> Self {
        let slots = Arc::new(RunSlots::new(config.max_concurrent_runs));
        RunScript {
            config,
            manifest,
            slots,
            workers,
        }
    }

    /// The run slots, shared with `run_batch` so the concurrency limit covers both.
    pub fn slots(&self) -> Arc<RunSlots> {
        self.slots.clone()
    }

    /// Tool arguments in either form → a finished call, in the shape the CLI and
    /// tests read (the registry takes the same steps and answers with an outcome).
    pub async fn call_tool(&self, args: Map<String, Value>, ctx: CallContext) -> RunCall {
        match crate::tools::registry::parse(self, self.decl(), &args) {
            Ok(parsed) => self.run(parsed.request, ctx).await,
            Err(e) => RunCall::Refused {
                message: format!("{} refused before running anything: {e}", Self::NAME),
                document: refusal_document(&e),
            },
        }
    }

    /// A parsed request (from the tool or `ctmr-skill run`) → a finished call.
    pub async fn run(&self, request: request::RunRequest, ctx: CallContext) -> RunCall {
        let verify = request.settings.verify;
        (ctx.progress)(Progress {
            progress: 0.0,
            total: Some(100.0),
            message: Some(run::Phase::Validating.as_str().into()),
            item: None,
        });
        let call_start = std::time::Instant::now();
        // Off the async workers: the gates read headers and may convert a DICOM series.
        let (config, manifest) = (self.config.clone(), self.manifest.clone());
        let evaluated =
            tokio::task::spawn_blocking(move || gates::evaluate(request, &config, &manifest)).await;
        let gated = match evaluated {
            Ok(Ok(g)) => g,
            Err(e) => {
                return RunCall::NotStarted {
                    message: format!("the gates could not run: {e}"),
                }
            }
            Ok(Err(refusal)) => {
                return RunCall::Refused {
                    document: json!({
                        "status": RunStatus::Refused,
                        "message": refusal.message,
                        "gates": refusal.gates,
                        "checked_roots": refusal.resolution.as_ref().map(crate::evidence::builder::checked_roots),
                        "intended_use_disclaimer": crate::evidence::DISCLAIMER,
                    }),
                    message: refusal.message,
                }
            }
        };
        let gates_seconds = call_start.elapsed().as_secs_f64();
        let device = DevicePool::of(gated.request.settings.device);
        let per_device = self.slots.per_device();
        let progress = ctx.progress.clone();
        let queued = |position| {
            progress(Progress {
                progress: 1.0,
                total: Some(100.0),
                message: Some(queued_message(device, position, per_device)),
                item: None,
            })
        };
        let Some(_slot) = self.slots.acquire(device, &ctx.cancel, queued).await else {
            return RunCall::NotStarted {
                message: "cancelled while waiting for a run slot; nothing ran".into(),
            };
        };
        let timing = run::Timing {
            call_start,
            gates: gates_seconds,
            queue_wait: call_start.elapsed().as_secs_f64() - gates_seconds,
        };
        let workers = self.workers.as_deref();
        match run::execute(gated, &self.config, &self.manifest, &ctx, workers, timing).await {
            Ok(evidence) if verify && evidence.status == RunStatus::Succeeded => {
                let trust = verify_pack_of(&evidence, &self.config).await;
                RunCall::Verified(Box::new(evidence), Box::new(trust))
            }
            Ok(evidence) => RunCall::Ran(Box::new(evidence)),
            Err(run::StartFailure(message)) => RunCall::NotStarted { message },
        }
    }
}

/// Run the paired verifier on a succeeded run's pack (off the async threads) and
/// record `trust_summary.json` there.
pub(crate) async fn verify_pack_of(evidence: &Evidence, config: &Config) -> TrustSummary {
    let pack = std::path::PathBuf::from(&evidence.pack_dir);
    let status = evidence.status.as_str().to_string();
    let opts = crate::verifier::VerifyOptions {
        cwd: Some(config.cwd.clone()),
        ..crate::verifier::VerifyOptions::default()
    };
    let on_thread = (pack, status.clone());
    match tokio::task::spawn_blocking(move || {
        crate::verifier::trust::verify_and_record(&on_thread.0, &on_thread.1, &opts)
    })
    .await
    {
        Ok(trust) => trust,
        Err(e) => TrustSummary::not_formed(&status, format!("the verifier stopped: {e}")),
    }
}

impl RunScript {
    fn decl(&self) -> &ToolDecl {
        self.manifest
            .tool(Self::NAME)
            .expect("the registry's start-up check found run_script in the manifest")
    }
}

/// Start the warm worker a call with default settings would use (the operator's default
/// bundle and interpreter, `device: auto`) before any call comes: `serve --warm`.
/// Returns a line for the log.
pub(crate) async fn prewarm(workers: Arc<Workers>, config: Arc<Config>) -> Result<String, String> {
    let python = run::find_python(&config).map_err(|e| e.0)?.path;
    let asked = config.bundle_root_for(None).map_err(|e| e.to_string())?;
    let resolution = crate::upstream::resolve_root(
        asked.as_deref(),
        config.env_root.as_deref().map(std::ffi::OsStr::new),
        &config.cwd,
    );
    let root = resolution
        .require()
        .map_err(|e| e.to_string())?
        .to_path_buf();
    let seconds = workers
        .prestart(python, root.clone(), crate::upstream::DeviceRequest::Auto)
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "warm worker ready for {} after {seconds:.1} s (the model loads on the first call)",
        root.display()
    ))
}
