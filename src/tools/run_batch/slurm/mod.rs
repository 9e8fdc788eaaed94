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

pub(crate) mod options;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use self::options::SlurmOptions;
use super::request::BatchRunRequest;
use super::{Entry, RunBatch};
use crate::call::{CallContext, Progress};
use crate::cluster::{self, ArrayRecord, ScriptParts, TaskRecord, TaskState, TaskView};
use crate::evidence::cohort::{self, Attempt, AttemptOutcome, VolumeRow, VolumeStatus};
use crate::evidence::Evidence;
use crate::tools::run_script::run::{self as single, StartFailure};

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

/// One shard: a task id and the entries it runs.
struct Shard {
    task_id: u32,
    members: Vec<usize>,
}

/// What the submission decided, for following and summing up.
struct Submitted {
    job_id: String,
    dir: PathBuf,
    sbatch: Vec<String>,
    script: PathBuf,
    script_text: String,
    command: Vec<String>,
    shards: Vec<Shard>,
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

/// Shards, inputs lists, the script; then `sbatch`.
async fn submit(
    batch: &RunBatch,
    entries: &[Entry],
    pending: &[usize],
    options: &SlurmOptions,
    request: &BatchRunRequest,
    run_id: &str,
) -> Result<Submitted, String> {
    let config = &batch.config;
    let exe = config.exe.clone().ok_or(
        "the Slurm executor needs this program's own path (to run it in each task), and it is unknown",
    )?;
    let python = single::find_python(config).map_err(|StartFailure(m)| m)?;
    let dir = request.output_root.join(".slurm").join(run_id);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let shards: Vec<Shard> = pending
        .chunks(options.shard_size.max(1))
        .enumerate()
        .map(|(k, c)| Shard {
            task_id: k as u32,
            members: c.to_vec(),
        })
        .collect();
    for shard in &shards {
        write_shard(&dir, shard, entries).map_err(|e| format!("cannot write a shard list: {e}"))?;
    }
    let command = task_command(&exe, &python.path, request, &entries[pending[0]]);
    let parts = ScriptParts {
        env: script_env(config, &entries[pending[0]].gated.root),
        prologue: config.slurm_prologue.clone(),
        shard_dir: dir.clone(),
        command: command.clone(),
    };
    let script_text = cluster::job_script(&parts);
    let script = dir.join("job.sh");
    crate::atomic::write(&script, script_text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", script.display()))?;
    let mut sbatch = vec![
        format!("--array={}", options.array_spec(shards.len())),
        format!("--job-name=ctmr-{}", short(run_id)),
        format!("--output={}", dir.join("task-%a.log").display()),
        format!("--chdir={}", dir.display()),
    ];
    sbatch.extend(options.sbatch_args());
    let job_id = cluster::sbatch(&sbatch, &script)
        .await
        .map_err(|e| format!("the Slurm array could not be submitted: {e}"))?;
    let submission = serde_json::json!({
        "job_id": job_id, "run_id": run_id, "sbatch": sbatch,
        "shards": shards.iter().map(|s| s.members.iter().map(|i| entries[*i].volume.id.clone()).collect::<Vec<_>>()).collect::<Vec<_>>(),
    });
    let _ = crate::atomic::write_json(&dir.join("submission.json"), &submission);
    tracing::info!(
        "run_batch {run_id}: Slurm array job {job_id}, {} task(s)",
        shards.len()
    );
    Ok(Submitted {
        job_id,
        dir,
        sbatch,
        script,
        script_text,
        command,
        shards,
    })
}

fn short(run_id: &str) -> String {
    run_id.chars().take(12).collect()
}

/// `shard-<K>.inputs`: the shard's input paths, NUL-separated. An input goes by its
/// own path when the task's `run-batch` gives it the same id as the cohort did;
/// otherwise (same stems across shards) by a link `inputs/<id>.nii[.gz]` to it.
fn write_shard(dir: &Path, shard: &Shard, entries: &[Entry]) -> std::io::Result<()> {
    let originals: Vec<PathBuf> = shard
        .members
        .iter()
        .map(|i| entries[*i].volume.input.clone())
        .collect();
    let same_ids = super::plan::assign_ids(&originals)
        .iter()
        .zip(&shard.members)
        .all(|(v, i)| v.id == entries[*i].volume.id);
    let mut list = Vec::new();
    for (i, original) in shard.members.iter().zip(&originals) {
        let path = if same_ids {
            original.clone()
        } else {
            let links = dir.join("inputs");
            std::fs::create_dir_all(&links)?;
            let link = links.join(entries[*i].volume.staged_name());
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(original, &link)?;
            link
        };
        list.extend_from_slice(path.as_os_str().as_encoded_bytes());
        list.push(0);
    }
    crate::atomic::write(&dir.join(format!("shard-{}.inputs", shard.task_id)), &list)
}

/// `ctmr-skill --python PY --progress plain run-batch ...` with the request's settings
/// (prompts already resolved to ids), without inputs.
fn task_command(
    exe: &Path,
    python: &Path,
    request: &BatchRunRequest,
    first: &Entry,
) -> Vec<String> {
    let s = &request.settings;
    let mut c: Vec<String> = vec![
        exe.display().to_string(),
        "--python".into(),
        python.display().to_string(),
        "--progress".into(),
        "plain".into(),
        "run-batch".into(),
        "--output-root".into(),
        request.output_root.display().to_string(),
        "--modality".into(),
        s.modality.as_str().into(),
        "--device".into(),
        s.device.as_str().into(),
        "--upstream-root".into(),
        first.gated.root.display().to_string(),
        "--timeout-seconds".into(),
        s.timeout.as_secs_f64().to_string(),
    ];
    let mut flag = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            c.push(format!("--{name}"));
            c.push(v);
        }
    };
    let join = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    let prompts = first.gated.prompts.clone().filter(|p| !p.is_empty());
    flag("label-prompts", prompts.as_deref().map(join));
    flag("patch-size", s.patch_size.as_deref().map(join));
    flag("sw-batch-size", s.sw_batch_size.map(|n| n.to_string()));
    for (on, name) in [
        (s.preprocessed_brain_input, "--preprocessed-brain-input"),
        (s.cpu_postprocessing, "--cpu-postprocessing"),
        (s.tensorrt, "--tensorrt"),
    ] {
        if on {
            c.push(name.into());
        }
    }
    c
}

/// The operator configuration every task starts with.
fn script_env(config: &crate::config::Config, root: &Path) -> Vec<(String, String)> {
    let dirs: Vec<String> = config
        .allowed_dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    let mut env = vec![
        (
            crate::config::RUNS_DIR_ENV.to_string(),
            config.runs_dir.display().to_string(),
        ),
        (crate::config::ALLOWED_DIRS_ENV.to_string(), dirs.join(":")),
        (
            crate::config::BUNDLE_ROOTS_ENV.to_string(),
            root.display().to_string(),
        ),
    ];
    if config.require_sandbox {
        env.push((crate::config::REQUIRE_SANDBOX_ENV.to_string(), "1".into()));
    }
    env
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

/// The entry's evidence, when this array's task wrote it.
fn written_by(job_id: &str, entry: &Entry) -> Option<Evidence> {
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
fn merge(tasks: &mut Vec<TaskView>, details: Vec<TaskView>) {
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
fn conclude(
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

fn report(ctx: &CallContext, done: usize, total: usize, message: String) {
    (ctx.progress)(Progress {
        progress: done as f64,
        total: Some(total as f64),
        message: Some(message),
        item: None,
    });
}
