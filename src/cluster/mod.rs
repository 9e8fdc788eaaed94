//! Slurm, as the scheduler a cohort is handed to: where a task ran ([`Placement`]),
//! the states an array task goes through ([`TaskState`]), the job script
//! ([`job_script`]) and the four commands we use (`sbatch`, `squeue`, `scontrol`,
//! `scancel`).
//!
//! Why these and not `sacct`: accounting (slurmdbd) is optional on real clusters and
//! absent on a one-node test cluster, where `sacct` only says it is disabled. `squeue
//! -r -t all` lists every array task, finished ones included for `MinJobAge` seconds,
//! and `scontrol show job` adds each task's exit code, so the coordinator works with
//! or without accounting. Every command runs without a shell, with a time limit: a
//! slow controller makes a poll fail (and the next one retry), never hangs a call.

pub(crate) mod script;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub(crate) use script::{job_script, ScriptParts};

/// How long one Slurm client command may take before the call counts as failed.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a Slurm array task ran, from the `SLURM_*` variables Slurm sets in the task.
/// Recorded in each evidence pack written inside a Slurm job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Placement {
    /// `SLURM_JOB_ID`: this task's own job id.
    pub job_id: String,
    /// `SLURM_ARRAY_JOB_ID`: the array's id (what `scancel` takes), when an array task.
    pub array_job_id: Option<String>,
    /// `SLURM_ARRAY_TASK_ID`.
    pub array_task_id: Option<u32>,
    /// `SLURMD_NODENAME`.
    pub node: Option<String>,
    /// `SLURM_JOB_GPUS` (or `CUDA_VISIBLE_DEVICES`): the GPUs Slurm gave the task.
    pub gpus: Option<String>,
    /// `SLURM_JOB_PARTITION`.
    pub partition: Option<String>,
}

impl Placement {
    /// The placement of this process, when it runs inside a Slurm job.
    pub(crate) fn from_env() -> Option<Placement> {
        Self::from_vars(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
    }

    pub(crate) fn from_vars(var: impl Fn(&str) -> Option<String>) -> Option<Placement> {
        Some(Placement {
            job_id: var("SLURM_JOB_ID")?,
            array_job_id: var("SLURM_ARRAY_JOB_ID"),
            array_task_id: var("SLURM_ARRAY_TASK_ID").and_then(|v| v.parse().ok()),
            node: var("SLURMD_NODENAME"),
            gpus: var("SLURM_JOB_GPUS").or_else(|| var("CUDA_VISIBLE_DEVICES")),
            partition: var("SLURM_JOB_PARTITION"),
        })
    }
}

/// The state of one array task, as `squeue -t all` / `scontrol` name it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Pending,
    Configuring,
    Running,
    Completing,
    Suspended,
    Requeued,
    Resizing,
    Completed,
    Failed,
    Cancelled,
    Timeout,
    NodeFail,
    Preempted,
    OutOfMemory,
    BootFail,
    Deadline,
    /// A word this version does not know (kept as not finished, so we keep polling).
    Unknown,
}

impl TaskState {
    pub fn parse(word: &str) -> TaskState {
        // scontrol may add a suffix ("CANCELLED by 0" is squeue's %T "CANCELLED").
        let word = word.split_whitespace().next().unwrap_or_default();
        match word.trim_end_matches('+').to_ascii_uppercase().as_str() {
            "PENDING" | "PD" => TaskState::Pending,
            "CONFIGURING" | "CF" => TaskState::Configuring,
            "RUNNING" | "R" => TaskState::Running,
            "COMPLETING" | "CG" => TaskState::Completing,
            "SUSPENDED" | "S" | "STOPPED" | "ST" => TaskState::Suspended,
            "REQUEUED" | "RQ" | "REQUEUE_HOLD" | "REQUEUE_FED" => TaskState::Requeued,
            "RESIZING" | "RS" => TaskState::Resizing,
            "COMPLETED" | "CD" => TaskState::Completed,
            "FAILED" | "F" => TaskState::Failed,
            "CANCELLED" | "CA" => TaskState::Cancelled,
            "TIMEOUT" | "TO" => TaskState::Timeout,
            "NODE_FAIL" | "NF" => TaskState::NodeFail,
            "PREEMPTED" | "PR" => TaskState::Preempted,
            "OUT_OF_MEMORY" | "OOM" => TaskState::OutOfMemory,
            "BOOT_FAIL" | "BF" => TaskState::BootFail,
            "DEADLINE" | "DL" => TaskState::Deadline,
            _ => TaskState::Unknown,
        }
    }

