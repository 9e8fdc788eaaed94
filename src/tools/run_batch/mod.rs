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
//!    `cohort_volumes.csv` ([`cohort`]).
//!
//! Layout: this file is the tool (the request, the gates, resume, the dispatch to an
//! executor); `local` runs the attempts in this server's run slots, [`slurm`] submits
//! an array job instead; [`plan`], [`progress`] and `stage` are their shared parts;
//! `finish` turns the rows into the cohort summary, its files and the answer.
//!
//! A volume's evidence records the batch command and the attempt's real exit code;
//! its status is `succeeded` when the attempt wrote and we read its mask, even if the
//! process stopped later on another volume (`attempts` in cohort.json tells that story).

mod finish;
mod local;
pub(crate) mod plan;
pub(crate) mod plot;
pub(crate) mod progress;
pub(crate) mod request;
pub(crate) mod slurm;
mod stage;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::{json, Value};

use self::finish::{finish, summarise, verify_volumes};
use self::local::RunContext;
use self::plan::Volume;
use self::request::{BatchInputs, BatchRunRequest};
use crate::call::{Brief, CallContext, Progress};
use crate::config::Config;
use crate::evidence::cohort::{self, Attempt, Cohort, CohortStatus, VolumeRow, VolumeStatus};
use crate::evidence::{Evidence, RunIds, RunStatus};
use crate::manifest::args::ArgError;
use crate::manifest::Manifest;
use crate::runner::slots::RunSlots;
use crate::tools::registry::{admit_blocking, Background, Outcome, Summary, Tool, ToolFailure};
use crate::tools::run_script::gates::{self, Gated, Refusal};
use crate::tools::run_script::request::RunRequest;
use crate::tools::write_gate::Written;
use crate::upstream;

/// Gates about the input file itself: failing one leaves that input out.
const INPUT_GATES: [&str; 4] = [
    "input_exists",
    "input_is_nifti",
    "input_is_3d",
    "dicom_series_convertible",
];

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

/// `run_batch`'s answer: the cohort summary, and after `verify: true` each verified
/// volume's trust summary beside it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BatchOutput {
    #[serde(flatten)]
    pub cohort: Cohort,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust_summaries: Option<Vec<VolumeTrust>>,
}

/// The published schema is the cohort schema (`trust_summaries` is an addition it
/// does not declare, as before typed outputs).
impl schemars::JsonSchema for BatchOutput {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        Cohort::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        Cohort::json_schema(generator)
    }
}

/// One volume's trust summary after `verify: true`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VolumeTrust {
    pub id: String,
    pub pack_dir: String,
    #[serde(flatten)]
    pub trust: crate::verifier::trust::TrustSummary,
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

    /// Every input through `run_script`'s gates. A refusal that is not about the input
    /// itself refuses the batch; a bad input becomes a refused row.
    fn gate_inputs(
        &self,
        inputs: &[PathBuf],
        request: &BatchRunRequest,
    ) -> Result<(Vec<Entry>, Vec<VolumeRow>), BatchCall> {
        let root = &request.output_root;
        let problem = gates::output_dir_problem(root, &[".runs", ".batch"]).or_else(|| {
            crate::tools::write_gate::check(&self.config, root, Written::Directory)
                .err()
                .map(|refusal| format!("output_dir_allowed: {refusal}"))
        });
        if let Some(problem) = problem {
            return Err(refused(
                format!(
                    "run_batch refused before running anything: argument 'output_root': {problem}"
                ),
                json!(null),
            ));
        }
        let mut entries: Vec<Entry> = Vec::new();
        let mut rows: Vec<VolumeRow> = Vec::new();
        for volume in plan::assign_ids(inputs) {
            let single_request = per_volume_request(request, &volume);
            match gates::evaluate(single_request, &self.config, &self.manifest) {
                Ok(gated) => entries.push(Entry {
                    volume,
                    gated,
                    input_sha: None,
                    row: None,
                    stale: None,
                }),
                Err(refusal) => {
                    if let Some(general) = not_about_the_input(&refusal) {
                        return Err(refused(
                            format!(
                                "run_batch refused before running anything (checked on {}):\n{general}",
                                volume.input.display()
                            ),
                            json!(refusal.gates),
                        ));
                    }
                    rows.push(refused_row(&volume, &refusal));
                }
            }
        }
        if entries.is_empty() {
            let reasons: Vec<String> = rows
                .iter()
                .map(|r| format!("- {}: {}", r.input, r.reason.clone().unwrap_or_default()))
                .collect();
            return Err(refused(
                format!(
                    "run_batch refused: every input failed its gates; nothing ran:\n{}",
                    reasons.join("\n")
                ),
                json!(rows),
            ));
        }
        Ok((entries, rows))
    }
}

