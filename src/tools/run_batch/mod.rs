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
//!    ([`crate::tools::run_script::run::write_evidence`]), then `cohort.json` and
//!    `cohort_volumes.csv` ([`cohort`]).
//!
//! A volume's evidence records the batch command and the attempt's real exit code;
//! its status is `succeeded` when the attempt wrote and we read its mask, even if the
//! process stopped later on another volume (`attempts` in cohort.json tells that story).

pub mod plan;
pub mod plot;
pub mod progress;
pub mod request;
pub mod slurm;
mod stage;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::{json, Value};

use self::plan::{Verdict, Volume};
use self::request::{BatchInputs, BatchRunRequest};
use self::stage::{Staged, Staging};
use crate::call::{CallContext, Progress, ToolOutcome};
use crate::config::Config;
use crate::evidence::builder::model_sha256;
use crate::evidence::cohort::{
    self, Attempt, AttemptOutcome, Cohort, CohortStatus, Failure, VolumeRow, VolumeStatus,
};
use crate::evidence::{Evidence, InputHashes, RunIds, RunStatus, UpstreamRun};
use crate::manifest::args::ArgError;
use crate::manifest::Manifest;
use crate::tools::registry::{admit_blocking, Background, Tool};
use crate::tools::run_script::gates::{self, Gated, Refusal};
use crate::tools::run_script::request::RunRequest;
use crate::tools::run_script::run::{self as single, StartFailure};
use crate::tools::slots::{queued_message, DevicePool, RunSlots};
use crate::tools::write_gate::Written;
use crate::upstream::{self, oom, MaskAdoption, RunOutcome, RunResult};

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

/// One volume's trust summary after `verify: true`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VolumeTrust {
    pub id: String,
    pub pack_dir: String,
    #[serde(flatten)]
    pub trust: crate::verifier::trust::TrustSummary,
}

/// The paired verifier on every succeeded or reused volume's pack, in row order.
async fn verify_volumes(cohort: &Cohort, config: &Config) -> Vec<VolumeTrust> {
    let mut out = Vec::new();
    for row in &cohort.volumes {
        let ok = matches!(row.status, VolumeStatus::Succeeded | VolumeStatus::Reused);
        let Some(pack) = row.pack_dir.clone().filter(|_| ok) else {
            continue;
        };
        let opts = crate::verifier::VerifyOptions {
            cwd: Some(config.cwd.clone()),
            ..crate::verifier::VerifyOptions::default()
        };
        let dir = PathBuf::from(&pack);
        let trust = tokio::task::spawn_blocking(move || {
            crate::verifier::trust::verify_and_record(&dir, "succeeded", &opts)
        })
        .await
        .unwrap_or_else(|e| {
            crate::verifier::trust::TrustSummary::not_formed(
                "succeeded",
                format!("the verifier stopped: {e}"),
            )
        });
        out.push(VolumeTrust {
            id: row.id.clone(),
            pack_dir: pack,
            trust,
        });
    }
    out
}