    /// The task will not run again (unless someone requeues it by hand).
    pub fn finished(self) -> bool {
        matches!(
            self,
            TaskState::Completed
                | TaskState::Failed
                | TaskState::Cancelled
                | TaskState::Timeout
                | TaskState::NodeFail
                | TaskState::Preempted
                | TaskState::OutOfMemory
                | TaskState::BootFail
                | TaskState::Deadline
        )
    }

    /// The word `squeue` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Configuring => "configuring",
            TaskState::Running => "running",
            TaskState::Completing => "completing",
            TaskState::Suspended => "suspended",
            TaskState::Requeued => "requeued",
            TaskState::Resizing => "resizing",
            TaskState::Completed => "completed",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
            TaskState::Timeout => "timeout",
            TaskState::NodeFail => "node_fail",
            TaskState::Preempted => "preempted",
            TaskState::OutOfMemory => "out_of_memory",
            TaskState::BootFail => "boot_fail",
            TaskState::Deadline => "deadline",
            TaskState::Unknown => "unknown",
        }
    }
}

/// One array task as the scheduler reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct TaskView {
    pub task_id: u32,
    pub state: TaskState,
    /// Slurm's reason (`None`, `JobArrayTaskLimit`, `Priority`, ...).
    pub reason: Option<String>,
    /// `CODE:SIGNAL` from `scontrol` once finished.
    pub exit_code: Option<String>,
    pub node: Option<String>,
    /// `RunTime` from `scontrol`, in seconds.
    pub run_seconds: Option<f64>,
}

/// The array a cohort ran as, as `cohort.json` records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ArrayRecord {
    pub job_id: String,
    /// The exact `sbatch` argv (no shell).
    pub sbatch: Vec<String>,
    /// The job script (`<output_root>/.slurm/<run_id>/job.sh`) and its template.
    pub script: String,
    pub template: String,
    pub script_text: String,
    /// Final task counts per state.
    pub task_counts: BTreeMap<String, usize>,
    pub tasks: Vec<TaskRecord>,
}

/// One array task: its shard, how it ended, where its log is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskRecord {
    pub task_id: u32,
    pub volumes: Vec<String>,
    pub state: TaskState,
    pub reason: Option<String>,
    pub exit_code: Option<String>,
    pub node: Option<String>,
    pub log: String,
}

/// Task counts per state word, for progress lines and `get_run`.
pub(crate) fn counts(tasks: &[TaskView]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for t in tasks {
        *out.entry(t.state.as_str().to_string()).or_default() += 1;
    }
    out
}

/// `2 running, 1 pending, 3 completed`.
pub(crate) fn counts_line(counts: &BTreeMap<String, usize>) -> String {
    let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    if parts.is_empty() {
        "no task listed yet".into()
    } else {
        parts.join(", ")
    }
}

/// A failed Slurm command, with what it printed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SlurmError(pub String);

