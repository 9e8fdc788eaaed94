//! What makes a pack reproducible without ctmr-skill: `replay.sh`, the documented
//! command with the recorded interpreter, bundle root, input and overrides, writing
//! into a fresh directory; and `environment.lock`, the interpreter's `pip freeze`.
//!
//! Why a script and not just the argv in `output.json`: a reader who doubts the
//! evidence should need nothing but bash and the recorded environment to run the
//! upstream again and compare masks (the paired verifier does the comparing).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Variables the run set that do not belong in a replay: they point into this run's
/// private directories, or keep a bundle's files behind site-packages in a way only a
/// ctmr-skill launch provides (the documented command runs from the bundle root).
const NOT_REPLAYED: [&str; 4] = [
    "PYTHONPATH",
    "PYTHONSAFEPATH",
    "TMPDIR",
    "MONAI_DATA_DIRECTORY",
];

/// Single-quote for bash.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `replay.sh` for `command` (the documented argv, `command[0]` the interpreter) run
/// from `bundle_root` with `env_set` (what the run set), writing into `$1` or a fresh
/// temporary directory instead of the pack.
pub(crate) fn replay_script(
    run_id: &str,
    command: &[String],
    bundle_root: &Path,
    env_set: &BTreeMap<String, String>,
) -> String {
    let mut line = Vec::new();
    let mut args = command.iter().peekable();
    while let Some(arg) = args.next() {
        line.push(quote(arg));
        if arg == "--output_dir" && args.next().is_some() {
            line.push("\"$OUT\"".into());
        }
    }
    let exports: String = env_set
        .iter()
        .filter(|(k, _)| !NOT_REPLAYED.contains(&k.as_str()))
        .map(|(k, v)| format!("export {k}={}\n", quote(v)))
        .collect();
    format!(
        "#!/usr/bin/env bash\n\
         # Re-runs run {run_id}'s documented NV-Segment-CTMR command without ctmr-skill, with the\n\
         # recorded interpreter, bundle root, input and overrides, into a fresh directory\n\
         # (argument 1, else a new temporary one). Not for clinical use.\n\
         set -euo pipefail\n\
         OUT=\"${{1:-$(mktemp -d)}}\"\n\
         mkdir -p \"$OUT\"\n\
         OUT=\"$(cd \"$OUT\" && pwd)\"\n\
         {exports}\
         cd {}\n\
         {}\n\
         echo \"replayed into $OUT\" >&2\n",
        quote(&bundle_root.display().to_string()),
        line.join(" ")
    )
}

/// `pip freeze` of `python`, captured once per interpreter (by path, size and mtime)
/// for the life of the process; `None` when pip cannot answer.
pub(crate) fn environment_lock(python: &Path) -> Option<String> {
    type Key = (PathBuf, u64, Option<std::time::SystemTime>);
    static CACHE: Mutex<BTreeMap<Key, String>> = Mutex::new(BTreeMap::new());
    let meta = std::fs::metadata(python).ok()?;
    let key = (python.to_path_buf(), meta.len(), meta.modified().ok());
    if let Some(hit) = CACHE.lock().ok()?.get(&key) {
        return Some(hit.clone());
    }
    let out = std::process::Command::new(python)
        .args(["-m", "pip", "freeze", "--all"])
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = format!(
        "# pip freeze --all of {} (captured by ctmr-skill)\n{}",
        python.display(),
        String::from_utf8_lossy(&out.stdout)
    );
    CACHE.lock().ok()?.insert(key, text.clone());
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_replays_the_documented_command_into_a_fresh_directory() {
        let command: Vec<String> = [
            "/venv/bin/python",
            "-m",
            "monai.bundle",
            "run",
            "--config_file",
            "configs/inference.json",
            "--input_dict",
            "{'image': '/data/it''s.nii.gz', 'label_prompt': [1, 3]}",
            "--output_dir",
            "/packs/case1",
            "--modality",
            "CT_BODY",
        ]
        .map(String::from)
        .to_vec();
        let env = BTreeMap::from([
            ("CUDA_VISIBLE_DEVICES".to_string(), String::new()),
            ("PYTHONSAFEPATH".to_string(), "1".to_string()),
            ("TMPDIR".to_string(), "/tmp/private".to_string()),
        ]);
        let script = replay_script("r1", &command, Path::new("/bundle root"), &env);
        assert!(script.starts_with("#!/usr/bin/env bash\n"));
        assert!(script.contains("set -euo pipefail"));
        assert!(script.contains("cd '/bundle root'\n"));
        assert!(script.contains("export CUDA_VISIBLE_DEVICES=''\n"));
        assert!(!script.contains("PYTHONSAFEPATH") && !script.contains("/tmp/private"));
        assert!(script.contains("'--output_dir' \"$OUT\" '--modality'"));
        assert!(!script.contains("/packs/case1"));
        assert!(script.contains(r"'{'\''image'\'': '\''/data/it'\'''\''s.nii.gz'\''"));
        assert!(script.to_lowercase().contains("not for clinical use"));
    }
}
