//! `verify_evidence`: the paired verifier on an evidence pack. A fail verdict is a
//! successful call (the verification ran); only an unusable pack is a tool error.

use serde_json::{Map, Value};

use crate::config::Config;
use crate::manifest::args::validate;
use crate::manifest::Manifest;
use crate::tools::ToolOutcome;
use crate::verifier::{verify_pack, VerifyOptions};

pub fn parse(
    manifest: &Manifest,
    args: &Map<String, Value>,
    config: &Config,
) -> Result<std::path::PathBuf, String> {
    let tool = manifest
        .tool("verify_evidence")
        .expect("manifest declares verify_evidence");
    let args = validate(tool, args).map_err(|e| e.to_string())?;
    let dir = args
        .get("pack_dir")
        .and_then(Value::as_str)
        .expect("validated: pack_dir is required");
    Ok(config.absolute(std::path::Path::new(dir)))
}

pub fn execute(pack_dir: &std::path::Path) -> ToolOutcome {
    match verify_pack(pack_dir, &VerifyOptions::default()) {
        Err(e) => ToolOutcome::Failure {
            message: format!(
                "argument 'pack_dir': {e}. Fix: pass the output_dir of a run_script call (it holds output.json)"
            ),
            structured: None,
        },
        Ok(report) => ToolOutcome::Success {
            summary: report.summary(),
            structured: serde_json::to_value(&report).expect("report serialises"),
        },
    }
}