/// One line per volume: verified, or why not.
fn trust_lines(trust: &[VolumeTrust]) -> String {
    let trusted = trust.iter().filter(|t| t.trust.trusted).count();
    let mut out = format!(
        "Verification: {trusted} of {} succeeded volume(s) ran and verified.",
        trust.len()
    );
    for t in trust.iter().filter(|t| !t.trust.trusted) {
        out.push_str(&format!("\n- {}: {}", t.id, t.trust.summary));
    }
    out
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
        match request::from_tool_arguments(decl, &args, &self.config) {
            Ok(r) => self.run(r, ctx).await,
            Err(e) => BatchCall::Refused {
                message: format!("run_batch refused before running anything: {e}"),
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

    /// A run slot on the batch's device; queued calls hear their place in the queue.
    async fn acquire_slot(
        &self,
        request: &BatchRunRequest,
        volumes: usize,
        ctx: &CallContext,
    ) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let device = DevicePool::of(request.settings.device);
        let per_device = self.slots.per_device();
        let progress = ctx.progress.clone();
        let queued = |position| {
            progress(Progress {
                progress: 0.0,
                total: Some(volumes as f64),
                message: Some(queued_message(device, position, per_device)),
                item: None,
            })
        };
        self.slots.acquire(device, &ctx.cancel, queued).await
    }

    /// The interpreter and its probed environment, checked against the request's
    /// device and TensorRT switch.
    async fn prepare(
        &self,
        request: &BatchRunRequest,
        root: &Path,
        batch_dir: &Path,
    ) -> Result<(upstream::PythonChoice, upstream::EnvProbe), String> {
        let python = single::find_python(&self.config).map_err(|StartFailure(m)| m)?;
        let env = upstream::child_env(
            self.config.child_env.clone(),
            &batch_dir.join("attempt-1/masks"),
            request.settings.device,
        );
        let device = request.settings.device;
        let probe =
            crate::tools::probe_cache::cached(&self.config, &python.path, root, device, || async {
                upstream::probe_environment(
                    &python.path,
                    &env,
                    root,
                    upstream::DEFAULT_PROBE_TIMEOUT,
                )
                .await
                .map_err(|e| e.to_string())
            })
            .await?;
        upstream::check_device(request.settings.device, &probe)
            .and_then(|()| upstream::check_tensorrt(request.settings.tensorrt, &probe))
            .map_err(|e| e.to_string())?;
        Ok((python, probe))
    }

    /// Attempts until every pending volume has its fate; returns how the batch was
    /// stopped (timed out, cancelled), if it was.
    async fn run_attempts(
        &self,
        mut pending: Vec<usize>,
        entries: &mut [Entry],
        attempts: &mut Vec<Attempt>,
        request: &BatchRunRequest,
        rc: &RunContext<'_>,
        ctx: &CallContext,
    ) -> Option<VolumeStatus> {
        let mut stopped = None;
        let mut previous_wrote_nothing = false;
        while !pending.is_empty() {
            let number = attempts.len() + 1;
            let outcome = self
                .attempt(number, &pending, entries, request, rc, ctx)
                .await;
            let (result, written, mut attempt) = match outcome {
                Ok(o) => o,
                Err(StartFailure(message)) => {
                    for &i in &pending {
                        let v = &entries[i].volume;
                        entries[i].row = Some(failed_row(v, &entries[i].gated, &message));
                    }
                    break;
                }
            };
            let judged = Judged {
                number,
                result: &result,
                pending: &pending,
                written: &written,
                previous_wrote_nothing,
            };
            let next = self.after_attempt(judged, entries, &mut attempt, rc);
            stopped = stopped.or(next.stopped);
            previous_wrote_nothing = next.wrote_nothing;
            attempts.push(attempt);
            pending = next.pending;
        }
        stopped
    }

    /// What an attempt's result means for its volumes: none left (all written), the
    /// batch stopped (timeout, cancel), or the suspect volume failed and the rest go
    /// again (unless two attempts in a row wrote nothing).
    fn after_attempt(
        &self,
        judged: Judged<'_>,
        entries: &mut [Entry],
        attempt: &mut Attempt,
        rc: &RunContext<'_>,
    ) -> Next {
        let Judged {
            number,
            result,
            pending,
            written,
            previous_wrote_nothing,
        } = judged;
        let stop_status = match &result.outcome {
            RunOutcome::TimedOut => Some(VolumeStatus::TimedOut),
            RunOutcome::Cancelled => Some(VolumeStatus::Cancelled),
            _ => None,
        };
        let mut next = Next {
            pending: Vec::new(),
            stopped: None,
            wrote_nothing: previous_wrote_nothing,
        };
        match plan::judge(pending, written) {
            Verdict::AllWritten => {}
            Verdict::StoppedAt { .. } if stop_status.is_some() => {
                next.stopped = stop_status;
                for &i in pending.iter().filter(|i| !written.contains(i)) {
                    self.volume_failed(&mut entries[i], result, number, None, rc);
                }
            }
            Verdict::StoppedAt {
                suspect,
                rest,
                wrote_any,
            } => {
                attempt.stopped_at = Some(entries[suspect].volume.id.clone());
                let why = format!(
                    "the upstream batch process stopped while this volume was in flight \
                     (attempt {number}, {}){}. See logs.stderr_tail.",
                    describe(result),
                    if rest.is_empty() {
                        ""
                    } else {
                        "; it was left out and the volumes after it were run again"
                    }
                );
                self.volume_failed(&mut entries[suspect], result, number, Some(why), rc);
                if !wrote_any && previous_wrote_nothing {
                    let why = format!(
                        "two attempts in a row wrote no mask at all (attempt {number}, {}): the failure \
                         is not specific to one volume; not retried. See logs.stderr_tail.",
                        describe(result)
                    );
                    for &i in &rest {
                        self.volume_failed(&mut entries[i], result, number, Some(why.clone()), rc);
                    }
                } else {
                    next.pending = rest;
                }
                next.wrote_nothing = !wrote_any;
            }
        }
        next
    }

    /// One run of the batch config over `order`; writes the packs of the volumes it
    /// segmented and returns which they were.
    async fn attempt(
        &self,
        number: usize,
        order: &[usize],
        entries: &mut [Entry],
        request: &BatchRunRequest,
        rc: &RunContext<'_>,
        ctx: &CallContext,
    ) -> Result<(RunResult, BTreeSet<usize>, Attempt), StartFailure> {
        let dir = rc.batch_dir.join(format!("attempt-{number}"));
        let staging = Staging::new(&dir)?;
        let masks = dir.join("masks");
        let staged = stage::stage(order, entries, staging.path(), &masks)?;
        let upstream_request = upstream::BatchRequest {
            python: rc.python.path.clone(),
            bundle_root: rc.root.to_path_buf(),
            input_dir: staging.path().to_path_buf(),
            output_dir: masks.clone(),
            modality: request.settings.modality.as_str().to_string(),
            overrides: stage::batch_overrides(
                &staged,
                rc.prompts,
                &entries[order[0]].gated.request,
            ),
            device: request.settings.device,
            tensorrt: request.settings.tensorrt,
        };
        if let Ok(argv) = upstream::build_batch_argv(&upstream_request) {
            single::declared_entry_point(&argv, &self.manifest)?;
        }
        let options = attempt_options(&dir, &staged, entries, request, rc, ctx);
        let result = upstream::run_batch(&upstream_request, rc.probe, &options)
            .await
            .map_err(|e| StartFailure(e.to_string()))?;
        drop(staging);
        let written = self.adopt(&staged, &result, entries, number, rc);
        let attempt = attempt_record(number, order, entries, &result, &written);
        let _ = std::fs::remove_dir_all(&masks);
        Ok((result, written, attempt))
    }

    /// Move each mask the attempt wrote into its volume's pack and write the evidence.
    fn adopt(
        &self,
        staged: &[Staged],
        result: &RunResult,
        entries: &mut [Entry],
        number: usize,
        rc: &RunContext<'_>,
    ) -> BTreeSet<usize> {
        let mut written = BTreeSet::new();
        for (i, _, scratch_mask) in staged {
            let entry = &mut entries[*i];
            let MaskAdoption::Adopted { bytes, .. } =
                upstream::adopt_mask(scratch_mask, result.started)
            else {
                continue;
            };
            let target = &entry.gated.mask_path;
            let moved = target
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|_| std::fs::rename(scratch_mask, target));
            if let Err(e) = moved {
                tracing::warn!(
                    "cannot move {} to {}: {e}",
                    scratch_mask.display(),
                    target.display()
                );
                continue;
            }
            written.insert(*i);
            let mut own = result.clone();
            // The volume finished: its own outcome is success, whatever came later;
            // the process's own code is kept beside it.
            own.outcome = RunOutcome::Exited {
                code: 0,
                signal: None,
            };
            own.exit_code = Some(0);
            own.batch_process_exit_code = (result.exit_code != Some(0))
                .then_some(result.exit_code)
                .flatten();
            own.mask = Some(MaskAdoption::Adopted {
                path: target.clone(),
                bytes,
            });
            let row = self.volume_evidence(entry, own, number, None, rc);
            entry.row = Some(row);
        }
        written
    }

    /// Record a volume the attempt did not segment.
    fn volume_failed(
        &self,
        entry: &mut Entry,
        result: &RunResult,
        number: usize,
        reason: Option<String>,
        rc: &RunContext<'_>,
    ) {
        let mut own = result.clone();
        own.mask = Some(MaskAdoption::Missing {
            path: entry.gated.mask_path.clone(),
        });
        entry.row = Some(self.volume_evidence(entry, own, number, reason, rc));
    }

    /// Write one volume's pack (logs copied in, evidence from run_script's writer).
    fn volume_evidence(
        &self,
        entry: &Entry,
        mut own: RunResult,
        number: usize,
        reason: Option<String>,
        rc: &RunContext<'_>,
    ) -> VolumeRow {
        own.stale_output = entry.stale.clone();
        let logs = entry.gated.request.output_dir.join("logs");
        if std::fs::create_dir_all(&logs).is_ok() {
            for (from, name) in [
                (&own.stdout_log, "upstream.stdout.log"),
                (&own.stderr_log, "upstream.stderr.log"),
            ] {
                let _ = std::fs::copy(from, logs.join(name));
            }
            own.stdout_log = logs.join("upstream.stdout.log");
            own.stderr_log = logs.join("upstream.stderr.log");
        }
        let ids = RunIds {
            run_id: format!("{}-{}", rc.run_id, entry.volume.id),
            created_at: rc.created_at.to_string(),
        };
        let hashes = InputHashes {
            model: model_sha256(&entry.gated.inventory.model_pt_path),
            input: entry.input_sha.clone(),
        };
        let overrides = single::overrides_of(&entry.gated.request);
        let run = UpstreamRun {
            result: &own,
            probe: rc.probe,
            python: rc.python,
            worker: None,
            fallback_reason: None,
            environment_lock: crate::evidence::replay::environment_lock(&rc.python.path),
            phases: std::collections::BTreeMap::from([(
                "upstream_batch_process".to_string(),
                own.seconds,
            )]),
            cost: None,
        };
        let skill = self.manifest.skill();
        match crate::evidence::write_evidence(
            &entry.gated.facts(&overrides),
            &run,
            &ids,
            hashes,
            &skill,
        ) {
            Ok(evidence) => {
                let status = VolumeStatus::from_run(evidence.status);
                let reason = if status.ok() {
                    None
                } else if oom::is_cuda_oom(&own.stderr_tail) {
                    Some(
                        format!("{} {}", reason.unwrap_or_default(), oom::OOM_FIX)
                            .trim()
                            .to_string(),
                    )
                } else {
                    reason.or_else(|| Some(evidence.summary.clone()))
                };
                cohort::row_from_evidence(&entry.volume.id, &evidence, status, Some(number), reason)
            }
            Err(message) => failed_row(&entry.volume, &entry.gated, &message),
        }
    }
}