/// Resume: keep complete earlier packs for the same input bytes, modality and prompts.
fn resume(entries: &mut [Entry], request: &BatchRunRequest, prompts: Option<&[u32]>) {
    for entry in entries.iter_mut() {
        entry.input_sha = upstream::sha256_file(&entry.gated.request.input).ok();
        if let Some(row) = reuse(entry, request.settings.modality.as_str(), prompts) {
            entry.row = Some(row);
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

fn refused(message: String, gates: Value) -> BatchCall {
    BatchCall::Refused {
        document: json!({
            "status": RunStatus::Refused,
            "message": message,
            "gates": gates,
            "intended_use_disclaimer": crate::evidence::DISCLAIMER,
        }),
        message,
    }
}

fn collect_inputs(request: &BatchRunRequest) -> Result<Vec<PathBuf>, String> {
    match &request.inputs {
        BatchInputs::List(list) => Ok(list.clone()),
        BatchInputs::Dir { dir, suffix } => {
            if !dir.is_dir() {
                return Err(format!(
                    "run_batch refused: argument 'input_dir': {} is not a directory. Fix: pass an existing directory of NIfTI volumes, or pass `inputs`",
                    dir.display()
                ));
            }
            let found = plan::discover(dir, suffix, &request.output_root).map_err(|e| {
                format!(
                    "run_batch refused: argument 'input_dir': cannot list {}: {e}",
                    dir.display()
                )
            })?;
            if found.is_empty() {
                return Err(format!(
                    "run_batch refused: argument 'input_dir': no file ending in '{suffix}' under {}. Fix: check the directory, or pass suffix (e.g. \".nii\")",
                    dir.display()
                ));
            }
            Ok(found)
        }
    }
}

fn per_volume_request(request: &BatchRunRequest, volume: &Volume) -> RunRequest {
    RunRequest {
        input: volume.input.clone(),
        series_uid: None,
        output_dir: request.output_root.join(&volume.id),
        ground_truth: None,
        settings: request.settings.clone(),
        batch_config: true,
        preview: false,
    }
}

/// The failures of a refusal that are not about the input file, as one message.
fn not_about_the_input(refusal: &Refusal) -> Option<String> {
    let general: Vec<String> = refusal
        .gates
        .iter()
        .filter(|g| g.failed() && !INPUT_GATES.contains(&g.name.as_str()))
        .map(|g| format!("- {}: {}", g.name, g.message))
        .collect();
    (!general.is_empty()).then(|| general.join("\n"))
}

fn refused_row(volume: &Volume, refusal: &Refusal) -> VolumeRow {
    let reasons: Vec<String> = refusal
        .gates
        .iter()
        .filter(|g| g.failed())
        .map(|g| format!("{}: {}", g.name, g.message))
        .collect();
    VolumeRow {
        id: volume.id.clone(),
        input: volume.input.display().to_string(),
        input_sha256: None,
        pack_dir: None,
        status: VolumeStatus::Refused,
        reason: Some(reasons.join("; ")),
        attempt: None,
        mask: None,
        class_volumes_ml: Default::default(),
    }
}

/// The earlier pack of `entry`, when it can stand.
fn reuse(entry: &Entry, modality: &str, prompts: Option<&[u32]>) -> Option<VolumeRow> {
    let pack = &entry.gated.request.output_dir;
    let text =
        crate::files::read_to_string_capped(&pack.join("output.json"), crate::files::JSON_CAP)
            .ok()?;
    let previous: Evidence = serde_json::from_str(&text).ok()?;
    if let Some(mask) = previous.output.path.as_deref() {
        if plan::mask_in_pack(pack, mask).is_none() {
            tracing::warn!(
                "{}: earlier pack not reused: its output.json names a mask outside the pack ({mask})",
                entry.volume.id
            );
            return None;
        }
    }
    let sha = entry.input_sha.as_deref()?;
    match plan::reusable(&previous, sha, modality, prompts, |p| {
        upstream::sha256_file(p).ok()
    }) {
        Ok(()) => Some(cohort::row_from_evidence(
            &entry.volume.id,
            &previous,
            VolumeStatus::Reused,
            None,
            None,
        )),
        Err(why) => {
            tracing::info!("{}: earlier pack not reused: {why}", entry.volume.id);
            None
        }
    }
}

impl Tool for RunBatch {
    const NAME: &'static str = "run_batch";
    const BACKGROUND_TITLE: Option<&'static str> = Some("The cohort summary");
    type Args = request::BatchArgs;
    type Request = BatchRunRequest;
    type Output = BatchOutput;

    fn summary(output: &BatchOutput) -> Summary {
        Summary {
            head: finish::head(output),
            brief: Brief {
                status: Some(output.cohort.status.as_str().to_string()),
                lines: vec![format!("counts: {}", json!(output.cohort.counts))],
                pack: Some(output.cohort.output_root.clone()),
            },
        }
    }

    fn is_error(output: &BatchOutput) -> bool {
        !matches!(
            output.cohort.status,
            CohortStatus::Succeeded | CohortStatus::Partial
        )
    }

    fn request(&self, args: Self::Args) -> Result<Self::Request, ArgError> {
        request::request(args, &self.config)
    }

    fn execute(
        self: Arc<Self>,
        request: Self::Request,
        ctx: CallContext,
    ) -> BoxFuture<'static, Outcome<Self>> {
        async move { self.run(request, ctx).await.into_outcome() }.boxed()
    }

    fn refusal(&self, error: ArgError) -> ToolFailure {
        BatchCall::Refused {
            message: format!("{} refused before running anything: {error}", Self::NAME),
            document: crate::tools::run_script::refusal_document(&error),
        }
        .into_failure()
    }

    fn waits(args: &Self::Args) -> bool {
        args.settings.wait
    }

    fn background(&self, request: &Self::Request) -> Option<Background> {
        Some(Background {
            pack_dir: request.output_root.clone(),
            result_file: "cohort.json",
        })
    }

    fn admit(
        self: Arc<Self>,
        request: Self::Request,
    ) -> BoxFuture<'static, Result<Self::Request, ToolFailure>> {
        admit_blocking(request, move |checked| {
            collect_inputs(&checked)
                .map_err(|m| refused(m, json!(null)))
                .and_then(|inputs| self.gate_inputs(&inputs, &checked).map(|_| ()))
                .map_err(BatchCall::into_failure)
        })
    }
}
