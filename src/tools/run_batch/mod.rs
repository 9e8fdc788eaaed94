//! `run_batch`: a cohort through the upstream's documented batch entry point, one
//! model load per attempt instead of one per volume, and one evidence pack per volume.
//!
//! Flow:
//! 1. [`request`] validates the call; inputs come as a list or a directory.
//! 2. Every input goes through `run_script`'s gates (pack dir `<output_root>/<id>`)
//!    before anything runs. A refusal that is not about the input itself (root,
//!    weights, modality, output location, prompts) refuses the whole batch; a bad
//!    input is reported and left out.
//! 3. Resume: a volume whose earlier pack succeeded for the same input bytes,
//!    modality and prompts, with its mask intact, is reused ([`plan::reusable`]).
//! 4. Attempts: the pending inputs are staged as symlinks `<id>.nii.gz` in a fresh
//!    directory and the batch config runs once over them
//!    (`--input_dir STAGE --input_list [...]`, plus `--input_dicts` when prompts are
//!    given, since the batch config otherwise prompts everything). Both the upstream
//!    and the demo bundle then write `<masks>/<id>/<id>_trans.nii.gz`; each mask is
//!    adopted (written after the attempt started) and moved into its pack. The
//!    upstream processes its list in order, so if an attempt stops early (a crash, or
//!    a loader error that ends the data loader quietly with exit 0) the first volume
//!    without a mask was in flight: it is reported failed and the rest run again
//!    without it. Two attempts in a row that write nothing stop the batch: that
//!    failure is not one volume's.
//! 5. Each volume's evidence is written by `run_script`'s own writer
//!    ([`crate::evidence::write_evidence`]), then `cohort.json` and
//!    `cohort_volumes.csv` ([`crate::evidence::cohort`]).
//!
//! Layout: this file is the call (the request, the dispatch to an executor);
//! `inputs` collects, gates and resumes the inputs; `tool` makes it a registry
//! [`Tool`] with a typed output; `local` runs the attempts in this server's run
//! slots, [`slurm`] submits an array job instead; [`plan`], [`progress`] and `stage` are their shared parts;
//! `finish` turns the rows into the cohort summary, its files and the answer.
//!
//! A volume's evidence records the batch command and the attempt's real exit code;
//! its status is `succeeded` when the attempt wrote and we read its mask, even if the
//! process stopped later on another volume (`attempts` in cohort.json tells that story).

mod finish;
mod inputs;
mod local;
pub(crate) mod plan;
pub(crate) mod plot;
pub(crate) mod progress;
pub(crate) mod request;
pub(crate) mod slurm;
mod stage;
mod tool;

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

pub use self::tool::{BatchOutput, VolumeTrust};

use self::finish::{finish, summarise, verify_volumes};
use self::inputs::{collect_inputs, refused, resume};
use self::local::RunContext;
use self::plan::Volume;
use self::request::BatchRunRequest;
use crate::call::{CallContext, Progress};
use crate::config::Config;
use crate::evidence::cohort::{Attempt, Cohort, VolumeRow, VolumeStatus};
use crate::evidence::RunIds;
use crate::manifest::Manifest;
use crate::runner::slots::RunSlots;
use crate::tools::registry::Tool;
use crate::tools::run_script::gates::Gated;
use crate::upstream;

/// The tool, sharing the run slots of `run_script` (one upstream process at a time
/// per slot, whichever tool starts it).
pub struct RunBatch {
    config: Arc<Config>,
    manifest: Arc<Manifest>,
    slots: Arc<RunSlots>,
}

/// What a call ended as.
#[derive(Debug)]
pub enum BatchCall {
    /// Arguments or gates refused the batch; nothing ran.
    Refused { message: String, document: Value },
    /// The batch could not start (no Python runtime, probe failed, unwritable root).
    NotStarted { message: String },
    /// The batch ran (fully or not): packs and the cohort summary are on disk.
    Ran(Box<Cohort>),
    /// `verify: true`: the batch ran, and the paired verifier judged every succeeded
    /// (or reused) volume's pack, each of which now holds `trust_summary.json`.
    Verified(Box<Cohort>, Vec<VolumeTrust>),
}

/// One volume through the batch.
struct Entry {
    volume: Volume,
    gated: Gated,
    input_sha: Option<String>,
    /// Set once the volume's fate is known.
    row: Option<VolumeRow>,
    stale: Option<upstream::StaleOutput>,
}

impl RunBatch {
    pub fn new(config: Arc<Config>, manifest: Arc<Manifest>, slots: Arc<RunSlots>) -> Self {
        RunBatch {
            config,
            manifest,
            slots,
        }
    }

