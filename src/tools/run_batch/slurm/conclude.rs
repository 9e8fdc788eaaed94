//! Summing up a finished array: which volumes this array's tasks really wrote
//! (their packs, never a task's word), the rows and one attempt per task for
//! `cohort.json`, and the array's record. Apart from submitting and following
//! because it only reads what the run left behind.

use std::collections::BTreeMap;
use std::path::Path;

use super::submit::{Shard, Submitted};
use super::ArrayOutcome;
use crate::cluster::{self, ArrayRecord, TaskRecord, TaskState, TaskView};
use crate::evidence::cohort::{self, Attempt, AttemptOutcome, VolumeRow, VolumeStatus};
use crate::evidence::Evidence;
use crate::tools::run_batch::Entry;

/// The entry's evidence, when this array's task wrote it.
pub(super) fn written_by(job_id: &str, entry: &Entry) -> Option<Evidence> {
    let path = entry.gated.request.output_dir.join("output.json");
    let text = crate::files::read_to_string_capped(&path, crate::files::JSON_CAP).ok()?;
    let evidence: Evidence = serde_json::from_str(&text).ok()?;
    let placement = evidence.runtime.slurm.as_ref()?;
    let array = placement
        .array_job_id
        .as_deref()
        .unwrap_or(&placement.job_id);
    (array == job_id).then_some(evidence)
}

/// A task missing from a listing that shows its siblings: Slurm drops a task that is
/// cancelled while pending (scancel JOB_N) from the queue without a record.
fn never_started(task_id: u32) -> TaskView {
    TaskView {
        task_id,
        state: TaskState::Cancelled,
        reason: Some("cancelled before it started (no longer listed by the controller)".into()),
        exit_code: None,
        node: None,
        run_seconds: None,
    }
}

/// `scontrol`'s view of each task over `squeue`'s.
pub(super) fn merge(tasks: &mut Vec<TaskView>, details: Vec<TaskView>) {
    for d in details {
        match tasks.iter_mut().find(|t| t.task_id == d.task_id) {
            Some(t) => {
                t.state = d.state;
                t.exit_code = d.exit_code;
                t.run_seconds = d.run_seconds;
                t.reason = d.reason.or(t.reason.take());
                t.node = d.node.or(t.node.take());
            }
            None => tasks.push(d),
        }
    }
}

/// Rows for the array's volumes, one attempt per task, and the array's record.
pub(super) fn conclude(
    s: &Submitted,
    entries: &mut [Entry],
    tasks: Vec<TaskView>,
    cancelled: bool,
) -> ArrayOutcome {
    let mut attempts = Vec::new();
    let mut records = Vec::new();
    let listed_any = !tasks.is_empty();
    for shard in &s.shards {
        let view = tasks
            .iter()
            .find(|t| t.task_id == shard.task_id)
            .cloned()
            .or_else(|| listed_any.then(|| never_started(shard.task_id)));
        let log = s.dir.join(format!("task-{}.log", shard.task_id));
        let mut written = Vec::new();
        for i in &shard.members {
            let row = volume_row(s, &entries[*i], shard, view.as_ref(), cancelled, &log);
            if row.status.ok() {
                written.push(row.id.clone());
            }
            entries[*i].row = Some(row);
        }
        let ids = shard
            .members
            .iter()
            .map(|i| entries[*i].volume.id.clone())
            .collect();
        attempts.push(task_attempt(s, shard, view.as_ref(), ids, written, &log));
        records.push(TaskRecord {
            task_id: shard.task_id,
            volumes: shard
                .members
                .iter()
                .map(|i| entries[*i].volume.id.clone())
                .collect(),
            state: view.as_ref().map_or(TaskState::Unknown, |v| v.state),
            reason: view.as_ref().and_then(|v| v.reason.clone()),
            exit_code: view.as_ref().and_then(|v| v.exit_code.clone()),
            node: view.as_ref().and_then(|v| v.node.clone()),
            log: log.display().to_string(),
        });
    }
    let task_counts = cluster::counts(
        &records
            .iter()
            .map(|r| TaskView {
                task_id: r.task_id,
                state: r.state,
                reason: None,
                exit_code: None,
                node: None,
                run_seconds: None,
            })
            .collect::<Vec<_>>(),
    );
    ArrayOutcome {
        attempts,
        stopped: cancelled.then_some(VolumeStatus::Cancelled),
        record: ArrayRecord {
            job_id: s.job_id.clone(),
            sbatch: s.sbatch.clone(),
            script: s.script.display().to_string(),
            template: cluster::script::TEMPLATE_ID.into(),
            script_text: s.script_text.clone(),
            task_counts,
            tasks: records,
        },
    }
}

