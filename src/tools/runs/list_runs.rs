//! `list_runs`: every run in the index.

use std::sync::Arc;

use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::call::CallContext;
use crate::jobs::{JobTable, RunList};
use crate::manifest::args::ArgError;
use crate::tools::registry::{blocking, Answer, Outcome, Summary, Tool};

/// The tool.
pub(crate) struct ListRuns(pub Arc<JobTable>);

/// `list_runs` takes no arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub(crate) struct NoArgs {}

impl Tool for ListRuns {
    const NAME: &'static str = "list_runs";
    type Args = NoArgs;
    type Request = ();
    type Output = RunList;

    fn summary(list: &RunList) -> Summary {
        Summary {
            head: format!("{} run(s) recorded in {}.", list.runs.len(), list.runs_dir),
            ..Summary::default()
        }
    }

    fn request(&self, _args: NoArgs) -> Result<(), ArgError> {
        Ok(())
    }

    fn execute(
        self: Arc<Self>,
        _request: (),
        _ctx: CallContext,
    ) -> BoxFuture<'static, Outcome<Self>> {
        blocking(move || {
            Ok(Answer::new(RunList {
                runs_dir: self.0.index().display().to_string(),
                runs: self.0.list(),
            }))
        })
    }
}
