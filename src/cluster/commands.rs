//! The four Slurm client commands (`sbatch`, `squeue`, `scontrol`, `scancel`), each
//! run without a shell and with a time limit, and the parsers of their answers.
//! Apart from the data so what touches the controller reads in one place.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use super::{TaskState, TaskView};

/// How long one Slurm client command may take before the call counts as failed.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

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
    use crate::cluster::{counts, counts_line, Placement};

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
