//! `cancel_run`: stop a live run, then answer like `get_run`.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::get_run::{get_run, GetRun};
use super::{run_id, RunIdArgs};
use crate::call::CallContext;
use crate::jobs::{JobTable, RunView};
use crate::manifest::args::ArgError;
use crate::tools::registry::{blocking, Answer, Outcome, Summary, Tool, ToolFailure};

/// The tool.
pub(crate) struct CancelRun(pub Arc<JobTable>);

impl Tool for CancelRun {
    const NAME: &'static str = "cancel_run";
    type Args = RunIdArgs;
    type Request = String;
    type Output = RunView;

    fn summary(view: &RunView) -> Summary {
        GetRun::summary(view)
    }

    fn request(&self, args: RunIdArgs) -> Result<String, ArgError> {
        run_id(args)
    }

    fn execute(
        self: Arc<Self>,
        run_id: String,
        _ctx: CallContext,
    ) -> BoxFuture<'static, Outcome<Self>> {
        blocking(move || {
            if !self.0.cancel(&run_id) {
                return Err(ToolFailure::failed(format!(
                    "argument 'run_id': '{run_id}' is not running in this server (finished, interrupted or unknown). Fix: call {} to see its state",
                    GetRun::NAME
                )));
            }
            get_run(&self.0, &run_id).map(Answer::new)
        })
    }
}
