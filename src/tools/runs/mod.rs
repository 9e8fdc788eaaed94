//! The run tools ([`get_run`], [`list_runs`], [`cancel_run`], one file each), and
//! `wait: false` for the tools that run in the background: the call returns a run
//! record at once and the run goes on in the background, tracked by the
//! [`crate::jobs::JobTable`]. MCP tasks are started the same way ([`start_detached`]),
//! so a task id is a run id.

pub(crate) mod cancel_run;
pub(crate) mod get_run;
pub(crate) mod list_runs;

pub(crate) use cancel_run::CancelRun;
pub(crate) use get_run::GetRun;
pub(crate) use list_runs::ListRuns;

use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::Deserialize;

use super::registry::Tool;
use super::Started;
use crate::call::{Brief, CallContext, Progress, ToolOutcome};
use crate::jobs::JobTable;
use crate::manifest::args::ArgError;

/// Start `run` in the background under a new run record for `pack_dir`. The run gets
/// its own cancellation token (the request that started it is over at once); a run
/// that panics is recorded as failed, never left `running`.
pub(crate) fn start_detached(
    jobs: Arc<JobTable>,
    tool: &str,
    pack_dir: PathBuf,
    result_file: &str,
    run: impl FnOnce(CallContext) -> BoxFuture<'static, ToolOutcome> + Send + 'static,
) -> Started {
    let (record, cancel) = match jobs.start(tool, &pack_dir, result_file) {
        Ok(r) => r,
        Err(e) => {
            return Started::Answered(ToolOutcome::failure(format!(
                "{tool}: cannot record the run in {} or the runs index {}: {e}; nothing ran",
                pack_dir.display(),
                jobs.index().display()
            )))
        }
    };
    let run_id = record.run_id.clone();
    let sink_jobs = jobs.clone();
    let sink_id = run_id.clone();
    let child_jobs = jobs.clone();
    let mut ctx = CallContext::new(
        Arc::new(move |p: Progress| sink_jobs.progress(&sink_id, &p)),
        cancel.clone(),
    );
    let child_id = run_id.clone();
    ctx.children = Arc::new(move |pid| child_jobs.child(&child_id, pid));
    let tool = tool.to_string();
    tokio::spawn(async move {
        let outcome = match tokio::spawn(run(ctx)).await {
            Ok(outcome) => outcome,
            Err(crash) => {
                tracing::error!(%tool, %run_id, error = %crash, "background run crashed");
                ToolOutcome::failure(format!("{tool} crashed: {crash}"))
            }
        };
        jobs.finish(&run_id, &outcome, cancel.is_cancelled());
    });
    Started::Run(Box::new(record))
}

/// What a `wait: false` call answers: the run record, or the refusal.
pub(crate) fn started_outcome(started: Started) -> ToolOutcome {
    match started {
        Started::Answered(outcome) => outcome,
        Started::Run(record) => ToolOutcome::Success {
            summary: format!(
                "Started {} run {} (results in {}). Poll {} with run_id \"{}\"; {} lists every run.",
                record.tool,
                record.run_id,
                record.pack_dir,
                GetRun::NAME,
                record.run_id,
                ListRuns::NAME
            ),
            structured: serde_json::to_value(&record).expect("record serialises"),
            images: Vec::new(),
            brief: Brief {
                status: Some(record.state.as_str().to_string()),
                lines: Vec::new(),
                pack: Some(record.pack_dir.clone()),
            },
        },
    }
}

/// A run id from a client, checked against the form the server gives out.
pub(super) fn run_id(args: RunIdArgs) -> Result<String, ArgError> {
    if crate::jobs::valid_run_id(&args.run_id) {
        return Ok(args.run_id);
    }
    Err(ArgError::new(
        "run_id",
        format!(
            "'{}' is not a run id (they look like 20261204T153000Z-1a2b3c4d)",
            args.run_id.escape_default()
        ),
        format!(
            "pass the run_id a wait:false call returned ({} lists them)",
            ListRuns::NAME
        ),
    ))
}

/// `get_run` and `cancel_run`: one run, by id.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub(crate) struct RunIdArgs {
    pub run_id: String,
    /// `summary` (default) or `full`: how much of the result the server answers with
    /// (the server shapes the answer; the tool ignores it).
    #[expect(
        dead_code,
        reason = "declared so the Args schema agrees with the manifest; the server reads it"
    )]
    pub detail: Option<String>,
}
