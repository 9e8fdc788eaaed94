//! The documented command lines, built as pure functions.
//!
//! Single volume (upstream README):
//! `python -m monai.bundle run --config_file configs/inference.json --input_dict "{'image': ...}" --output_dir O --modality M`
//!
//! Batch (upstream README, `configs/batch_inference.json` overrides `input_dir`):
//! `python -m monai.bundle run --config_file "['configs/inference.json', 'configs/batch_inference.json']" --input_dir D --output_dir O --modality M`
//!
//! TensorRT (upstream docs, "Execute inference with the TensorRT model"): the same
//! entry point with `configs/inference_trt.json` appended to the config list,
//! `--config_file "['configs/inference.json', 'configs/inference_trt.json']"` (for a
//! batch: inference, batch_inference, inference_trt). Nothing else changes.
//!
//! `monai.bundle` parses each value with python-fire, which reads Python literals
//! (`ast.literal_eval` after turning bare names into strings) and falls back to the raw
//! text. So the input dict is written exactly as Python's `repr(dict)` writes it, and
//! paths are required to be absolute: a value starting with `/` is never a Python
//! expression, nor a MONAI expression (`$`), reference (`@`) or macro (`%`).

use std::path::{Path, PathBuf};

use super::error::UpstreamError;
use super::python::DeviceRequest;

/// The inference config, relative to the bundle root (the child's working directory).
pub(crate) const CONFIG_FILE: &str = "configs/inference.json";
/// The batch config list, in the order the upstream README gives it.
pub(crate) const BATCH_CONFIG_FILES: [&str; 2] = [CONFIG_FILE, "configs/batch_inference.json"];
/// The upstream's TensorRT config, appended last to the config list when asked for.
pub(crate) const TRT_CONFIG_FILE: &str = "configs/inference_trt.json";
/// The documented out-of-memory switch (upstream docs/README.md, "TroubleShoot for
/// Out-of-Memory"): enabling the `ToDeviced(device="cpu")` transform that
/// `configs/inference.json` ships disabled as the first postprocessing transform moves
/// the postprocessing to the CPU. Passed as `--postprocessing#transforms#0#_disabled_ False`.
pub const CPU_POSTPROCESSING_OVERRIDE: (&str, &str) =
    ("postprocessing#transforms#0#_disabled_", "False");
/// The characters that make a MONAI config string code (`$`), a reference (`@`) or a
/// macro (`%`); no override value may hold one.
pub(crate) const MONAI_SPECIAL: [char; 3] = ['$', '@', '%'];
/// The modalities the bundle's `everything_labels` knows.
pub(crate) const SUPPORTED_MODALITIES: [&str; 3] = ["CT_BODY", "MRI_BODY", "MRI_BRAIN"];

/// One single-volume run of the bundle.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamRequest {
    /// The interpreter (`argv[0]`); not canonicalised, so a venv's `bin/python` keeps its venv.
    pub python: PathBuf,
    /// The bundle root; the child's working directory.
    pub bundle_root: PathBuf,
    /// Absolute path of the input NIfTI.
    pub input: PathBuf,
    /// Absolute output directory (`--output_dir`).
    pub output_dir: PathBuf,
    /// One of [`SUPPORTED_MODALITIES`].
    pub modality: String,
    /// Upstream class ids for `'label_prompt'`; `None` segments everything.
    pub label_prompts: Option<Vec<u32>>,
    /// Further documented config overrides, appended as `--key value` in order,
    /// e.g. `("patch_size", "[64,64,64]")`, `("sw_batch_size", "1")`.
    pub overrides: Vec<(String, String)>,
    /// The requested device; applied through the child's environment.
    pub device: DeviceRequest,
    /// Append [`TRT_CONFIG_FILE`] to the config list (the documented TensorRT entry).
    pub tensorrt: bool,
}

