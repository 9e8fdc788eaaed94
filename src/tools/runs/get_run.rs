//! `get_run`: a run's record, progress and result.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::list_runs::ListRuns;
use super::{run_id, RunIdArgs};
use crate::call::{Brief, CallContext};
use crate::jobs::{JobTable, RunView};
use crate::manifest::args::ArgError;
use crate::tools::registry::{blocking, Answer, Outcome, Summary, Tool, ToolFailure};
use crate::tools::run_script::summary::evidence_lines;

/// The tool.
pub(crate) struct GetRun(pub Arc<JobTable>);

impl Tool for GetRun {
    const NAME: &'static str = "get_run";
    type Args = RunIdArgs;
    type Request = String;
    type Output = RunView;

    fn summary(view: &RunView) -> Summary {
        let run = &view.run;
        let said = run
            .progress
            .as_ref()
            .and_then(|p| p.message.as_deref())
            .or(run.message.as_deref())
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        Summary {
            head: format!(
                "Run {} ({}): {}{said}",
                run.run_id,
                run.tool,
                run.state.as_str()
            ),
            brief: Brief {
                status: Some(run.state.as_str().to_string()),
                lines: view.result.as_ref().map(evidence_lines).unwrap_or_default(),
                pack: Some(run.pack_dir.clone()),
            },
        }
    }

    fn request(&self, args: RunIdArgs) -> Result<String, ArgError> {
        run_id(args)
    }

    fn execute(
        self: Arc<Self>,
        run_id: String,
        _ctx: CallContext,
    ) -> BoxFuture<'static, Outcome<Self>> {
        blocking(move || get_run(&self.0, &run_id).map(Answer::new))
    }
}

/// The run `run_id`, or the failure naming the index it is not in.
pub(super) fn get_run(jobs: &JobTable, run_id: &str) -> Result<RunView, ToolFailure> {
    jobs.get(run_id).ok_or_else(|| {
        ToolFailure::failed(format!(
            "argument 'run_id': no run '{run_id}' in {}. Fix: call {} for the known runs",
            jobs.index().display(),
            ListRuns::NAME
        ))
    })
}
