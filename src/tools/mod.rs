//! One file per tool: its typed request, its execution and its outcome, behind one
//! [`Tool`] trait; the [`registry`] dispatches by name and checks at start-up that the
//! manifest and the implementations agree.
//!
//! Adding a tool: write its file (an `Args` struct the manifest's arguments deserialise
//! into, a `Request`, a typed `Output` whose schema is the published output schema and
//! its `summary`, `impl Tool`), declare it in `skill_manifest.yaml`, and add one line to
//! `registry()` in `src/tools/toolbox.rs`, the one place that lists them. Nothing else
//! knows tool names (`tests/it/tool_names.rs` checks the string literals of `src/`).
//!
//! Beside the tools live only the pieces that exist because of the tools' interface:
//! [`write_gate`] (the one check for every path a tool argument names for writing,
//! driven by the manifest's `writes:`), [`schemas`] (the documents behind the tools'
//! `outputSchema`s) and the toolbox (the tools behind the server's [`ToolBox`]). The
//! machinery a run needs whichever tool starts it (run slots, the probe cache, warm
//! workers) is [`crate::runner`].
//!
//! The layers above (the MCP server, the CLI) know tools only through [`ToolBox`]: it
//! lists [`ToolSpec`]s and forwards calls with a [`CallContext`] (progress sink and
//! cancellation). Tool failures come back as [`ToolOutcome::Failure`] (an `isError`
//! result the model can read and correct); protocol faults as [`ToolCallError`].
//!
//! Long runs can also start in the background ([`ToolBox::start`]) under the
//! toolbox's one [`JobTable`]: `wait: false` answers with the run record, and the
//! server's MCP tasks are the same runs under the same ids.

pub mod inspect_label_map;
pub mod list_labels;
pub mod registry;
pub(crate) mod render_overlay;
pub mod run_batch;
pub mod run_script;
pub(crate) mod runs;
pub(crate) mod schemas;
mod toolbox;
pub(crate) mod verify_evidence;
pub(crate) mod write_gate;

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::{Map, Value};

pub(crate) use crate::call::ProgressSink;
pub use crate::call::{CallContext, Progress, ToolOutcome};
use crate::jobs::{JobTable, RunRecord};
pub use crate::manifest::ToolSpec;
pub use registry::Tool;

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