/// One batch run over a directory (`configs/batch_inference.json`).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRequest {
    pub python: PathBuf,
    pub bundle_root: PathBuf,
    /// Absolute input directory, searched recursively for `*.nii.gz` by the upstream.
    pub input_dir: PathBuf,
    pub output_dir: PathBuf,
    pub modality: String,
    /// Further overrides, e.g. `("input_suffix", "*.nii.gz")`, `("batch_resume_skip_existing", "False")`.
    pub overrides: Vec<(String, String)>,
    pub device: DeviceRequest,
    /// Append [`TRT_CONFIG_FILE`] to the config list.
    pub tensorrt: bool,
}

/// The config files of a run, relative to the bundle root, in the order MONAI merges
/// them: the inference config, the batch config for a batch, the TensorRT config last.
pub fn config_files(batch: bool, tensorrt: bool) -> Vec<&'static str> {
    let mut files = if batch {
        BATCH_CONFIG_FILES.to_vec()
    } else {
        vec![CONFIG_FILE]
    };
    if tensorrt {
        files.push(TRT_CONFIG_FILE);
    }
    files
}

/// The `--config_file` value: a lone file as its path (exactly the documented
/// single-volume command), several as a Python list literal.
pub(crate) fn config_file_value(files: &[&str]) -> String {
    match files {
        [single] => (*single).to_string(),
        many => {
            let items: Vec<String> = many.iter().map(|c| python_repr_str(c)).collect();
            format!("[{}]", items.join(", "))
        }
    }
}

/// The config files an argv passes as `--config_file` (the inverse of
/// [`config_file_value`] for the values it writes), for the evidence. `None` when the
/// argv has no `--config_file` or its value is not a list of quoted paths.
pub fn config_files_of(argv: &[String]) -> Option<Vec<String>> {
    let at = argv.iter().position(|a| a == "--config_file")?;
    let value = argv.get(at + 1)?.trim();
    let Some(inner) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) else {
        return Some(vec![value.to_string()]);
    };
    inner
        .split(',')
        .map(|item| {
            let item = item.trim();
            let quoted = item.len() >= 2
                && ((item.starts_with('\'') && item.ends_with('\''))
                    || (item.starts_with('"') && item.ends_with('"')));
            quoted.then(|| item[1..item.len() - 1].to_string())
        })
        .collect()
}

/// The argv of a single-volume run, `argv[0]` being the interpreter.
pub fn build_argv(req: &UpstreamRequest) -> Result<Vec<String>, UpstreamError> {
    let python = utf8("python", &req.python)?;
    let input = absolute_utf8("input", &req.input)?;
    let output_dir = absolute_utf8("output_dir", &req.output_dir)?;
    check_modality(&req.modality)?;
    check_overrides(
        &req.overrides,
        &["config_file", "input_dict", "output_dir", "modality"],
    )?;
    let named = [
        (
            "--input_dict",
            input_dict(input, req.label_prompts.as_deref()),
        ),
        ("--output_dir", output_dir.to_string()),
        ("--modality", req.modality.clone()),
    ];
    Ok(documented_argv(
        python,
        &config_files(false, req.tensorrt),
        &named,
        &req.overrides,
    ))
}

/// The argv of a batch run, `argv[0]` being the interpreter.
pub fn build_batch_argv(req: &BatchRequest) -> Result<Vec<String>, UpstreamError> {
    let python = utf8("python", &req.python)?;
    let input_dir = absolute_utf8("input_dir", &req.input_dir)?;
    let output_dir = absolute_utf8("output_dir", &req.output_dir)?;
    check_modality(&req.modality)?;
    check_overrides(
        &req.overrides,
        &[
            "config_file",
            "input_dir",
            "input_dict",
            "output_dir",
            "modality",
        ],
    )?;
    let named = [
        ("--input_dir", input_dir.to_string()),
        ("--output_dir", output_dir.to_string()),
        ("--modality", req.modality.clone()),
    ];
    Ok(documented_argv(
        python,
        &config_files(true, req.tensorrt),
        &named,
        &req.overrides,
    ))
}

