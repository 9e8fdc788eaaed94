//! The MCP tasks extension (`io.modelcontextprotocol/tasks`, 2026-07-28 revision):
//! when a request declares the extension, a `tools/call` of a tool that writes (the
//! long runs: `run_script`, `run_batch`) is answered at once with `resultType: "task"`
//! and runs on; `tasks/get` reports it (the latest progress as `statusMessage`, the
//! `CallToolResult` once completed) and `tasks/cancel` cancels it like
//! `notifications/cancelled` would. Read-only tools stay synchronous.
//!
//! The table lives as long as the server process; runs that must outlive it use
//! `wait: false` and `get_run` (the on-disk job table).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rmcp::model::{CallToolResult, DetailedTask, Task, TaskPayload, TaskStatus};
use rmcp::ErrorData;
use tokio_util::sync::CancellationToken;

/// How often clients are asked to poll, in milliseconds.
pub(crate) const POLL_INTERVAL_MS: u64 = 1000;

struct Entry {
    task: Task,
    cancel: CancellationToken,
    outcome: Option<Result<CallToolResult, ErrorData>>,
}

/// The server's tasks.
#[derive(Default, Clone)]
pub(crate) struct TaskTable {
    entries: Arc<Mutex<HashMap<String, Entry>>>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

impl TaskTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new working task; `cancel` ends its call.
    pub(crate) fn create(&self, cancel: CancellationToken) -> Task {
        let id = format!("task-{}", uuid::Uuid::new_v4().simple());
        let at = now();
        let task = Task::new(id.clone(), TaskStatus::Working, at.clone(), at)
            .with_poll_interval_ms(POLL_INTERVAL_MS);
        let mut task = task;
        task.ttl_ms = None;
        self.lock().insert(
            id,
            Entry {
                task: task.clone(),
                cancel,
                outcome: None,
            },
        );
        task
    }

    /// The latest progress message of a working task.
    pub(crate) fn status_message(&self, id: &str, message: String) {
        if let Some(e) = self.lock().get_mut(id) {
            if e.task.status == TaskStatus::Working {
                e.task.status_message = Some(message);
                e.task.last_updated_at = now();
            }
        }
    }

    /// The call ended.
    pub(crate) fn finish(&self, id: &str, outcome: Result<CallToolResult, ErrorData>) {
        if let Some(e) = self.lock().get_mut(id) {
            e.task.last_updated_at = now();
            e.task.status = if e.cancel.is_cancelled() {
                TaskStatus::Cancelled
            } else if outcome.is_ok() {
                TaskStatus::Completed
            } else {
                TaskStatus::Failed
            };
            e.outcome = Some(outcome);
        }
    }

    /// Request cancellation; false when there is no such task.
    pub(crate) fn cancel(&self, id: &str) -> bool {
        match self.lock().get(id) {
            Some(e) => {
                e.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// The task with its payload, as `tasks/get` answers.
    pub(crate) fn get(&self, id: &str) -> Option<DetailedTask> {
        let entries = self.lock();
        let e = entries.get(id)?;
        let payload = match (&e.outcome, e.task.status) {
            (None, _) => TaskPayload::Working,
            (Some(_), TaskStatus::Cancelled) => TaskPayload::Cancelled,
            (Some(Ok(result)), _) => TaskPayload::Completed {
                result: to_object(result),
            },
            (Some(Err(error)), _) => TaskPayload::Failed {
                error: to_object(error),
            },
        };
        Some(DetailedTask::new(e.task.clone(), payload))
    }
}

fn to_object(value: &impl serde::Serialize) -> rmcp::model::JsonObject {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::Object(map)) => map,
        Ok(other) => {
            let mut map = rmcp::model::JsonObject::new();
            map.insert("value".into(), other);
            map
        }
        Err(e) => {
            let mut map = rmcp::model::JsonObject::new();
            map.insert("error".into(), serde_json::Value::String(e.to_string()));
            map
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::ContentBlock;

    #[test]
    fn a_task_moves_from_working_to_its_result() {
        let table = TaskTable::default();
        let task = table.create(CancellationToken::new());
        assert_eq!(
            table.get(&task.task_id).unwrap().status(),
            TaskStatus::Working
        );
        table.status_message(&task.task_id, "1/2 volumes done".into());
        let got = table.get(&task.task_id).unwrap();
        assert_eq!(got.task.status_message.as_deref(), Some("1/2 volumes done"));
        table.finish(
            &task.task_id,
            Ok(CallToolResult::success(vec![ContentBlock::text("done")])),
        );
        let got = table.get(&task.task_id).unwrap();
        assert_eq!(got.status(), TaskStatus::Completed);
        match got.payload {
            TaskPayload::Completed { result } => {
                assert_eq!(result["content"][0]["text"], "done");
            }
            other => panic!("{other:?}"),
        }
        assert!(table.get("task-none").is_none());
        assert!(!table.cancel("task-none"));
    }

    #[test]
    fn a_cancelled_task_reports_cancelled() {
        let table = TaskTable::default();
        let token = CancellationToken::new();
        let task = table.create(token.clone());
        assert!(table.cancel(&task.task_id));
        assert!(token.is_cancelled());
        table.finish(&task.task_id, Ok(CallToolResult::error(vec![])));
        assert_eq!(
            table.get(&task.task_id).unwrap().status(),
            TaskStatus::Cancelled
        );
    }
}
