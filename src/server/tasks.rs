//! The MCP tasks extension (`io.modelcontextprotocol/tasks`, 2026-07-28 revision) as
//! a view of the toolbox's job table ([`crate::jobs`]).
//!
//! When a request declares the extension, a `tools/call` of a tool that writes (the
//! long runs: `run_script`, `run_batch`) starts in the background like a `wait: false`
//! call and is answered at once with `resultType: "task"`; the task id is the run id.
//! `tasks/get` reads the run (its latest progress as `statusMessage`, the
//! `CallToolResult` the waited call would have returned once it is done) and
//! `tasks/cancel` cancels it. Because runs are recorded on disk, a task outlives the
//! server that started it: after a restart `tasks/get` still returns a finished
//! task's result, and a task that was in flight when its server died is `failed`.
//! Read-only tools stay synchronous. The mapping here is pure.

use rmcp::model::{DetailedTask, JsonObject, Task, TaskPayload, TaskStatus};
use rmcp::ErrorData;
use serde_json::json;

use super::handler::result_from_outcome;
use crate::jobs::{RunRecord, RunState, RunView};
use crate::tools::ToolOutcome;

/// How often clients are asked to poll, in milliseconds.
pub(crate) const POLL_INTERVAL_MS: u64 = 1000;

fn status_of(state: RunState) -> TaskStatus {
    match state {
        RunState::Running => TaskStatus::Working,
        // A tool result with `isError: true` is still a completed task.
        RunState::Succeeded | RunState::Failed => TaskStatus::Completed,
        RunState::Cancelled => TaskStatus::Cancelled,
        // The call never produced a result: an error, as a JSON-RPC error would be.
        RunState::Interrupted => TaskStatus::Failed,
    }
}

/// The task a run is.
pub(crate) fn task_of(run: &RunRecord) -> Task {
    let progress = run.progress.as_ref();
    let updated = run
        .finished_at
        .clone()
        .or_else(|| progress.map(|p| p.at.clone()))
        .unwrap_or_else(|| run.started_at.clone());
    let mut task = Task::new(
        run.run_id.clone(),
        status_of(run.state),
        run.started_at.clone(),
        updated,
    )
    .with_poll_interval_ms(POLL_INTERVAL_MS);
    task.ttl_ms = None;
    task.status_message = match run.state {
        RunState::Running => progress.and_then(|p| p.message.clone()),
        _ => run.message.clone(),
    };
    task
}

/// The task with its payload, as `tasks/get` answers.
pub(crate) fn detailed(view: &RunView) -> DetailedTask {
    let run = &view.run;
    let message = run.message.clone().unwrap_or_default();
    let payload = match run.state {
        RunState::Running => TaskPayload::Working,
        RunState::Cancelled => TaskPayload::Cancelled,
        RunState::Succeeded => TaskPayload::Completed {
            result: to_object(&result_from_outcome(match &view.result {
                Some(structured) => ToolOutcome::Success {
                    structured: structured.clone(),
                    summary: message,
                    images: Vec::new(),
                    brief: Default::default(),
                },
                // Finished without error, but its result document is gone or unreadable.
                None => ToolOutcome::Failure {
                    message: format!(
                        "{message}; but its result document {}/{} can no longer be read",
                        run.pack_dir, run.result_file
                    ),
                    structured: None,
                    brief: Default::default(),
                },
            })),
        },
        RunState::Failed => TaskPayload::Completed {
            result: to_object(&result_from_outcome(ToolOutcome::Failure {
                message,
                structured: view.result.clone(),
                brief: Default::default(),
            })),
        },
        RunState::Interrupted => TaskPayload::Failed {
            error: to_object(&ErrorData::internal_error(
                message,
                Some(json!({ "runId": run.run_id, "packDir": run.pack_dir })),
            )),
        },
    };
    DetailedTask::new(task_of(run), payload)
}

