//! `verify_evidence`: the paired verifier on an evidence pack. A fail verdict is a
//! successful call (the verification ran); only an unusable pack is a tool error.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::registry::{blocking_heavy, Tool};
use crate::call::{CallContext, ToolOutcome};
use crate::config::Config;
use crate::manifest::args::ArgError;
use crate::verifier::{verify_pack, VerifyOptions};

/// The tool.
pub struct VerifyEvidence(pub Arc<Config>);

/// `verify_evidence`'s arguments after the manifest checked them.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct VerifyArgs {
    pub pack_dir: String,
    /// `summary` (default) or `full`: how much of the result the server answers with
    /// (the server shapes the answer; the tool ignores it).
    pub detail: Option<String>,
}

impl Tool for VerifyEvidence {
    const NAME: &'static str = "verify_evidence";
    type Args = VerifyArgs;
    type Request = PathBuf;

    fn output_schema() -> Value {
        super::schemas::hand_written("verifiers/ct_segmentation_quality_v1/report.schema.json")
    }

    fn request(&self, args: VerifyArgs) -> Result<PathBuf, ArgError> {
        Ok(self.0.absolute(Path::new(&args.pack_dir)))
    }

    fn execute(
        self: Arc<Self>,
        pack_dir: PathBuf,
        _ctx: CallContext,
    ) -> BoxFuture<'static, ToolOutcome> {
        blocking_heavy(move || execute(&pack_dir, &self.0.cwd))
    }
}

pub fn execute(pack_dir: &Path, cwd: &Path) -> ToolOutcome {
    let options = VerifyOptions {
        cwd: Some(cwd.to_path_buf()),
        ..VerifyOptions::default()
    };
    match verify_pack(pack_dir, &options) {
        Err(e) => ToolOutcome::failure(format!(
            "argument 'pack_dir': {e}. Fix: pass the output_dir of a run_script call (it holds output.json)"
        )),
        Ok(report) => ToolOutcome::Success {
            summary: report.summary(),
            structured: serde_json::to_value(&report).expect("report serialises"),
            images: Vec::new(),
        },
    }
}