/// The `--input_dict` value, as Python's `repr(dict)` writes it:
/// `{'image': '<input>'}`, plus `'label_prompt': [ids]` when prompts are given.
fn input_dict(input: &str, label_prompts: Option<&[u32]>) -> String {
    let mut items = vec![format!("'image': {}", python_repr_str(input))];
    if let Some(prompts) = label_prompts {
        let ids: Vec<String> = prompts.iter().map(u32::to_string).collect();
        items.push(format!("'label_prompt': [{}]", ids.join(", ")));
    }
    format!("{{{}}}", items.join(", "))
}

/// `python -m monai.bundle run --config_file C`, then the named arguments in order,
/// then the overrides.
fn documented_argv(
    python: &str,
    configs: &[&str],
    named: &[(&str, String)],
    overrides: &[(String, String)],
) -> Vec<String> {
    let mut argv = entry(python);
    argv.push("--config_file".into());
    argv.push(config_file_value(configs));
    for (flag, value) in named {
        argv.push((*flag).to_string());
        argv.push(value.clone());
    }
    push_overrides(&mut argv, overrides);
    argv
}

/// The program that stands in for `-m monai.bundle` in the line actually executed,
/// after [`super::python::SAFE_PATH_PRELUDE`] (the bundle root goes on `sys.path` after
/// site-packages, never first): `runpy._run_module_as_main`, the function `python -m`
/// itself calls, so `monai.bundle` runs as `__main__` in the same namespace with
/// `sys.argv` = the module's file followed by the documented arguments.
pub(crate) const RUN_BOOTSTRAP: &str =
    "__import__('runpy')._run_module_as_main('monai.bundle', True)
";

/// The line actually executed for a documented `python -m monai.bundle ...` argv:
/// `python -c <prelude + bootstrap> ...` with every argument after `monai.bundle`
/// unchanged, so MONAI sees exactly the documented arguments while a `monai/` package
/// in the bundle root (the working directory) cannot shadow the installed MONAI. Any
/// other argv is returned as it is.
pub fn launch_argv(documented: &[String]) -> Vec<String> {
    match documented {
        [python, m, module, rest @ ..] if m == "-m" && module == "monai.bundle" => {
            let mut argv = vec![
                python.clone(),
                "-c".to_string(),
                format!("{}{RUN_BOOTSTRAP}", super::python::SAFE_PATH_PRELUDE),
            ];
            argv.extend(rest.iter().cloned());
            argv
        }
        other => other.to_vec(),
    }
}

fn entry(python: &str) -> Vec<String> {
    vec![
        python.into(),
        "-m".into(),
        "monai.bundle".into(),
        "run".into(),
    ]
}

fn push_overrides(argv: &mut Vec<String>, overrides: &[(String, String)]) {
    for (key, value) in overrides {
        argv.push(format!("--{key}"));
        argv.push(value.clone());
    }
}

fn utf8<'a>(what: &'static str, path: &'a Path) -> Result<&'a str, UpstreamError> {
    path.to_str().ok_or_else(|| UpstreamError::NonUtf8Path {
        what,
        path: path.to_path_buf(),
    })
}

fn absolute_utf8<'a>(what: &'static str, path: &'a Path) -> Result<&'a str, UpstreamError> {
    if !path.is_absolute() {
        return Err(UpstreamError::NotAbsolute {
            what,
            path: path.to_path_buf(),
        });
    }
    utf8(what, path)
}

fn check_modality(modality: &str) -> Result<(), UpstreamError> {
    if SUPPORTED_MODALITIES.contains(&modality) {
        Ok(())
    } else {
        Err(UpstreamError::UnsupportedModality {
            modality: modality.to_string(),
        })
    }
}