/// Logs, the attempt's time limit (per volume × volumes), cancellation and the
/// per-volume progress tracker.
fn attempt_options(
    dir: &Path,
    staged: &[Staged],
    entries: &[Entry],
    request: &BatchRunRequest,
    rc: &RunContext<'_>,
    ctx: &CallContext,
) -> upstream::RunOptions {
    let per_volume = request.settings.timeout.as_secs_f64();
    let mut options = upstream::RunOptions::new(
        dir.join("logs"),
        Duration::from_secs_f64((per_volume * staged.len() as f64).min(30.0 * 86_400.0)),
    );
    options.base_env = rc.base_env.clone();
    options.require_sandbox = rc.require_sandbox;
    options.on_spawn = Some(ctx.children.clone());
    options.cancel = ctx.cancel.clone();
    options.tick = Duration::from_millis(500);
    let names: Vec<(String, PathBuf)> = staged
        .iter()
        .map(|(i, _, mask)| (entries[*i].volume.id.clone(), mask.clone()))
        .collect();
    let done_before = rc.total - rc.reused - entries.iter().filter(|e| e.row.is_none()).count();
    let tracker = progress::Tracker::new(
        names,
        rc.total,
        rc.reused + done_before,
        done_before,
        rc.t0,
        ctx.progress.clone(),
    );
    options.progress = Some(Arc::new(move |_event| tracker.poll()));
    options
}

