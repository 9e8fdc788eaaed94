//! `get_run`, `list_runs` and `cancel_run`, and `wait: false` for `run_script` /
//! `run_batch`: the call returns a run record at once and the run goes on in the
//! background, tracked by the [`crate::jobs::JobTable`]. MCP tasks are started the
//! same way ([`start_detached`]), so a task id is a run id.

use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::{Map, Value};

use crate::jobs::{JobTable, RunList};
use crate::tools::{CallContext, Progress, Started, ToolOutcome};

/// Whether the call asked not to wait; removes `wait` from the arguments either way
/// (the tools' own parsers do not know it).
pub fn take_wait(arguments: &mut Map<String, Value>) -> Result<bool, String> {
    match arguments.remove("wait") {
        None | Some(Value::Bool(true)) => Ok(true),
        Some(Value::Bool(false)) => Ok(false),
        Some(other) => Err(format!(
            "argument 'wait': must be a boolean, got {other}. Fix: pass true (default: return the result) or false (return a run id at once and poll get_run)"
        )),
    }
}

/// Start `run` in the background under a new run record for `pack_dir`. The run gets
/// its own cancellation token (the request that started it is over at once); a run
/// that panics is recorded as failed, never left `running`.
pub fn start_detached(
    jobs: Arc<JobTable>,
    tool: &str,
    pack_dir: PathBuf,
    result_file: &str,
    run: impl FnOnce(CallContext) -> BoxFuture<'static, ToolOutcome> + Send + 'static,
) -> Started {
    let (record, cancel) = match jobs.start(tool, &pack_dir, result_file) {
        Ok(r) => r,
        Err(e) => {
            return Started::Answered(ToolOutcome::Failure {
                message: format!(
                    "{tool}: cannot record the run in {} or the runs index {}: {e}; nothing ran",
                    pack_dir.display(),
                    jobs.index().display()
                ),
                structured: None,
            })
        }
    };
    let run_id = record.run_id.clone();
    let sink_jobs = jobs.clone();
    let sink_id = run_id.clone();
    let ctx = CallContext {
        progress: Arc::new(move |p: Progress| sink_jobs.progress(&sink_id, &p)),
        cancel: cancel.clone(),
    };
    let tool = tool.to_string();
    tokio::spawn(async move {
        let outcome = match tokio::spawn(run(ctx)).await {
            Ok(outcome) => outcome,
            Err(crash) => {
                tracing::error!(%tool, %run_id, error = %crash, "background run crashed");
                ToolOutcome::Failure {
                    message: format!("{tool} crashed: {crash}"),
                    structured: None,
                }
            }
        };
        jobs.finish(&run_id, &outcome, cancel.is_cancelled());
    });
    Started::Run(Box::new(record))
}

/// What a `wait: false` call answers: the run record, or the refusal.
pub fn started_outcome(started: Started) -> ToolOutcome {
    match started {
        Started::Answered(outcome) => outcome,
        Started::Run(record) => ToolOutcome::Success {
            summary: format!(
                "Started {} run {} (results in {}). Poll get_run with run_id \"{}\"; list_runs lists every run.",
                record.tool, record.run_id, record.pack_dir, record.run_id
            ),
            structured: serde_json::to_value(&record).expect("record serialises"),
        },
    }
}

/// `get_run`.
pub fn get_run(jobs: &JobTable, arguments: &Map<String, Value>) -> ToolOutcome {
    let Some(run_id) = arguments.get("run_id").and_then(Value::as_str) else {
        return ToolOutcome::Failure {
            message: "argument 'run_id': is required. Fix: pass the run_id a wait:false call returned (list_runs lists them)".into(),
            structured: None,
        };
    };
    match jobs.get(run_id) {
        Some(view) => {
            let summary = format!(
                "Run {} ({}): {:?}{}",
                view.run.run_id,
                view.run.tool,
                view.run.state,
                view.run
                    .progress
                    .as_ref()
                    .and_then(|p| p.message.as_deref())
                    .or(view.run.message.as_deref())
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            );
            ToolOutcome::Success {
                structured: serde_json::to_value(&view).expect("view serialises"),
                summary,
            }
        }
        None => ToolOutcome::Failure {
            message: format!(
                "argument 'run_id': no run '{run_id}' in {}. Fix: call list_runs for the known runs",
                jobs.index().display()
            ),
            structured: None,
        },
    }
}

/// `cancel_run`: cancel a live run, then answer like `get_run`.
pub fn cancel_run(jobs: &JobTable, arguments: &Map<String, Value>) -> ToolOutcome {
    let Some(run_id) = arguments.get("run_id").and_then(Value::as_str) else {
        return ToolOutcome::Failure {
            message: "argument 'run_id': is required. Fix: pass the run_id a wait:false call returned (list_runs lists them)".into(),
            structured: None,
        };
    };
    if !jobs.cancel(run_id) {
        return ToolOutcome::Failure {
            message: format!(
                "argument 'run_id': '{run_id}' is not running in this server (finished, interrupted or unknown). Fix: call get_run to see its state"
            ),
            structured: None,
        };
    }
    get_run(jobs, arguments)
}

/// `list_runs`.
pub fn list_runs(jobs: &JobTable) -> ToolOutcome {
    let list = RunList {
        runs_dir: jobs.index().display().to_string(),
        runs: jobs.list(),
    };
    ToolOutcome::Success {
        summary: format!("{} run(s) recorded in {}.", list.runs.len(), list.runs_dir),
        structured: serde_json::to_value(&list).expect("list serialises"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wait_is_a_boolean_and_is_removed() {
        let mut args = json!({"input": "/x", "wait": false})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(take_wait(&mut args), Ok(false));
        assert!(!args.contains_key("wait"));
        let mut args = json!({"input": "/x"}).as_object().unwrap().clone();
        assert_eq!(take_wait(&mut args), Ok(true));
        let mut args = json!({"wait": "no"}).as_object().unwrap().clone();
        assert!(take_wait(&mut args).unwrap_err().contains("'wait'"));
    }
}