impl std::fmt::Display for SlurmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Run one Slurm client command (no shell), with [`COMMAND_TIMEOUT`]; its stdout.
pub(crate) async fn command(program: &str, args: &[String]) -> Result<String, SlurmError> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let shown = format!("{program} {}", args.join(" "));
    let child = cmd.spawn().map_err(|e| {
        SlurmError(format!(
            "cannot run `{program}`: {e}. Fix: install the Slurm client commands on this machine \
             (Debian: apt-get install slurm-client; tests: bash scripts/setup-slurm.sh)"
        ))
    })?;
    let out = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| SlurmError(format!("`{shown}` took over {COMMAND_TIMEOUT:?}")))?
        .map_err(|e| SlurmError(format!("`{shown}`: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(SlurmError(format!(
            "`{shown}` failed ({}): {}",
            out.status,
            err.trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `sbatch --parsable ARGS SCRIPT`: the new job's id.
pub(crate) async fn sbatch(args: &[String], script: &Path) -> Result<String, SlurmError> {
    let mut all = vec!["--parsable".to_string()];
    all.extend_from_slice(args);
    all.push(script.display().to_string());
    let out = command("sbatch", &all).await?;
    // `--parsable` prints `JOBID` or `JOBID;CLUSTER`.
    let id = out.trim().split(';').next().unwrap_or_default().to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(SlurmError(format!(
            "sbatch printed no job id: {:?}",
            out.trim()
        )));
    }
    Ok(id)
}

/// Every task of array `job` (finished ones too, while the controller keeps them).
pub(crate) async fn squeue(job: &str) -> Result<Vec<TaskView>, SlurmError> {
    let args: Vec<String> = ["-r", "-t", "all", "-h", "-j", job, "-o", "%K|%T|%r|%N"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    match command("squeue", &args).await {
        Ok(out) => Ok(parse_squeue(&out)),
        // Purged from the controller (after MinJobAge): nothing listed.
        Err(SlurmError(m)) if m.contains("Invalid job id") => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Lines `TASK|STATE|REASON|NODES`.
pub(crate) fn parse_squeue(out: &str) -> Vec<TaskView> {
    out.lines()
        .filter_map(|line| {
            let mut f = line.trim().split('|');
            let task_id = f.next()?.trim().parse().ok()?;
            let state = TaskState::parse(f.next()?);
            let reason = f
                .next()
                .map(str::trim)
                .filter(|r| !r.is_empty() && *r != "None");
            let node = f.next().map(str::trim).filter(|n| !n.is_empty());
            Some(TaskView {
                task_id,
                state,
                reason: reason.map(str::to_string),
                exit_code: None,
                node: node.map(str::to_string),
                run_seconds: None,
            })
        })
        .collect()
}

/// `scontrol show job -o JOB`: per task, state, reason, exit code and node.
pub(crate) async fn scontrol_tasks(job: &str) -> Result<Vec<TaskView>, SlurmError> {
    let args = vec!["show".into(), "job".into(), "-o".into(), job.to_string()];
    Ok(parse_scontrol(&command("scontrol", &args).await?))
}

/// One line per job record, `Key=Value` pairs separated by spaces.
pub(crate) fn parse_scontrol(out: &str) -> Vec<TaskView> {
    out.lines()
        .filter_map(|line| {
            let fields: BTreeMap<&str, &str> = line
                .split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .collect();
            let task_id = fields.get("ArrayTaskId")?.parse().ok()?;
            let keep = |k: &str| {
                fields
                    .get(k)
                    .filter(|v| !v.is_empty() && !matches!(**v, "None" | "(null)"))
                    .map(|v| v.to_string())
            };
            Some(TaskView {
                task_id,
                state: TaskState::parse(fields.get("JobState")?),
                reason: keep("Reason"),
                exit_code: keep("ExitCode"),
                node: keep("NodeList"),
                run_seconds: fields.get("RunTime").and_then(|t| duration_seconds(t)),
            })
        })
        .collect()
}

/// `[D-]HH:MM:SS` (or `MM:SS`) → seconds.
pub(crate) fn duration_seconds(text: &str) -> Option<f64> {
    let (days, rest) = match text.split_once('-') {
        Some((d, r)) => (d.parse::<f64>().ok()?, r),
        None => (0.0, text),
    };
    let mut secs = 0.0;
    for part in rest.split(':') {
        secs = secs * 60.0 + part.parse::<f64>().ok()?;
    }
    Some(days * 86400.0 + secs)
}

/// `scancel JOB` (the whole array) or `scancel JOB_TASK`.
pub(crate) async fn scancel(target: &str) -> Result<(), SlurmError> {
    command("scancel", &[target.to_string()]).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_lines_become_tasks() {
        let t = parse_squeue("0|RUNNING|None|node1\n2|PENDING|JobArrayTaskLimit|\nbad\n");
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].state, TaskState::Running);
        assert_eq!(t[0].node.as_deref(), Some("node1"));
        assert_eq!(t[1].reason.as_deref(), Some("JobArrayTaskLimit"));
        assert!(!t[1].state.finished());
        assert_eq!(counts_line(&counts(&t)), "1 pending, 1 running");
    }

    #[test]
    fn scontrol_records_carry_exit_codes() {
        let t = parse_scontrol(
            "JobId=5 ArrayJobId=4 ArrayTaskId=1 JobState=CANCELLED Reason=None ExitCode=0:15 NodeList=n1\n\
             JobId=4 ArrayJobId=4 ArrayTaskId=2-3 JobState=PENDING Reason=Priority\n",
        );
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].state, TaskState::Cancelled);
        assert_eq!(t[0].exit_code.as_deref(), Some("0:15"));
        assert!(t[0].state.finished());
        assert_eq!(duration_seconds("1-00:01:02"), Some(86462.0));
        assert_eq!(duration_seconds("00:00:03"), Some(3.0));
    }

    #[test]
    fn placement_needs_a_job_id() {
        assert_eq!(Placement::from_vars(|_| None), None);
        let p = Placement::from_vars(|k| match k {
            "SLURM_JOB_ID" => Some("9".into()),
            "SLURM_ARRAY_TASK_ID" => Some("2".into()),
            "CUDA_VISIBLE_DEVICES" => Some("0".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(p.array_task_id, Some(2));
        assert_eq!(p.gpus.as_deref(), Some("0"));
    }
}
