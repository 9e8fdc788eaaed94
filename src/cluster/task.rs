//! What Slurm says of an array and its tasks, as we keep it: where a task ran, the
//! states it goes through (and which are final), one task's view from `squeue` or
//! `scontrol`, and the records `cohort.json` keeps. Plain data, apart from the
//! commands that fill it.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