/// A volume's row: from its pack when this array wrote it, else failed with the
/// task's Slurm state and reason.
fn volume_row(
    s: &Submitted,
    entry: &Entry,
    shard: &Shard,
    view: Option<&TaskView>,
    cancelled: bool,
    log: &Path,
) -> VolumeRow {
    let task = describe_task(&s.job_id, shard.task_id, view);
    let attempt = Some(shard.task_id as usize + 1);
    if let Some(evidence) = written_by(&s.job_id, entry) {
        let status = VolumeStatus::from_run(evidence.status);
        let reason = (!status.ok()).then(|| format!("{} ({task})", evidence.summary));
        let mut row =
            cohort::row_from_evidence(&entry.volume.id, &evidence, status, attempt, reason);
        row.input = entry.volume.input.display().to_string();
        return row;
    }
    let state = view.map(|v| v.state);
    let status = match state {
        _ if cancelled => VolumeStatus::Cancelled,
        Some(TaskState::Timeout) => VolumeStatus::TimedOut,
        Some(TaskState::Cancelled) | Some(TaskState::Preempted) => VolumeStatus::Cancelled,
        _ => VolumeStatus::UpstreamFailed,
    };
    VolumeRow {
        id: entry.volume.id.clone(),
        input: entry.volume.input.display().to_string(),
        input_sha256: entry.input_sha.clone(),
        pack_dir: Some(entry.gated.request.output_dir.display().to_string()),
        status,
        reason: Some(format!(
            "no pack from this array: {task}. See {}. Re-run the same call to resubmit only the volumes without complete packs.",
            log.display()
        )),
        attempt,
        mask: None,
        class_volumes_ml: BTreeMap::new(),
    }
}

/// `Slurm array task 1 of job 12 ended CANCELLED (reason: ..., exit code 0:15, node n1)`.
fn describe_task(job: &str, task: u32, view: Option<&TaskView>) -> String {
    let Some(v) = view else {
        return format!(
            "Slurm array task {task} of job {job} was no longer listed by the controller"
        );
    };
    let mut extra = Vec::new();
    if let Some(r) = &v.reason {
        extra.push(format!("reason {r}"));
    }
    if let Some(e) = &v.exit_code {
        extra.push(format!("exit code {e}"));
    }
    if let Some(n) = &v.node {
        extra.push(format!("node {n}"));
    }
    format!(
        "Slurm array task {task} of job {job} ended {}{}",
        v.state.as_str().to_ascii_uppercase(),
        if extra.is_empty() {
            String::new()
        } else {
            format!(" ({})", extra.join(", "))
        }
    )
}

/// One task as `cohort.json`'s attempt.
fn task_attempt(
    s: &Submitted,
    shard: &Shard,
    view: Option<&TaskView>,
    volumes: Vec<String>,
    written: Vec<String>,
    log: &Path,
) -> Attempt {
    let state = view.map_or(TaskState::Unknown, |v| v.state);
    let mut command = s.command.clone();
    command.push("--".into());
    command.push(format!("<shard-{}.inputs>", shard.task_id));
    Attempt {
        number: shard.task_id as usize + 1,
        command,
        volumes,
        outcome: match state {
            TaskState::Timeout => AttemptOutcome::TimedOut,
            TaskState::Cancelled | TaskState::Preempted => AttemptOutcome::Cancelled,
            TaskState::BootFail | TaskState::NodeFail => AttemptOutcome::SpawnFailed,
            _ => AttemptOutcome::Exited,
        },
        exit_code: view
            .and_then(|v| v.exit_code.as_deref())
            .and_then(|e| e.split(':').next())
            .and_then(|c| c.parse().ok()),
        seconds: view.and_then(|v| v.run_seconds).unwrap_or(0.0),
        written,
        stopped_at: None,
        stdout_log: log.display().to_string(),
        stderr_log: log.display().to_string(),
    }
}
