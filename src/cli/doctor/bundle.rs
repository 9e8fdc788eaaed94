//! `doctor`'s checks of the bundle: its root, weights and label table, and which of
//! its optional run modes this bundle and machine can honour (the gates' own tests).

use serde_json::Value;

use super::{Check, DoctorArgs};
use crate::config::Config;

/// The bundle root, its weights, its label table and its optional modes.
pub(super) fn bundle_checks(args: &DoctorArgs, config: &Config, cuda: bool) -> Vec<Check> {
    let explicit = args.upstream_root.as_ref().map(|p| config.absolute(p));
    let resolution = crate::upstream::resolve_root(
        explicit.as_deref(),
        config.env_root.as_deref().map(std::ffi::OsStr::new),
        &config.cwd,
    );
    let hint = crate::upstream::install_hint();
    let root = match resolution.require() {
        Ok(root) => root,
        Err(e) => return vec![Check::new("bundle_root", false, e.to_string(), hint)],
    };
    let mut checks = vec![Check::new(
        "bundle_root",
        true,
        root.display().to_string(),
        "",
    )];
    let inventory = crate::upstream::inventory(root);
    checks.push(match inventory.require_model() {
        Ok(model) => {
            let sha =
                crate::upstream::sha256_file(model).unwrap_or_else(|e| format!("unreadable: {e}"));
            let provenance = crate::upstream::weights_provenance(&inventory, Some(&sha));
            let detail = format!("{} sha256 {sha} ({})", model.display(), provenance.as_str());
            Check::new("model", true, detail, "")
        }
        Err(e) => Check::new("model", false, e.to_string(), hint),
    });
    checks.push(match crate::labels::LabelTable::load_bundle(root) {
        Ok(t) => Check::new("label_table", true, format!("{} classes", t.len()), ""),
        Err(e) => Check::new(
            "label_table",
            false,
            e.to_string(),
            "the bundle's configs/metadata.json must be readable",
        ),
    });
    for (name, ok, detail, fix) in switch_checks(root, cuda) {
        checks.push(Check::new(name, ok, detail, fix));
    }
    checks
}

/// Which of the bundle's optional run modes and switches this bundle (and machine)
/// can honour: `(check, ok, detail, fix)`, with the same checks the gates make.
fn switch_checks(
    root: &std::path::Path,
    cuda: bool,
) -> Vec<(&'static str, bool, String, &'static str)> {
    let batch = root.join(crate::upstream::BATCH_CONFIG_FILES[1]);
    let trt = root.join(crate::upstream::TRT_CONFIG_FILE);
    let inference = root.join(crate::upstream::CONFIG_FILE);
    let postprocessing = crate::files::read_to_string_capped(&inference, crate::files::JSON_CAP)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str::<Value>(&text).map_err(|e| e.to_string()))
        .and_then(|config| {
            crate::tools::run_script::knobs::check_cpu_postprocessing(&[(
                "configs/inference.json",
                &config,
            )])
        });
    vec![
        (
            "batch_config",
            batch.is_file(),
            format!(
                "{} {}",
                batch.display(),
                if batch.is_file() { "present: a batch run loads the model once" } else { "missing" }
            ),
            "batch runs (run-batch) need the bundle's configs/batch_inference.json",
        ),
        (
            "cpu_postprocessing",
            postprocessing.is_ok(),
            match &postprocessing {
                Ok(()) => "supported: postprocessing.transforms[0] is ToDeviced(cpu)".to_string(),
                Err(why) => format!("not supported: {why}"),
            },
            "only needed to save GPU memory; use a smaller patch_size instead",
        ),
        (
            "tensorrt",
            trt.is_file() && cuda,
            match (trt.is_file(), cuda) {
                (true, true) => format!("{} present, CUDA available", trt.display()),
                (true, false) => format!("{} present, but no CUDA here", trt.display()),
                (false, _) => format!("{} missing", trt.display()),
            },
            "optional: TensorRT needs the bundle's configs/inference_trt.json, a CUDA GPU and TensorRT",
        ),
    ]
}
