//! The upstream's documented memory/speed switches beyond `patch_size` and
//! `sw_batch_size`, checked as pure functions over what the bundle declares, so a
//! request is refused before anything runs instead of failing (or silently doing
//! nothing) inside MONAI.
//!
//! - `cpu_postprocessing`: the upstream's FAQ ("TroubleShoot for Out-of-Memory")
//!   enables the `ToDeviced(keys=pred, device=cpu)` transform that
//!   `configs/inference.json` ships disabled as `postprocessing.transforms[0]`. The
//!   override addresses that list position, so it is only passed when the bundle's
//!   configs really have that transform there ([`check_cpu_postprocessing`]).
//! - `tensorrt`: `configs/inference_trt.json` appended to the config list. The command
//!   must stay the manifest's declared entry point with only the config list grown
//!   ([`check_declared_entry_point`]).

use serde_json::Value;

use crate::manifest::model::Runtime;
use crate::upstream;

/// The `ToDeviced` the override switches on, as configs may name its target.
const TO_DEVICED_TARGETS: [&str; 2] = ["ToDeviced", "monai.transforms.ToDeviced"];

/// Whether `--postprocessing#transforms#0#_disabled_ False` would move the
/// postprocessing to the CPU with these configs, given in the order MONAI merges them
/// (`(file name, parsed JSON)`): the first postprocessing transform, after every
/// config's overrides of it, must be a `ToDeviced` to `cpu` with a `_disabled_` switch.
/// `Err` says what the configs hold instead, naming the file.
pub(crate) fn check_cpu_postprocessing(configs: &[(&str, &Value)]) -> Result<(), String> {
    // (the transform as merged so far, the file that last set it)
    let mut first: Option<(Value, &str)> = None;
    let mut defined_in: Option<&str> = None;
    for (name, config) in configs {
        let Some(map) = config.as_object() else {
            return Err(format!("{name} is not a JSON object"));
        };
        if let Some(post) = map.get("postprocessing") {
            defined_in = Some(name);
            first = Some((first_transform(post.get("transforms"), name)?, name));
        }
        if let Some(list) = map.get("postprocessing#transforms") {
            defined_in = Some(name);
            first = Some((first_transform(Some(list), name)?, name));
        }
        if let Some(item) = map.get("postprocessing#transforms#0") {
            first = Some((item.clone(), name));
        }
        for (key, value) in map {
            if let Some(field) = key.strip_prefix("postprocessing#transforms#0#") {
                match first.as_mut().and_then(|(t, _)| t.as_object_mut()) {
                    Some(t) => {
                        t.insert(field.to_string(), value.clone());
                    }
                    None => {
                        return Err(format!(
                            "{name} sets {key} but no config defines postprocessing.transforms[0]"
                        ))
                    }
                }
            }
        }
    }
    let Some((transform, name)) = first else {
        return Err(match defined_in {
            Some(name) => format!("{name} has an empty postprocessing.transforms list"),
            None => "no config defines `postprocessing`".to_string(),
        });
    };
    let target = transform.get("_target_").and_then(Value::as_str);
    if !target.is_some_and(|t| TO_DEVICED_TARGETS.contains(&t)) {
        return Err(format!(
            "postprocessing.transforms[0] in {name} is {}, not ToDeviced",
            target.map_or_else(
                || "not a component with a _target_".to_string(),
                |t| t.to_string()
            )
        ));
    }
    if transform.get("device").and_then(Value::as_str) != Some("cpu") {
        return Err(format!(
            "postprocessing.transforms[0] in {name} is a ToDeviced to {}, not to \"cpu\"",
            transform.get("device").unwrap_or(&Value::Null)
        ));
    }
    if transform.get("_disabled_").is_none() {
        return Err(format!(
            "postprocessing.transforms[0] in {name} is a ToDeviced without a `_disabled_` switch"
        ));
    }
    Ok(())
}

/// `transforms[0]` of a literal list (a reference or expression cannot be addressed by position).
fn first_transform(list: Option<&Value>, name: &str) -> Result<Value, String> {
    match list {
        Some(Value::Array(items)) => items
            .first()
            .cloned()
            .ok_or_else(|| format!("{name} has an empty postprocessing.transforms list")),
        Some(other) => Err(format!(
            "postprocessing.transforms in {name} is {other}, not a literal list"
        )),
        None => Err(format!("postprocessing in {name} has no `transforms` list")),
    }
}

