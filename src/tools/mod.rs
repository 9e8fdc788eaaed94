//! One file per tool: argument parsing, execution and the documentation agents see.
//!
//! The protocol layer ([`crate::server`]) knows tools only through [`ToolBox`]: it
//! lists [`ToolSpec`]s and forwards calls with a [`CallContext`] (progress sink and
//! cancellation). Tool failures come back as [`ToolOutcome::Failure`] (an `isError`
//! result the model can read and correct); protocol faults as [`ToolCallError`].
//!
//! Long runs can also start in the background ([`ToolBox::start`]) under the
//! toolbox's one [`JobTable`]: `wait: false` answers with the run record, and the
//! server's MCP tasks are the same runs under the same ids.

pub mod inspect_label_map;
pub mod list_labels;
pub mod run_batch;
pub mod run_script;
pub mod runs;
pub mod slots;
mod toolbox;
pub mod verify_evidence;

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::jobs::{JobTable, RunRecord};

/// What `tools/list` shows for one tool.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub title: String,
    pub description: String,
    /// JSON Schema 2020-12, root `type: object`, flat, `additionalProperties: false`.
    pub input_schema: Value,
    /// JSON Schema of `structuredContent`, when the tool returns structured content.
    pub output_schema: Option<Value>,
    /// The tool only reads (MCP `readOnlyHint`).
    pub read_only: bool,
}

/// One progress report; forwarded as `notifications/progress` when the request
/// carried a `progressToken`.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub progress: f64,
    pub total: Option<f64>,
    pub message: Option<String>,
    /// The item in flight (a volume id), for displays that draw the count and the
    /// times themselves (the CLI's bar); `message` says the same in words.
    pub item: Option<String>,
}

/// Seconds left at the pace so far, as both `run_batch`'s progress message and the
/// CLI's bar estimate it. `done` counts what this run did (not reused volumes) and
/// `elapsed_s` runs from this run's start. The time to the first completion holds the
/// start-up (Python, MONAI's import, the model load), paid once; so once more was done
/// after `first_done` (`(elapsed_s, done)` when the first completion was seen), the
/// pace is measured from there on. `None` until something was done, or with nothing left.
pub fn estimate_seconds_left(
    done: f64,
    left: f64,
    elapsed_s: f64,
    first_done: Option<(f64, f64)>,
) -> Option<f64> {
    if !(done > 0.0 && left > 0.0 && elapsed_s > 0.0 && left.is_finite()) {
        return None;
    }
    let pace = match first_done {
        Some((at_s, at_done)) if done > at_done && elapsed_s > at_s => {
            (elapsed_s - at_s) / (done - at_done)
        }
        _ => elapsed_s / done,
    };
    Some(pace * left)
}

/// Where a running tool reports progress. Cheap to clone.
pub type ProgressSink = Arc<dyn Fn(Progress) + Send + Sync>;

/// What a tool call gets besides its arguments.
#[derive(Clone)]
pub struct CallContext {
    pub progress: ProgressSink,
    /// Cancelled when the client sends `notifications/cancelled` or the server shuts down.
    pub cancel: CancellationToken,
}

impl CallContext {
    /// A context that drops progress and is never cancelled (CLI use, tests).
    pub fn detached() -> Self {
        CallContext {
            progress: Arc::new(|_| {}),
            cancel: CancellationToken::new(),
        }
    }
}

/// The result of a tool call that reached the tool.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolOutcome {
    /// `isError: false`: `structured` conforms to the tool's output schema.
    Success { structured: Value, summary: String },
    /// `isError: true`: `message` names the argument, the rule and the fix;
    /// `structured` carries evidence when there is some (e.g. a failed upstream run).
    Failure {
        message: String,
        structured: Option<Value>,
    },
}

/// Faults that are the protocol's business, not the model's.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ToolCallError {
    /// JSON-RPC -32602.
    #[error("unknown tool '{0}'")]
    UnknownTool(String),
    /// JSON-RPC -32603, for this request only.
    #[error("internal error: {0}")]
    Internal(String),
}

/// What starting a call in the background gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Started {
    /// Running in the background under this record of the job table.
    Run(Box<RunRecord>),
    /// Answered at once, nothing left running: a refusal, or a tool that does not
    /// run in the background.
    Answered(ToolOutcome),
}

/// The set of tools a server exposes.
pub trait ToolBox: Send + Sync + 'static {
    fn list(&self) -> Vec<ToolSpec>;
    fn call(
        &self,
        name: &str,
        arguments: Map<String, Value>,
        ctx: CallContext,
    ) -> BoxFuture<'static, Result<ToolOutcome, ToolCallError>>;

    /// The job table behind background runs; `None` (the default) when this toolbox
    /// runs nothing in the background, and then every call is answered in full.
    fn jobs(&self) -> Option<Arc<JobTable>> {
        None
    }

    /// Start `name` in the background under [`ToolBox::jobs`]. The default runs the
    /// call to its end and answers with its outcome.
    fn start(
        &self,
        name: &str,
        arguments: Map<String, Value>,
    ) -> BoxFuture<'static, Result<Started, ToolCallError>> {
        let call = self.call(name, arguments, CallContext::detached());
        async move { call.await.map(Started::Answered) }.boxed()
    }
}

pub use toolbox::CtmrTools;

#[cfg(test)]
mod tests {
    use super::estimate_seconds_left;

    #[test]
    fn the_estimate_leaves_the_start_up_out_once_it_can() {
        // Nothing done, nothing left, no time: no estimate.
        assert_eq!(estimate_seconds_left(0.0, 3.0, 10.0, None), None);
        assert_eq!(estimate_seconds_left(3.0, 0.0, 10.0, None), None);
        assert_eq!(estimate_seconds_left(1.0, 3.0, 0.0, None), None);
        // One volume done after 20 s: the only pace there is.
        assert_eq!(
            estimate_seconds_left(1.0, 3.0, 20.0, Some((20.0, 1.0))),
            Some(60.0)
        );
        // 20 s to the first, 4 s for the next two: 2 s a volume.
        assert_eq!(
            estimate_seconds_left(3.0, 3.0, 24.0, Some((20.0, 1.0))),
            Some(6.0)
        );
        // Two masks seen in the same poll count from that poll on, not as one volume.
        assert_eq!(
            estimate_seconds_left(2.0, 3.0, 20.0, Some((20.0, 2.0))),
            Some(30.0)
        );
    }
}
