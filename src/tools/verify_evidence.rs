//! `verify_evidence`: the paired verifier on an evidence pack. A fail verdict is a
//! successful call (the verification ran); only an unusable pack is a tool error.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::Deserialize;

use super::registry::{blocking_heavy, Answer, Outcome, Summary, Tool, ToolFailure};
use crate::call::{Brief, CallContext};
use crate::config::Config;
use crate::manifest::args::ArgError;
use crate::verifier::{verify_pack, VerifierReport, VerifyOptions};

super::schemas::hand_written_schema!(
    VerifierReport,
    "verifiers/ct_segmentation_quality_v1/report.schema.json"
);

/// The tool.
pub(crate) struct VerifyEvidence(pub Arc<Config>);

/// `verify_evidence`'s arguments after the manifest checked them.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub(crate) struct VerifyArgs {
    pub pack_dir: String,
    /// `summary` (default) or `full`: how much of the result the server answers with
    /// (the server shapes the answer; the tool ignores it).
    #[expect(
        dead_code,
        reason = "declared so the Args schema agrees with the manifest; the server reads it"
    )]
    pub detail: Option<String>,
}

impl Tool for VerifyEvidence {
    const NAME: &'static str = "verify_evidence";
    type Args = VerifyArgs;
    type Request = PathBuf;
    type Output = VerifierReport;

    fn summary(report: &VerifierReport) -> Summary {
        let reasons: Vec<&str> = report
            .overall_reasons
            .iter()
            .map(String::as_str)
            .take(10)
            .collect();
        let overall = serde_json::to_value(report.overall).expect("a verdict serialises");
        Summary {
            head: report.summary(),
            brief: Brief {
                status: overall.as_str().map(str::to_string),
                lines: (!reasons.is_empty())
                    .then(|| format!("reasons: {}", reasons.join("; ")))
                    .into_iter()
                    .collect(),
                pack: None,
            },
        }
    }

    fn request(&self, args: VerifyArgs) -> Result<PathBuf, ArgError> {
        Ok(self.0.absolute(Path::new(&args.pack_dir)))
    }

    fn execute(
        self: Arc<Self>,
        pack_dir: PathBuf,
        _ctx: CallContext,
    ) -> BoxFuture<'static, Outcome<Self>> {
        blocking_heavy(move || execute(&pack_dir, &self.0.cwd).map(Answer::new))
    }
}

pub(crate) fn execute(pack_dir: &Path, cwd: &Path) -> Result<VerifierReport, ToolFailure> {
    let options = VerifyOptions {
        cwd: Some(cwd.to_path_buf()),
        ..VerifyOptions::default()
    };
    verify_pack(pack_dir, &options).map_err(|e| {
        ToolFailure::failed(format!(
            "argument 'pack_dir': {e}. Fix: pass the output_dir of a {} call (it holds output.json)",
            super::run_script::RunScript::NAME
        ))
    })
}
