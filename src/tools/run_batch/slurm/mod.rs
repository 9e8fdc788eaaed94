//! `executor: slurm`: the cohort's pending volumes as one Slurm job array.
//!
//! Why this shape: Slurm already schedules GPUs fairly across a site; we only cut the
//! cohort into shards, submit ONE array (`sbatch --array=0-N%MAX`, one task per
//! shard) and follow it. Each task is this same binary running `run-batch` on its
//! shard with the server's configuration (bundle root, Python, runs index), so it
//! loads the model once and writes the standard per-volume packs under the shared
//! output root. The coordinator never trusts a task's word: a volume counts as done
//! when its pack's evidence says it was written by this array (`runtime.slurm`).
//!
//! Flow: shards and the job script go under `<output_root>/.slurm/<run_id>/`; after
//! `sbatch`, every [`POLL`] the coordinator lists the tasks (`squeue -r -t all`),
//! counts packs that appeared (MCP progress, CLI bar), and on cancel runs `scancel`
//! on the array. When every task has finished it reads `scontrol` (exit codes) and
//! the packs, and hands rows and per-task attempts back to `run_batch`, which writes
//! `cohort.json` as for a local run. Re-running the same cohort resumes: volumes with
//! complete packs are reused and only the rest are submitted.
//!
//! The map: [`submit`](mod@submit) cuts the shards, writes the script and calls `sbatch`; this
//! file follows the array (polling, progress, cancel); [`conclude`](mod@conclude) reads the packs
//! and the task records into rows and attempts; [`options`] are the call's settings.

mod conclude;
pub(crate) mod options;
mod submit;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use self::conclude::{conclude, merge, written_by};
use self::options::SlurmOptions;
use self::submit::{submit, Submitted};
use super::request::BatchRunRequest;
use super::{Entry, RunBatch};
use crate::call::{CallContext, Progress};
use crate::cluster::{self, ArrayRecord, TaskView};
use crate::evidence::cohort::{Attempt, VolumeStatus};

/// How often the coordinator asks the controller and looks for new packs.
pub(crate) const POLL: Duration = Duration::from_secs(2);
/// After `scancel`, how long to wait for the tasks to leave the running states.
const CANCEL_WAIT: Duration = Duration::from_secs(60);
/// `squeue` listing nothing this long after submission means the job is gone.
const VANISHED_AFTER: Duration = Duration::from_secs(30);

/// What the array produced, for `run_batch` to summarise.
pub(super) struct ArrayOutcome {
    pub attempts: Vec<Attempt>,
    pub stopped: Option<VolumeStatus>,
    pub record: ArrayRecord,
}

/// Submit the pending entries as one array and follow it to the end.
pub(super) async fn run(
    batch: &RunBatch,
    entries: &mut [Entry],
    options: &SlurmOptions,
    request: &BatchRunRequest,
    run_id: &str,
    ctx: &CallContext,
) -> Result<ArrayOutcome, String> {
    let pending: Vec<usize> = (0..entries.len())
        .filter(|i| entries[*i].row.is_none())
        .collect();
    let submitted = submit(batch, entries, &pending, options, request, run_id).await?;
    let total = entries.len();
    let reused = total - pending.len();
    report(
        ctx,
        reused,
        total,
        format!("slurm job {} submitted", submitted.job_id),
    );
    let (mut tasks, cancelled) = follow(&submitted, entries, reused, ctx).await;
    // Exit codes and run times come from scontrol (squeue has neither).
    match cluster::scontrol_tasks(&submitted.job_id).await {
        Ok(details) => merge(&mut tasks, details),
        Err(e) => tracing::warn!("scontrol for job {}: {e}", submitted.job_id),
    }
    Ok(conclude(&submitted, entries, tasks, cancelled))
}

/// Poll until every task has finished (or the job vanished); `scancel` on cancel.
/// Returns the last task views and whether the call was cancelled.
async fn follow(
    s: &Submitted,
    entries: &[Entry],
    reused: usize,
    ctx: &CallContext,
) -> (Vec<TaskView>, bool) {
    let started = Instant::now();
    let total = entries.len();
    let mut done: BTreeSet<usize> = BTreeSet::new();
    let mut tasks: Vec<TaskView> = Vec::new();
    let mut cancelled_at: Option<Instant> = None;
    loop {
        if cancelled_at.is_none() {
            tokio::select! {
                _ = ctx.cancel.cancelled() => {
                    if let Err(e) = cluster::scancel(&s.job_id).await {
                        tracing::warn!("scancel {}: {e}", s.job_id);
                    }
                    cancelled_at = Some(Instant::now());
                }
                _ = tokio::time::sleep(POLL) => {}
            }
        } else {
            tokio::time::sleep(POLL / 2).await;
        }
        match cluster::squeue(&s.job_id).await {
            Ok(now) => tasks = now,
            Err(e) => tracing::warn!("squeue for job {}: {e}", s.job_id),
        }
        new_packs(s, entries, &mut done);
        let counts = cluster::counts(&tasks);
        report(
            ctx,
            reused + done.len(),
            total,
            format!(
                "slurm job {}: {}; {}/{total} volumes done",
                s.job_id,
                cluster::counts_line(&counts),
                reused + done.len()
            ),
        );
        // `squeue -r` lists every pending task, so when all listed tasks are
        // finished none is left to run: a task cancelled while still pending is
        // dropped from the listing altogether (slurm 22.05), not shown as CANCELLED.
        let all_finished = !tasks.is_empty() && tasks.iter().all(|t| t.state.finished());
        let vanished = tasks.is_empty() && started.elapsed() > VANISHED_AFTER;
        let gave_up = cancelled_at.is_some_and(|t| t.elapsed() > CANCEL_WAIT);
        if all_finished || vanished || gave_up {
            return (tasks, cancelled_at.is_some());
        }
    }
}

/// Volumes of this array whose packs appeared since the last look.
fn new_packs(s: &Submitted, entries: &[Entry], done: &mut BTreeSet<usize>) {
    for i in s.shards.iter().flat_map(|sh| sh.members.iter()) {
        if !done.contains(i) && written_by(&s.job_id, &entries[*i]).is_some() {
            done.insert(*i);
        }
    }
}

fn report(ctx: &CallContext, done: usize, total: usize, message: String) {
    (ctx.progress)(Progress {
        progress: done as f64,
        total: Some(total as f64),
        message: Some(message),
        item: None,
    });
}