/// Keys are plain MONAI config ids (`patch_size`, `inferer#overlap`); values must not be
/// MONAI expressions, references or macros, which MONAI would evaluate as code.
fn check_overrides(overrides: &[(String, String)], reserved: &[&str]) -> Result<(), UpstreamError> {
    for (key, value) in overrides {
        let bad = |reason| {
            Err(UpstreamError::BadOverride {
                key: key.clone(),
                reason,
            })
        };
        let mut chars = key.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '#') {
            return bad("a config id starts with a letter or '_' and holds only letters, digits, '_' and '#'");
        }
        if reserved.contains(&key.as_str()) {
            return bad("this argument is set by ctmr-skill itself");
        }
        if value.contains(MONAI_SPECIAL) {
            return bad("the value contains '$', '@' or '%', which MONAI evaluates as code, a reference or a macro");
        }
    }
    Ok(())
}

/// `s` as Python's `repr(str)` writes it: single quotes unless the text contains a
/// single quote and no double quote; backslash, the chosen quote, `\t` `\n` `\r` and
/// other control characters escaped. Non-ASCII characters are kept as they are except
/// the non-printable ones this function knows (C1 controls, separators, format and
/// private-use characters), which are escaped like Python does; Python additionally
/// escapes unassigned code points. Either way `ast.literal_eval` reads back `s` exactly.
pub(crate) fn python_repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if (c as u32) < 0x7f => out.push(c),
            c if is_non_printable(c) => {
                let cp = c as u32;
                if cp <= 0xff {
                    out.push_str(&format!("\\x{cp:02x}"));
                } else if cp <= 0xffff {
                    out.push_str(&format!("\\u{cp:04x}"));
                } else {
                    out.push_str(&format!("\\U{cp:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Non-ASCII characters Python's `str.isprintable()` rejects (categories Cc, Cf, Zs
/// other than space, Zl, Zp, Co, and the noncharacters), as far as this table goes.
fn is_non_printable(c: char) -> bool {
    let cp = c as u32;
    matches!(
        cp,
        0x80..=0xa0
            | 0xad
            | 0x600..=0x605
            | 0x61c
            | 0x6dd
            | 0x70f
            | 0x890..=0x891
            | 0x8e2
            | 0x180e
            | 0x1680
            | 0x2000..=0x200f
            | 0x2028..=0x202f
            | 0x205f..=0x2064
            | 0x2066..=0x206f
            | 0x3000
            | 0xe000..=0xf8ff
            | 0xfdd0..=0xfdef
            | 0xfeff
            | 0xfff9..=0xfffb
            | 0xfffe..=0xffff
            | 0xf0000..=0x10ffff
    ) || (cp & 0xfffe) == 0xfffe
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> UpstreamRequest {
        UpstreamRequest {
            python: PathBuf::from("/venv/bin/python"),
            bundle_root: PathBuf::from("/bundle"),
            input: PathBuf::from("/data/case 1.nii.gz"),
            output_dir: PathBuf::from("/runs/out"),
            modality: "CT_BODY".into(),
            label_prompts: None,
            overrides: vec![],
            device: DeviceRequest::Auto,
            tensorrt: false,
        }
    }

    #[test]
    fn everything_argv_is_the_documented_command() {
        assert_eq!(
            build_argv(&request()).unwrap(),
            [
                "/venv/bin/python",
                "-m",
                "monai.bundle",
                "run",
                "--config_file",
                "configs/inference.json",
                "--input_dict",
                "{'image': '/data/case 1.nii.gz'}",
                "--output_dir",
                "/runs/out",
                "--modality",
                "CT_BODY",
            ]
        );
    }

    #[test]
    fn prompts_and_overrides() {
        let mut req = request();
        req.label_prompts = Some(vec![3, 14]);
        req.modality = "MRI_BODY".into();
        req.overrides = vec![
            ("patch_size".into(), "[64,64,64]".into()),
            ("sw_batch_size".into(), "2".into()),
        ];
        let argv = build_argv(&req).unwrap();
        assert_eq!(
            argv[7],
            "{'image': '/data/case 1.nii.gz', 'label_prompt': [3, 14]}"
        );
        assert_eq!(argv[11], "MRI_BODY");
        assert_eq!(
            &argv[12..],
            ["--patch_size", "[64,64,64]", "--sw_batch_size", "2"]
        );
    }

    #[test]
    fn batch_argv() {
        let req = BatchRequest {
            python: PathBuf::from("python3"),
            bundle_root: PathBuf::from("/bundle"),
            input_dir: PathBuf::from("/data/in"),
            output_dir: PathBuf::from("/data/out"),
            modality: "MRI_BODY".into(),
            overrides: vec![("input_suffix".into(), "*.nii.gz".into())],
            device: DeviceRequest::Cpu,
            tensorrt: false,
        };
        assert_eq!(
            build_batch_argv(&req).unwrap(),
            [
                "python3",
                "-m",
                "monai.bundle",
                "run",
                "--config_file",
                "['configs/inference.json', 'configs/batch_inference.json']",
                "--input_dir",
                "/data/in",
                "--output_dir",
                "/data/out",
                "--modality",
                "MRI_BODY",
                "--input_suffix",
                "*.nii.gz",
            ]
        );
        let mut bad = req.clone();
        bad.overrides = vec![("input_dir".into(), "/x".into())];
        assert!(matches!(
            build_batch_argv(&bad),
            Err(UpstreamError::BadOverride { .. })
        ));
    }

    #[test]
    fn tensorrt_changes_only_the_config_list() {
        let mut req = request();
        req.overrides = vec![("patch_size".into(), "[64,64,64]".into())];
        let plain = build_argv(&req).unwrap();
        req.tensorrt = true;
        let trt = build_argv(&req).unwrap();
        assert_eq!(plain.len(), trt.len());
        let differing: Vec<usize> = (0..plain.len()).filter(|i| plain[*i] != trt[*i]).collect();
        assert_eq!(differing, [5]);
        assert_eq!(trt[4], "--config_file");
        assert_eq!(
            trt[5],
            "['configs/inference.json', 'configs/inference_trt.json']"
        );

        let batch = BatchRequest {
            python: PathBuf::from("python3"),
            bundle_root: PathBuf::from("/bundle"),
            input_dir: PathBuf::from("/data/in"),
            output_dir: PathBuf::from("/data/out"),
            modality: "CT_BODY".into(),
            overrides: vec![],
            device: DeviceRequest::Cuda,
            tensorrt: true,
        };
        let argv = build_batch_argv(&batch).unwrap();
        assert_eq!(
            argv[5],
            "['configs/inference.json', 'configs/batch_inference.json', 'configs/inference_trt.json']"
        );
        assert_eq!(
            config_files_of(&argv).unwrap(),
            [
                "configs/inference.json",
                "configs/batch_inference.json",
                "configs/inference_trt.json"
            ]
        );
    }

    #[test]
    fn launch_argv_swaps_only_the_module_switch_for_the_bootstrap() {
        let documented = build_argv(&request()).unwrap();
        let launch = launch_argv(&documented);
        assert_eq!(launch[0], documented[0]);
        assert_eq!(launch[1], "-c");
        assert!(launch[2].starts_with(crate::upstream::python::SAFE_PATH_PRELUDE));
        assert!(launch[2].ends_with(RUN_BOOTSTRAP));
        assert!(launch[2].contains("'monai.bundle'"));
        assert_eq!(launch[3..], documented[3..]);
        assert_eq!(launch[3], "run");
        assert_eq!(
            config_files_of(&launch),
            config_files_of(&documented),
            "the evidence reads the same configs from either line"
        );
        let other = vec!["sh".to_string(), "-c".to_string(), "true".to_string()];
        assert_eq!(launch_argv(&other), other);
        assert_eq!(launch_argv(&[]), Vec::<String>::new());
    }

    #[test]
    fn config_files_read_back_from_the_argv() {
        for (batch, tensorrt) in [(false, false), (false, true), (true, false), (true, true)] {
            let files = config_files(batch, tensorrt);
            let argv = vec![
                "python".to_string(),
                "--config_file".to_string(),
                config_file_value(&files),
            ];
            assert_eq!(config_files_of(&argv).unwrap(), files, "{batch} {tensorrt}");
        }
        assert_eq!(config_files(false, false), ["configs/inference.json"]);
        assert_eq!(
            config_file_value(&config_files(false, false)),
            "configs/inference.json"
        );
        assert!(config_files_of(&["python".to_string()]).is_none());
        let unquoted = ["--config_file".to_string(), "[configs/a.json]".to_string()];
        assert!(config_files_of(&unquoted).is_none());
    }

    #[test]
    fn the_cpu_postprocessing_override_is_a_plain_config_id() {
        let mut req = request();
        let (key, value) = CPU_POSTPROCESSING_OVERRIDE;
        req.overrides = vec![(key.into(), value.into())];
        let argv = build_argv(&req).unwrap();
        assert_eq!(
            &argv[12..],
            ["--postprocessing#transforms#0#_disabled_", "False"]
        );
    }

    #[test]
    fn rejects_bad_requests_with_the_argument_named() {
        let mut req = request();
        req.input = PathBuf::from("relative.nii.gz");
        let err = build_argv(&req).unwrap_err();
        assert!(err.to_string().contains("relative.nii.gz"), "{err}");
        assert!(matches!(
            err,
            UpstreamError::NotAbsolute { what: "input", .. }
        ));

        let mut req = request();
        req.output_dir = PathBuf::from("out");
        assert!(matches!(
            build_argv(&req),
            Err(UpstreamError::NotAbsolute {
                what: "output_dir",
                ..
            })
        ));

        let mut req = request();
        req.modality = "PET".into();
        assert!(build_argv(&req)
            .unwrap_err()
            .to_string()
            .contains("CT_BODY"));

        for (key, value) in [
            ("modality", "CT_BODY"),
            ("input_dict", "{}"),
            ("--x", "1"),
            ("1x", "1"),
            ("a b", "1"),
            ("patch_size", "$__import__('os').getcwd()"),
            ("patch_size", "@network"),
            ("patch_size", "%configs/x.json#a"),
        ] {
            let mut req = request();
            req.overrides = vec![(key.into(), value.into())];
            let err = build_argv(&req).unwrap_err();
            assert!(
                matches!(err, UpstreamError::BadOverride { .. }),
                "{key}={value}"
            );
            assert!(err.to_string().contains(key), "{err}");
        }
        let mut req = request();
        req.overrides = vec![("inferer#overlap".into(), "0.5".into())];
        assert!(build_argv(&req).is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_paths_are_refused() {
        use std::os::unix::ffi::OsStrExt;
        let mut req = request();
        req.input = PathBuf::from(std::ffi::OsStr::from_bytes(b"/data/\xff.nii.gz"));
        assert!(matches!(
            build_argv(&req),
            Err(UpstreamError::NonUtf8Path { what: "input", .. })
        ));
    }

    #[test]
    fn repr_matches_python_for_common_cases() {
        assert_eq!(python_repr_str("/a/b.nii.gz"), "'/a/b.nii.gz'");
        assert_eq!(python_repr_str("it's"), "\"it's\"");
        assert_eq!(python_repr_str("it's \"x\""), "'it\\'s \"x\"'");
        assert_eq!(python_repr_str("say \"x\""), "'say \"x\"'");
        assert_eq!(python_repr_str("a\\b"), "'a\\\\b'");
        assert_eq!(
            python_repr_str("t\tn\nr\r\x01\x7f"),
            "'t\\tn\\nr\\r\\x01\\x7f'"
        );
        assert_eq!(python_repr_str("héllo 日本"), "'héllo 日本'");
        assert_eq!(
            python_repr_str("\u{a0}\u{2028}\u{feff}"),
            "'\\xa0\\u2028\\ufeff'"
        );
        assert_eq!(python_repr_str("\u{10ffff}"), "'\\U0010ffff'");
    }
}