fn to_object(value: &impl serde::Serialize) -> JsonObject {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::Object(map)) => map,
        Ok(other) => JsonObject::from_iter([("value".to_string(), other)]),
        Err(e) => JsonObject::from_iter([(
            "error".to_string(),
            serde_json::Value::String(e.to_string()),
        )]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::ProgressView;

    fn run(state: RunState) -> RunRecord {
        RunRecord {
            schema_version: crate::jobs::RUN_RECORD_SCHEMA_VERSION.into(),
            run_id: "run-1".into(),
            tool: "run_batch".into(),
            state,
            pack_dir: "/out/cohort".into(),
            result_file: "cohort.json".into(),
            result_written: state != RunState::Running,
            pid: 42,
            started_at: "2026-11-29T10:00:00+00:00".into(),
            finished_at: (state != RunState::Running).then(|| "2026-11-29T10:05:00+00:00".into()),
            message: (state != RunState::Running).then(|| "2/2 volumes succeeded".into()),
            progress: None,
            child: None,
        }
    }

    #[test]
    fn a_running_run_is_a_working_task_with_its_latest_progress() {
        let mut record = run(RunState::Running);
        record.progress = Some(ProgressView {
            progress: 1.0,
            total: Some(2.0),
            message: Some("1/2 volumes done".into()),
            at: "2026-11-29T10:01:00+00:00".into(),
        });
        let task = detailed(&RunView {
            run: record,
            result: None,
        });
        assert_eq!(task.status(), TaskStatus::Working);
        assert_eq!(task.task.task_id, "run-1");
        assert_eq!(
            task.task.status_message.as_deref(),
            Some("1/2 volumes done")
        );
        assert_eq!(task.task.created_at, "2026-11-29T10:00:00+00:00");
        assert_eq!(task.task.last_updated_at, "2026-11-29T10:01:00+00:00");
        assert_eq!(task.task.poll_interval_ms, Some(POLL_INTERVAL_MS));
        assert!(matches!(task.payload, TaskPayload::Working));
    }

    #[test]
    fn a_finished_run_is_completed_with_the_waited_calls_result() {
        let cohort = json!({"status": "succeeded", "volumes": []});
        let task = detailed(&RunView {
            run: run(RunState::Succeeded),
            result: Some(cohort.clone()),
        });
        assert_eq!(task.status(), TaskStatus::Completed);
        assert_eq!(task.task.last_updated_at, "2026-11-29T10:05:00+00:00");
        let TaskPayload::Completed { result } = task.payload else {
            panic!("completed")
        };
        assert_eq!(result["isError"], false);
        assert_eq!(result["structuredContent"], cohort);
        assert_eq!(result["content"][0]["text"], "2/2 volumes succeeded");
    }

    #[test]
    fn a_failed_run_is_a_completed_task_whose_result_is_an_error() {
        let evidence = json!({"status": "failed"});
        let task = detailed(&RunView {
            run: run(RunState::Failed),
            result: Some(evidence.clone()),
        });
        assert_eq!(task.status(), TaskStatus::Completed);
        let TaskPayload::Completed { result } = task.payload else {
            panic!("completed")
        };
        assert_eq!(result["isError"], true);
        assert_eq!(result["structuredContent"], evidence);
    }

    #[test]
    fn a_succeeded_run_without_its_result_document_says_so() {
        let task = detailed(&RunView {
            run: run(RunState::Succeeded),
            result: None,
        });
        let TaskPayload::Completed { result } = task.payload else {
            panic!("completed")
        };
        assert_eq!(result["isError"], true);
        assert!(result["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("/out/cohort/cohort.json"));
    }

    #[test]
    fn cancelled_and_interrupted_runs() {
        let task = detailed(&RunView {
            run: run(RunState::Cancelled),
            result: None,
        });
        assert_eq!(task.status(), TaskStatus::Cancelled);
        let mut record = run(RunState::Interrupted);
        record.message = Some("the server (pid 42) stopped".into());
        let task = detailed(&RunView {
            run: record,
            result: None,
        });
        assert_eq!(task.status(), TaskStatus::Failed);
        let TaskPayload::Failed { error } = task.payload else {
            panic!("failed")
        };
        assert_eq!(error["code"], -32603);
        assert_eq!(error["message"], "the server (pid 42) stopped");
        assert_eq!(error["data"]["runId"], "run-1");
    }
}
