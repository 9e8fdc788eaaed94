//! The tools `get_run`, `list_runs` and `cancel_run`, and `wait: false` for
//! `run_script` / `run_batch`: the call returns a run record at once and the run goes
//! on in the background, tracked by the [`crate::jobs::JobTable`]. MCP tasks are
//! started the same way ([`start_detached`]), so a task id is a run id.

use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::registry::{blocking, Tool};
use super::Started;
use crate::call::{CallContext, Progress, ToolOutcome};
use crate::jobs::{JobTable, RunList, RunView};
use crate::json_schema::schema_of;
use crate::manifest::args::ArgError;

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
            images: Vec::new(),
        },
    }
}

/// A run id from a client, checked against the form the server gives out.
fn run_id(args: RunIdArgs) -> Result<String, ArgError> {
    if crate::jobs::valid_run_id(&args.run_id) {
        return Ok(args.run_id);
    }
    Err(ArgError::new(
        "run_id",
        format!(
            "'{}' is not a run id (they look like 20261204T153000Z-1a2b3c4d)",
            args.run_id.escape_default()
        ),
        "pass the run_id a wait:false call returned (list_runs lists them)",
    ))
}

/// `get_run` and `cancel_run`: one run, by id.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct RunIdArgs {
    pub run_id: String,
    /// `summary` (default) or `full`: how much of the result the server answers with
    /// (the server shapes the answer; the tool ignores it).
    pub detail: Option<String>,
}

/// `list_runs` takes no arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct NoArgs {}

/// `get_run`: a run's record, progress and result.
pub struct GetRun(pub Arc<JobTable>);
/// `cancel_run`: stop a live run, then answer like `get_run`.
pub struct CancelRun(pub Arc<JobTable>);
/// `list_runs`: every run in the index.
pub struct ListRuns(pub Arc<JobTable>);

impl Tool for GetRun {
    const NAME: &'static str = "get_run";
    type Args = RunIdArgs;
    type Request = String;

    fn output_schema() -> Value {
        schema_of::<RunView>()
    }

    fn request(&self, args: RunIdArgs) -> Result<String, ArgError> {
        run_id(args)
    }

    fn execute(
        self: Arc<Self>,
        run_id: String,
        _ctx: CallContext,
    ) -> BoxFuture<'static, ToolOutcome> {
        blocking(move || get_run(&self.0, &run_id))
    }
}

impl Tool for CancelRun {
    const NAME: &'static str = "cancel_run";
    type Args = RunIdArgs;
    type Request = String;

    fn output_schema() -> Value {
        schema_of::<RunView>()
    }

    fn request(&self, args: RunIdArgs) -> Result<String, ArgError> {
        run_id(args)
    }

    fn execute(
        self: Arc<Self>,
        run_id: String,
        _ctx: CallContext,
    ) -> BoxFuture<'static, ToolOutcome> {
        blocking(move || cancel_run(&self.0, &run_id))
    }
}

impl Tool for ListRuns {
    const NAME: &'static str = "list_runs";
    type Args = NoArgs;
    type Request = ();

    fn output_schema() -> Value {
        schema_of::<RunList>()
    }

    fn request(&self, _args: NoArgs) -> Result<(), ArgError> {
        Ok(())
    }

    fn execute(
        self: Arc<Self>,
        _request: (),
        _ctx: CallContext,
    ) -> BoxFuture<'static, ToolOutcome> {
        blocking(move || list_runs(&self.0))
    }
}

fn get_run(jobs: &JobTable, run_id: &str) -> ToolOutcome {
    match jobs.get(run_id) {
        Some(view) => {
            let summary = format!(
                "Run {} ({}): {}{}",
                view.run.run_id,
                view.run.tool,
                view.run.state.as_str(),
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
                images: Vec::new(),
            }
        }
        None => ToolOutcome::failure(format!(
            "argument 'run_id': no run '{run_id}' in {}. Fix: call list_runs for the known runs",
            jobs.index().display()
        )),
    }
}

fn cancel_run(jobs: &JobTable, run_id: &str) -> ToolOutcome {
    if !jobs.cancel(run_id) {
        return ToolOutcome::failure(format!(
            "argument 'run_id': '{run_id}' is not running in this server (finished, interrupted or unknown). Fix: call get_run to see its state"
        ));
    }
    get_run(jobs, run_id)
}

fn list_runs(jobs: &JobTable) -> ToolOutcome {
    let list = RunList {
        runs_dir: jobs.index().display().to_string(),
        runs: jobs.list(),
    };
    ToolOutcome::Success {
        summary: format!("{} run(s) recorded in {}.", list.runs.len(), list.runs_dir),
        structured: serde_json::to_value(&list).expect("list serialises"),
        images: Vec::new(),
    }
}