/// The attempt as `cohort.json` records it.
fn attempt_record(
    number: usize,
    order: &[usize],
    entries: &[Entry],
    result: &RunResult,
    written: &BTreeSet<usize>,
) -> Attempt {
    let ids = |filter: &dyn Fn(&usize) -> bool| -> Vec<String> {
        order
            .iter()
            .filter(|i| filter(i))
            .map(|i| entries[*i].volume.id.clone())
            .collect()
    };
    Attempt {
        number,
        command: result.command.clone(),
        volumes: ids(&|_| true),
        outcome: match &result.outcome {
            RunOutcome::Exited { .. } => AttemptOutcome::Exited,
            RunOutcome::TimedOut => AttemptOutcome::TimedOut,
            RunOutcome::Cancelled => AttemptOutcome::Cancelled,
            RunOutcome::SpawnFailed { .. } => AttemptOutcome::SpawnFailed,
        },
        exit_code: result.exit_code,
        seconds: result.seconds,
        written: ids(&|i| written.contains(i)),
        stopped_at: None,
        stdout_log: result.stdout_log.display().to_string(),
        stderr_log: result.stderr_log.display().to_string(),
    }
}

/// One attempt's result, as [`RunBatch::after_attempt`] judges it.
struct Judged<'a> {
    number: usize,
    result: &'a RunResult,
    pending: &'a [usize],
    written: &'a BTreeSet<usize>,
    previous_wrote_nothing: bool,
}