    /// Tool arguments → a finished call, in the shape the CLI and tests read.
    pub async fn call_tool(
        &self,
        args: serde_json::Map<String, Value>,
        ctx: CallContext,
    ) -> BatchCall {
        let decl = self
            .manifest
            .tool(Self::NAME)
            .expect("the registry's start-up check found run_batch in the manifest");
        match crate::tools::registry::parse(self, decl, &args) {
            Ok(parsed) => self.run(parsed.request, ctx).await,
            Err(e) => BatchCall::Refused {
                message: format!("{} refused before running anything: {e}", Self::NAME),
                document: crate::tools::run_script::refusal_document(&e),
            },
        }
    }

    /// A validated request → a finished call.
    pub async fn run(&self, request: BatchRunRequest, ctx: CallContext) -> BatchCall {
        let t0 = Instant::now();
        let created_at = chrono::Utc::now().to_rfc3339();
        let run_id = crate::jobs::new_run_id();
        let inputs = match collect_inputs(&request) {
            Ok(i) => i,
            Err(message) => return refused(message, json!(null)),
        };
        report(&ctx, 0.0, inputs.len(), "checking gates".into());
        let (mut entries, mut rows) = match self.gate_inputs(&inputs, &request) {
            Ok(gated) => gated,
            Err(refusal) => return refusal,
        };
        // A Slurm cohort runs on the cluster's GPUs, not in this server's run slots.
        let slurm = match &request.executor {
            slurm::options::Executor::Slurm(options) => Some(options.clone()),
            slurm::options::Executor::Local => None,
        };
        let slot = match slurm {
            Some(_) => None,
            None => match self.acquire_slot(&request, entries.len(), &ctx).await {
                Some(slot) => Some(slot),
                None => {
                    return BatchCall::NotStarted {
                        message: "cancelled while waiting for a run slot; nothing ran".into(),
                    }
                }
            },
        };
        let root = entries[0].gated.root.clone();
        let batch_dir = request.output_root.join(".batch").join(&run_id);
        let prompts = entries[0].gated.prompts.clone().filter(|p| !p.is_empty());
        resume(&mut entries, &request, prompts.as_deref());
        let mut attempts: Vec<Attempt> = Vec::new();
        let mut stopped: Option<VolumeStatus> = None;
        let mut array = None;
        let pending: Vec<usize> = (0..entries.len())
            .filter(|i| entries[*i].row.is_none())
            .collect();
        if let (Some(options), false) = (&slurm, pending.is_empty()) {
            match slurm::run(self, &mut entries, options, &request, &run_id, &ctx).await {
                Ok(outcome) => {
                    attempts = outcome.attempts;
                    stopped = outcome.stopped;
                    array = Some(outcome.record);
                }
                Err(message) => return BatchCall::NotStarted { message },
            }
        }
        // Nothing left to run (a complete re-run): no interpreter, no probe.
        if slot.is_some() && !pending.is_empty() {
            let (python, probe) = match self.prepare(&request, &root, &batch_dir).await {
                Ok(ready) => ready,
                Err(message) => return BatchCall::NotStarted { message },
            };
            // `pip freeze` (seconds) runs beside the upstream, not in the first pack's
            // writer: the per-interpreter cache is warm by the time a mask appears.
            let interpreter = python.path.clone();
            std::thread::spawn(move || crate::evidence::replay::environment_lock(&interpreter));
            let rc = RunContext {
                python: &python,
                probe: &probe,
                root: &root,
                batch_dir: &batch_dir,
                base_env: self.config.child_env.clone(),
                require_sandbox: self.config.require_sandbox,
                run_id: &run_id,
                created_at: &created_at,
                prompts: prompts.as_deref(),
                total: entries.len(),
                reused: entries.iter().filter(|e| e.row.is_some()).count(),
                t0,
            };
            stopped = self
                .run_attempts(pending, &mut entries, &mut attempts, &request, &rc, &ctx)
                .await;
        }
        let total = entries.len();
        rows.extend(entries.into_iter().filter_map(|e| e.row));
        rows.sort_by(|a, b| a.input.cmp(&b.input).then(a.id.cmp(&b.id)));
        let ids = RunIds { run_id, created_at };
        let mut cohort = summarise(&request, rows, attempts, stopped, &ids, &root, t0);
        if let Some(array) = array {
            cohort.summary = cohort.summary.replace(
                "upstream attempt(s)",
                &format!("Slurm array task(s) of job {}", array.job_id),
            );
            cohort.slurm = Some(array);
        }
        match finish(&request, cohort, total, &ctx) {
            BatchCall::Ran(cohort) if request.settings.verify => {
                let trust = verify_volumes(&cohort, &self.config).await;
                BatchCall::Verified(cohort, trust)
            }
            other => other,
        }
    }
}

fn report(ctx: &CallContext, done: f64, total: usize, message: String) {
    (ctx.progress)(Progress {
        progress: done,
        total: Some(total as f64),
        message: Some(message),
        item: None,
    });
}
