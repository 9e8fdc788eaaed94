//! `run_batch` as a [`Tool`]: its typed output ([`BatchOutput`]), its summary, and
//! the registry's steps (request, admit, execute) over [`RunBatch::run`].

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::json;

use super::inputs::{collect_inputs, refused};
use super::request::{self, BatchRunRequest};
use super::{finish, BatchCall, RunBatch};
use crate::call::{Brief, CallContext};
use crate::evidence::cohort::{Cohort, CohortStatus};
use crate::manifest::args::ArgError;
use crate::tools::registry::{admit_blocking, Background, Outcome, Summary, Tool, ToolFailure};

/// `run_batch`'s answer: the cohort summary, and after `verify: true` each verified
/// volume's trust summary beside it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BatchOutput {
    #[serde(flatten)]
    pub cohort: Cohort,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust_summaries: Option<Vec<VolumeTrust>>,
}

/// The published schema is the cohort schema (`trust_summaries` is an addition it
/// does not declare, as before typed outputs).
impl schemars::JsonSchema for BatchOutput {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        Cohort::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        Cohort::json_schema(generator)
    }
}

/// One volume's trust summary after `verify: true`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VolumeTrust {
    pub id: String,
    pub pack_dir: String,
    #[serde(flatten)]
    pub trust: crate::verifier::trust::TrustSummary,
}

impl Tool for RunBatch {
    const NAME: &'static str = "run_batch";
    const BACKGROUND_TITLE: Option<&'static str> = Some("The cohort summary");
    type Args = request::BatchArgs;
    type Request = BatchRunRequest;
    type Output = BatchOutput;

    fn summary(output: &BatchOutput) -> Summary {
        Summary {
            head: finish::head(output),
            brief: Brief {
                status: Some(output.cohort.status.as_str().to_string()),
                lines: vec![format!("counts: {}", json!(output.cohort.counts))],
                pack: Some(output.cohort.output_root.clone()),
            },
        }
    }

    fn is_error(output: &BatchOutput) -> bool {
        !matches!(
            output.cohort.status,
            CohortStatus::Succeeded | CohortStatus::Partial
        )
    }

    fn request(&self, args: Self::Args) -> Result<Self::Request, ArgError> {
        request::request(args, &self.config)
    }

    fn execute(
        self: Arc<Self>,
        request: Self::Request,
        ctx: CallContext,
    ) -> BoxFuture<'static, Outcome<Self>> {
        async move { self.run(request, ctx).await.into_outcome() }.boxed()
    }

    fn refusal(&self, error: ArgError) -> ToolFailure {
        BatchCall::Refused {
            message: format!("{} refused before running anything: {error}", Self::NAME),
            document: crate::tools::run_script::refusal_document(&error),
        }
        .into_failure()
    }

    fn waits(args: &Self::Args) -> bool {
        args.settings.wait
    }

    fn background(&self, request: &Self::Request) -> Option<Background> {
        Some(Background {
            pack_dir: request.output_root.clone(),
            result_file: "cohort.json",
        })
    }

    fn admit(
        self: Arc<Self>,
        request: Self::Request,
    ) -> BoxFuture<'static, Result<Self::Request, ToolFailure>> {
        admit_blocking(request, move |checked| {
            collect_inputs(&checked)
                .map_err(|m| refused(m, json!(null)))
                .and_then(|inputs| self.gate_inputs(&inputs, &checked).map(|_| ()))
                .map_err(BatchCall::into_failure)
        })
    }
}