/// What comes after an attempt.
struct Next {
    pending: Vec<usize>,
    stopped: Option<VolumeStatus>,
    wrote_nothing: bool,
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

/// Write `cohort.json` and the CSV, report the end, and answer.
/// `total` counts the volumes that passed their gates (the progress denominator).
fn finish(request: &BatchRunRequest, cohort: Cohort, total: usize, ctx: &CallContext) -> BatchCall {
    if let Err(e) = std::fs::create_dir_all(&request.output_root)
        .and_then(|_| cohort::write(&request.output_root, &cohort))
    {
        return BatchCall::NotStarted {
            message: format!(
                "the batch ran but its cohort summary could not be written to {}: {e}",
                request.output_root.display()
            ),
        };
    }
    plot::write(&request.output_root, &cohort);
    report(
        ctx,
        total as f64,
        total,
        format!("{total}/{total} done: {}", cohort.summary),
    );
    BatchCall::Ran(Box::new(cohort))
}

/// What every attempt of one batch shares.
struct RunContext<'a> {
    python: &'a upstream::PythonChoice,
    probe: &'a upstream::EnvProbe,
    root: &'a Path,
    batch_dir: &'a Path,
    base_env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    require_sandbox: bool,
    run_id: &'a str,
    created_at: &'a str,
    prompts: Option<&'a [u32]>,
    total: usize,
    reused: usize,
    t0: Instant,
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

fn failed_row(volume: &Volume, gated: &Gated, message: &str) -> VolumeRow {
    VolumeRow {
        id: volume.id.clone(),
        input: volume.input.display().to_string(),
        input_sha256: None,
        pack_dir: Some(gated.request.output_dir.display().to_string()),
        status: VolumeStatus::UpstreamFailed,
        reason: Some(message.to_string()),
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

fn describe(result: &RunResult) -> String {
    match &result.outcome {
        RunOutcome::Exited {
            code,
            signal: Some(s),
        } => format!("killed by signal {s}, exit code {code}"),
        RunOutcome::Exited { code, .. } => format!("exit code {code}"),
        RunOutcome::TimedOut => "timed out".into(),
        RunOutcome::Cancelled => "cancelled".into(),
        RunOutcome::SpawnFailed { reason } => format!("could not start: {reason}"),
    }
}

fn summarise(
    request: &BatchRunRequest,
    rows: Vec<VolumeRow>,
    attempts: Vec<Attempt>,
    stopped: Option<VolumeStatus>,
    ids: &RunIds,
    root: &Path,
    t0: Instant,
) -> Cohort {
    let (status, counts) = cohort::overall(&rows, stopped);
    let failures: Vec<Failure> = rows
        .iter()
        .filter(|r| !r.status.ok())
        .map(|r| Failure {
            id: r.id.clone(),
            input: r.input.clone(),
            status: r.status,
            reason: r.reason.clone().unwrap_or_default(),
        })
        .collect();
    let ok = rows.iter().filter(|r| r.status.ok()).count();
    let reused = counts.get("reused").copied().unwrap_or(0);
    let summary = format!(
        "{ok} of {} volumes segmented ({reused} reused from earlier packs) in {} upstream attempt(s); {} failed or refused. Not for clinical use.",
        rows.len(),
        attempts.len(),
        failures.len()
    );
    Cohort {
        schema_version: cohort::COHORT_SCHEMA_VERSION.into(),
        run_id: ids.run_id.clone(),
        status,
        summary,
        output_root: request.output_root.display().to_string(),
        modality: request.settings.modality.as_str().into(),
        label_prompts: request.settings.label_prompts.clone(),
        upstream_root: root.display().to_string(),
        created_at: ids.created_at.clone(),
        finished_at: chrono::Utc::now().to_rfc3339(),
        seconds: (t0.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        counts,
        classes: cohort::class_summaries(&rows),
        volumes_csv: cohort::volumes_csv(&rows),
        volumes: rows,
        attempts,
        failures,
        intended_use_disclaimer: crate::evidence::DISCLAIMER.into(),
        slurm: None,
    }
}

impl Tool for RunBatch {
    const NAME: &'static str = "run_batch";
    type Args = request::BatchArgs;
    type Request = BatchRunRequest;

    fn output_schema() -> Value {
        crate::tools::schemas::waited_or_started(cohort::cohort_schema(), "The cohort summary")
    }

    fn request(&self, args: Self::Args) -> Result<Self::Request, ArgError> {
        request::request(args, &self.config)
    }

    fn execute(
        self: Arc<Self>,
        request: Self::Request,
        ctx: CallContext,
    ) -> BoxFuture<'static, ToolOutcome> {
        async move { self.run(request, ctx).await.into_outcome() }.boxed()
    }

    fn refusal(&self, error: ArgError) -> ToolOutcome {
        ToolOutcome::failure(format!(
            "run_batch refused before running anything: {error}"
        ))
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
    ) -> BoxFuture<'static, Result<Self::Request, ToolOutcome>> {
        admit_blocking(request, move |checked| {
            collect_inputs(&checked)
                .map_err(|m| refused(m, json!(null)))
                .and_then(|inputs| self.gate_inputs(&inputs, &checked).map(|_| ()))
                .map_err(|refusal| refusal.into_outcome())
        })
    }
}

impl BatchCall {
    /// The MCP shape: the cohort as structuredContent; isError when nothing succeeded.
    pub fn into_outcome(self) -> ToolOutcome {
        match self {
            BatchCall::Refused { message, .. } | BatchCall::NotStarted { message } => {
                ToolOutcome::Failure {
                    message,
                    structured: None,
                }
            }
            BatchCall::Verified(cohort, trust) => {
                let lines = trust_lines(&trust);
                match BatchCall::Ran(cohort).into_outcome() {
                    ToolOutcome::Success {
                        mut structured,
                        summary,
                        images,
                    } => {
                        structured["trust_summaries"] = json!(trust);
                        ToolOutcome::Success {
                            structured,
                            summary: format!("{lines} {summary}"),
                            images,
                        }
                    }
                    ToolOutcome::Failure {
                        message,
                        mut structured,
                    } => {
                        if let Some(s) = structured.as_mut() {
                            s["trust_summaries"] = json!(trust);
                        }
                        ToolOutcome::Failure {
                            message: format!("{lines} {message}"),
                            structured,
                        }
                    }
                }
            }
            BatchCall::Ran(cohort) => {
                let structured = serde_json::to_value(&*cohort).expect("cohort serialises");
                let mut summary = format!(
                    "{} Cohort summary: {}/cohort.json and cohort_volumes.csv; one evidence pack per volume under {}.",
                    cohort.summary, cohort.output_root, cohort.output_root
                );
                for f in &cohort.failures {
                    summary.push_str(&format!(
                        "\n- {} ({}): {}",
                        f.id,
                        f.status.as_str(),
                        f.reason
                    ));
                }
                if matches!(
                    cohort.status,
                    CohortStatus::Succeeded | CohortStatus::Partial
                ) {
                    ToolOutcome::Success {
                        structured,
                        summary,
                        images: Vec::new(),
                    }
                } else {
                    ToolOutcome::Failure {
                        message: summary,
                        structured: Some(structured),
                    }
                }
            }
        }
    }
}