/// The command is still the manifest's declared entry point
/// (`runtime.official_entrypoint`, `--config_file` first naming `runtime.config_file`),
/// with at most the documented configs added after it (the batch config, then the
/// TensorRT config). `argv[0]` is the interpreter and may be any path.
pub(crate) fn check_declared_entry_point(argv: &[String], runtime: &Runtime) -> Result<(), String> {
    let declared: Vec<&str> = runtime.official_entrypoint.split_whitespace().collect();
    let Some((_, module_run)) = declared.split_first() else {
        return Err("the manifest declares an empty official_entrypoint".into());
    };
    let head: Vec<&str> = argv
        .iter()
        .skip(1)
        .take(module_run.len())
        .map(String::as_str)
        .collect();
    if head != module_run {
        return Err(format!(
            "the command starts `{}` instead of the declared `{}`",
            head.join(" "),
            runtime.official_entrypoint
        ));
    }
    if argv.get(1 + module_run.len()).map(String::as_str) != Some("--config_file") {
        return Err("`--config_file` does not follow the entry point".into());
    }
    let files = upstream::config_files_of(argv)
        .ok_or_else(|| "the --config_file value is not a list of quoted paths".to_string())?;
    if files.first() != Some(&runtime.config_file) {
        return Err(format!(
            "the config list {files:?} does not start with the declared {}",
            runtime.config_file
        ));
    }
    let documented = [(false, false), (false, true), (true, false), (true, true)]
        .iter()
        .any(|(batch, trt)| upstream::config_files(*batch, *trt)[1..] == files[1..]);
    if !documented {
        return Err(format!(
            "the config list {files:?} is not the declared config followed by the documented \
             batch and TensorRT configs (in that order)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The upstream's postprocessing, as configs/inference.json ships it.
    fn upstream_inference() -> Value {
        json!({"postprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "ToDeviced", "keys": "pred", "device": "cpu", "_disabled_": true},
            {"_target_": "monai.apps.vista3d.transforms.VistaPostTransformd", "keys": "pred"},
            {"_target_": "SaveImaged", "keys": "pred"}
        ]}})
    }

    #[test]
    fn the_upstream_layout_is_accepted() {
        let inference = upstream_inference();
        let batch = json!({"postprocessing#transforms#4#data_root_dir": "@input_root_abs"});
        let trt = json!({"head_trt_enabled": false});
        assert_eq!(
            check_cpu_postprocessing(&[("configs/inference.json", &inference)]),
            Ok(())
        );
        assert_eq!(
            check_cpu_postprocessing(&[
                ("configs/inference.json", &inference),
                ("configs/batch_inference.json", &batch),
                ("configs/inference_trt.json", &trt)
            ]),
            Ok(())
        );
        let full_target = json!({"postprocessing": {"transforms": [
            {"_target_": "monai.transforms.ToDeviced", "keys": "pred", "device": "cpu", "_disabled_": "true"}]}});
        assert_eq!(
            check_cpu_postprocessing(&[("a.json", &full_target)]),
            Ok(())
        );
    }

    #[test]
    fn other_layouts_are_refused_naming_the_file() {
        let cases = [
            (json!({}), "no config defines `postprocessing`"),
            (
                json!({"postprocessing": {"transforms": []}}),
                "empty postprocessing.transforms",
            ),
            (
                json!({"postprocessing": {"transforms": "$@post_list"}}),
                "not a literal list",
            ),
            (
                json!({"postprocessing": {"_target_": "Compose"}}),
                "no `transforms` list",
            ),
            (
                json!({"postprocessing": {"transforms": [{"_target_": "SaveImaged"}]}}),
                "is SaveImaged, not ToDeviced",
            ),
            (
                json!({"postprocessing": {"transforms": ["@saver"]}}),
                "not a component with a _target_",
            ),
            (
                json!({"postprocessing": {"transforms": [
                    {"_target_": "ToDeviced", "device": "cuda:1", "_disabled_": true}]}}),
                "not to \"cpu\"",
            ),
            (
                json!({"postprocessing": {"transforms": [{"_target_": "ToDeviced", "device": "cpu"}]}}),
                "without a `_disabled_` switch",
            ),
            (json!([1, 2]), "not a JSON object"),
        ];
        for (config, needle) in cases {
            let err = check_cpu_postprocessing(&[("configs/inference.json", &config)]).unwrap_err();
            assert!(err.contains(needle), "{config}: {err}");
            if needle != "no config defines `postprocessing`" {
                assert!(err.contains("configs/inference.json"), "{err}");
            }
        }
    }

    #[test]
    fn later_configs_override_the_first_transform() {
        let inference = upstream_inference();
        let replaced = json!({"postprocessing#transforms#0": {"_target_": "Lambdad"}});
        let err =
            check_cpu_postprocessing(&[("inference.json", &inference), ("trt.json", &replaced)])
                .unwrap_err();
        assert!(err.contains("in trt.json is Lambdad"), "{err}");
        let moved = json!({"postprocessing#transforms#0#device": "cuda:0"});
        let err = check_cpu_postprocessing(&[("inference.json", &inference), ("x.json", &moved)])
            .unwrap_err();
        assert!(err.contains("cuda:0"), "{err}");
        let whole_list = json!({"postprocessing#transforms": [{"_target_": "SaveImaged"}]});
        assert!(check_cpu_postprocessing(&[
            ("inference.json", &inference),
            ("y.json", &whole_list)
        ])
        .is_err());
        let orphan = json!({"postprocessing#transforms#0#device": "cpu"});
        let err = check_cpu_postprocessing(&[("z.json", &orphan)]).unwrap_err();
        assert!(
            err.contains("z.json sets postprocessing#transforms#0#device"),
            "{err}"
        );
        // A demo-style config that adds the transform later is fine.
        let base = json!({"postprocessing": {"transforms": [{"_target_": "SaveImaged"}]}});
        let added = json!({"postprocessing#transforms#0":
            {"_target_": "ToDeviced", "keys": "pred", "device": "cpu", "_disabled_": true}});
        assert_eq!(
            check_cpu_postprocessing(&[("a.json", &base), ("b.json", &added)]),
            Ok(())
        );
    }

    fn runtime() -> Runtime {
        Runtime {
            entrypoint: "scripts/run_ctmr.py".into(),
            official_entrypoint: "python -m monai.bundle run".into(),
            config_file: "configs/inference.json".into(),
        }
    }

    fn argv(config_value: &str) -> Vec<String> {
        [
            "/venv/bin/python",
            "-m",
            "monai.bundle",
            "run",
            "--config_file",
            config_value,
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(["--modality".to_string(), "CT_BODY".to_string()])
        .collect()
    }

    #[test]
    fn every_built_command_is_the_declared_entry_point() {
        let manifest = crate::manifest::embedded().unwrap();
        for tensorrt in [false, true] {
            let single = upstream::build_argv(&upstream::UpstreamRequest {
                python: "/venv/bin/python".into(),
                bundle_root: "/bundle".into(),
                input: "/data/ct.nii.gz".into(),
                output_dir: "/out".into(),
                modality: "CT_BODY".into(),
                label_prompts: None,
                overrides: vec![],
                device: upstream::DeviceRequest::Auto,
                tensorrt,
            })
            .unwrap();
            assert_eq!(
                check_declared_entry_point(&single, &manifest.runtime),
                Ok(())
            );
            let batch = upstream::build_batch_argv(&upstream::BatchRequest {
                python: "python3".into(),
                bundle_root: "/bundle".into(),
                input_dir: "/in".into(),
                output_dir: "/out".into(),
                modality: "CT_BODY".into(),
                overrides: vec![],
                device: upstream::DeviceRequest::Auto,
                tensorrt,
            })
            .unwrap();
            assert_eq!(
                check_declared_entry_point(&batch, &manifest.runtime),
                Ok(())
            );
        }
    }

    #[test]
    fn anything_else_is_refused() {
        let rt = runtime();
        let mut other_module = argv("configs/inference.json");
        other_module[2] = "monai.bundle.scripts".into();
        let mut verb = argv("configs/inference.json");
        verb[3] = "trt_export".into();
        let cases = [
            (other_module, "instead of the declared"),
            (verb, "instead of the declared"),
            (argv("configs/inference_trt.json"), "does not start with"),
            (
                argv("['configs/inference_trt.json', 'configs/inference.json']"),
                "does not start with",
            ),
            (
                argv("['configs/inference.json', 'configs/evaluate.json']"),
                "not the declared config followed by",
            ),
            (
                argv("['configs/inference.json', 'configs/inference_trt.json', 'configs/batch_inference.json']"),
                "(in that order)",
            ),
            (argv("[configs/inference.json]"), "not a list of quoted paths"),
        ];
        for (argv, needle) in cases {
            let err = check_declared_entry_point(&argv, &rt).unwrap_err();
            assert!(err.contains(needle), "{argv:?}: {err}");
        }
        let mut missing = argv("configs/inference.json");
        missing.remove(4);
        assert!(check_declared_entry_point(&missing, &rt)
            .unwrap_err()
            .contains("--config_file"));
        // A manifest that declares another config is not silently followed.
        let mut moved = runtime();
        moved.config_file = "configs/infer.yaml".into();
        assert!(check_declared_entry_point(&argv("configs/inference.json"), &moved).is_err());
    }
}
