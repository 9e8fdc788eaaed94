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
//! slow controller makes a poll fail (and the next one retry), never hangs a call.//!
//! The map: [`task`] holds what Slurm says of an array and its tasks (placement,
//! states, views, the records kept in `cohort.json`); [`commands`] runs the four
//! client commands and parses their answers; [`script`] writes the job script.

mod commands;
pub(crate) mod script;
mod task;

pub(crate) use commands::{sbatch, scancel, scontrol_tasks, squeue};
pub(crate) use script::{job_script, ScriptParts};
pub(crate) use task::{counts, counts_line, TaskView};
pub(crate) use task::{ArrayRecord, Placement, TaskRecord, TaskState};
