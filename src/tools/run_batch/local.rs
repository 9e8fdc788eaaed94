//! The local executor of `run_batch`: the cohort runs here, in this server's run
//! slots, as upstream batch attempts on this machine's device (the other executor,
//! Slurm, is in `slurm/`).
//!
//! What lives here: the run slot and the probed interpreter ([`RunBatch::prepare`]),
//! the attempt loop (stage the pending inputs, run the batch config once over them,
//! adopt each mask into its pack, judge where an attempt stopped and run the rest
//! again), and each volume's evidence written by `run_script`'s writer.
//!
//! Why apart: the tool itself (request, gates, resume, dispatch, the cohort finish) is
//! the same for both executors and stays in `mod.rs`; this file is only how volumes
//! are segmented when they run locally.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::plan::{self, Verdict, Volume};
use super::progress;
use super::request::BatchRunRequest;
use super::stage::{self, Staged, Staging};
use super::{Entry, RunBatch};
use crate::call::{CallContext, Progress};
use crate::evidence::builder::model_sha256;
use crate::evidence::cohort::{self, Attempt, AttemptOutcome, VolumeRow, VolumeStatus};
use crate::evidence::{InputHashes, RunIds, UpstreamRun};
use crate::runner::slots::{queued_message, DevicePool};
use crate::tools::run_script::gates::Gated;
use crate::tools::run_script::run::{self as single, StartFailure};
use crate::upstream::{self, oom, MaskAdoption, RunOutcome, RunResult};

impl RunBatch {
    /// A run slot on the batch's device; queued calls hear their place in the queue.
    pub(super) async fn acquire_slot(
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
    pub(super) async fn prepare(
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
        let probe = crate::runner::probe_cache::cached(
            &self.config,
            &python.path,
            root,
            device,
            || async {
                upstream::probe_environment(
                    &python.path,
                    &env,
                    root,
                    upstream::DEFAULT_PROBE_TIMEOUT,
                )
                .await
                .map_err(|e| e.to_string())
            },
        )
        .await?;
        upstream::check_device(request.settings.device, &probe)
            .and_then(|()| upstream::check_tensorrt(request.settings.tensorrt, &probe))
            .map_err(|e| e.to_string())?;
        Ok((python, probe))
    }

    /// Attempts until every pending volume has its fate; returns how the batch was
    /// stopped (timed out, cancelled), if it was.
    pub(super) async fn run_attempts(
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

/// What every attempt of one batch shares.
pub(super) struct RunContext<'a> {
    pub(super) python: &'a upstream::PythonChoice,
    pub(super) probe: &'a upstream::EnvProbe,
    pub(super) root: &'a Path,
    pub(super) batch_dir: &'a Path,
    pub(super) base_env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    pub(super) require_sandbox: bool,
    pub(super) run_id: &'a str,
    pub(super) created_at: &'a str,
    pub(super) prompts: Option<&'a [u32]>,
    pub(super) total: usize,
    pub(super) reused: usize,
    pub(super) t0: Instant,
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
