//! `run_script` as a [`Tool`]: its typed output ([`RunOutput`]), its summary, and the
//! registry's steps (normalise, request, admit, execute) over [`RunScript::run`]; kept
//! apart from `mod.rs`, which holds the call itself (gates, slot, run, verify).

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::{gates, request, summary, RunCall, RunScript};
use crate::call::{Brief, CallContext};
use crate::evidence::{Evidence, RunStatus};
use crate::manifest::args::ArgError;
use crate::tools::registry::{
    admit_blocking, Answer, Background, FailureKind, Outcome, Summary, Tool, ToolFailure,
};
use crate::verifier::trust::TrustSummary;

/// `run_script`'s answer: the evidence, and after `verify: true` the paired
/// verifier's trust summary beside it.
#[derive(Debug, Clone, Serialize)]
pub struct RunOutput {
    #[serde(flatten)]
    pub evidence: Evidence,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust_summary: Option<TrustSummary>,
}

/// The published schema is the evidence schema (`trust_summary` is an addition it
/// does not declare, as before typed outputs).
impl JsonSchema for RunOutput {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        Evidence::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        Evidence::json_schema(generator)
    }
}

impl Tool for RunScript {
    const NAME: &'static str = "run_script";
    const BACKGROUND_TITLE: Option<&'static str> = Some("The evidence document");
    type Args = request::RunScriptArgs;
    type Request = request::RunRequest;
    type Output = RunOutput;

    fn summary(output: &RunOutput) -> Summary {
        let evidence = &output.evidence;
        let head = match &output.trust_summary {
            Some(trust) => format!(
                "{} {} Evidence pack: {} (output.json, manifest.json, \
                 validation_summary.json, trust_summary.json).",
                trust.summary, evidence.summary, evidence.pack_dir
            ),
            None => format!(
                "{} Evidence pack: {} (output.json, manifest.json, validation_summary.json).",
                evidence.summary, evidence.pack_dir
            ),
        };
        let document = serde_json::to_value(output).expect("evidence serialises");
        Summary {
            head,
            brief: Brief {
                status: Some(evidence.status.as_str().to_string()),
                lines: summary::evidence_lines(&document),
                pack: Some(evidence.pack_dir.clone()),
            },
        }
    }

    fn is_error(output: &RunOutput) -> bool {
        output.evidence.status != RunStatus::Succeeded
    }

    fn normalise(&self, args: Map<String, Value>) -> Result<Map<String, Value>, ArgError> {
        request::normalise(self.decl(), args)
    }

    fn request(&self, args: Self::Args) -> Result<Self::Request, ArgError> {
        request::request(args, &self.config)
    }

    fn execute(
        self: Arc<Self>,
        request: Self::Request,
        ctx: CallContext,
    ) -> BoxFuture<'static, Outcome<Self>> {
        let preview = request
            .preview
            .then(|| request.output_dir.join(crate::evidence::PREVIEW_FILE));
        async move {
            let mut outcome = self.run(request, ctx).await.into_outcome();
            if let (Some(path), Ok(answer)) = (preview, &mut outcome) {
                answer.images.extend(preview_image(&path));
            }
            outcome
        }
        .boxed()
    }

    fn refusal(&self, error: ArgError) -> ToolFailure {
        ToolFailure {
            document: Some(refusal_document(&error)),
            ..ToolFailure::new(
                FailureKind::Refused,
                format!("{} refused before running anything: {error}", Self::NAME),
            )
        }
    }

    fn waits(args: &Self::Args) -> bool {
        args.settings.wait
    }

    fn background(&self, request: &Self::Request) -> Option<Background> {
        Some(Background {
            pack_dir: request.output_dir.clone(),
            result_file: "output.json",
        })
    }

    fn admit(
        self: Arc<Self>,
        request: Self::Request,
    ) -> BoxFuture<'static, Result<Self::Request, ToolFailure>> {
        admit_blocking(request, move |checked| {
            gates::check(checked, &self.config, &self.manifest)
                .map_err(|refusal| ToolFailure::new(FailureKind::Refused, refusal.message))
        })
    }
}

/// The pack's preview.png as an image content item, when it was written (bounded read).
fn preview_image(path: &std::path::Path) -> Option<crate::call::Image> {
    const PREVIEW_CAP: u64 = 4 << 20;
    crate::files::read_capped(path, PREVIEW_CAP)
        .map(|png| crate::call::Image { png })
        .map_err(|e| tracing::warn!("no preview image in the answer: {e}"))
        .ok()
}

/// The refusal document of a request the manifest or the typing refused (the CLI
/// prints it; MCP answers with the message).
pub(crate) fn refusal_document(e: &ArgError) -> Value {
    json!({
        "status": RunStatus::Refused,
        "message": e.to_string(),
        "argument": e.argument,
        "rule": e.rule,
        "fix": e.fix,
        "intended_use_disclaimer": crate::evidence::DISCLAIMER,
    })
}

impl RunCall {
    /// The typed answer: the evidence as the output (a run that did not succeed is an
    /// error answer with its evidence, see `Tool::is_error`); a refusal and a run
    /// that did not start as failures.
    pub(crate) fn into_outcome(self) -> Outcome<RunScript> {
        let (evidence, trust_summary) = match self {
            RunCall::Refused { message, document } => {
                return Err(ToolFailure {
                    document: Some(document),
                    ..ToolFailure::new(FailureKind::Refused, message)
                })
            }
            RunCall::NotStarted { message } => {
                return Err(ToolFailure::new(FailureKind::NotStarted, message))
            }
            RunCall::Verified(evidence, trust) => (*evidence, Some(*trust)),
            RunCall::Ran(evidence) => (*evidence, None),
        };
        Ok(Answer::new(RunOutput {
            evidence,
            trust_summary,
        }))
    }
}
