//! The job script of a cohort's array: one template, filled with shell-quoted values.
//!
//! Why a script at all (and not `sbatch --wrap`): the cohort records the exact text
//! Slurm ran, and an operator can read, diff and re-submit it. The client's options
//! never reach the script: they become `sbatch` arguments (argv, no shell). The
//! script holds only what the operator and the server decided: the binary, its
//! configuration, an optional prologue (`module load ...`, a container line) and the
//! shard directory. Each task reads its inputs from `shard-<TASK>.inputs`
//! (NUL-separated paths), so no input path is ever parsed by a shell.

use std::path::PathBuf;

/// The template's version, recorded beside the script.
pub(crate) const TEMPLATE_ID: &str = "ctmr-skill.slurm-task/1";

const TEMPLATE: &str = r#"#!/bin/bash
# ctmr-skill run-batch: one Slurm array task runs one shard of a cohort.
# Generated from template {{template}}. Research and benchmarking use only.
# Not for clinical use.
set -euo pipefail
{{env}}
{{prologue}}
shard={{shard_dir}}/shard-"${SLURM_ARRAY_TASK_ID:?this script runs as a Slurm array task}".inputs
mapfile -d '' -t inputs < "$shard"
exec {{command}} -- "${inputs[@]}"
"#;

/// What fills the template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ScriptParts {
    /// Variables exported before the command (the operator's configuration).
    pub env: Vec<(String, String)>,
    /// Operator lines run before the command (`module load ...`), verbatim.
    pub prologue: Option<String>,
    /// Where `shard-<N>.inputs` lie.
    pub shard_dir: PathBuf,
    /// The command without its inputs (binary first).
    pub command: Vec<String>,
}

/// The job script's text.
pub(crate) fn job_script(parts: &ScriptParts) -> String {
    let env: Vec<String> = parts
        .env
        .iter()
        .map(|(k, v)| format!("export {k}={}", shell_quote(v)))
        .collect();
    let command: Vec<String> = parts.command.iter().map(|a| shell_quote(a)).collect();
    TEMPLATE
        .replace("{{template}}", TEMPLATE_ID)
        .replace("{{env}}", &env.join("\n"))
        .replace(
            "{{prologue}}",
            parts
                .prologue
                .as_deref()
                .unwrap_or("# (no operator prologue)"),
        )
        .replace(
            "{{shard_dir}}",
            &shell_quote(&parts.shard_dir.to_string_lossy()),
        )
        .replace("{{command}}", &command.join(" "))
}

/// One word for bash: bare when it is plainly safe, else single-quoted.
pub(crate) fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-=:,+@%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_bash() {
        let nasty = "a b'c$(touch x)\"`;\n";
        let quoted = shell_quote(nasty);
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("printf %s {quoted}"))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), nasty);
        assert_eq!(shell_quote("/x/y.nii.gz"), "/x/y.nii.gz");
    }

    #[test]
    fn the_script_names_its_template_and_quotes_everything() {
        let text = job_script(&ScriptParts {
            env: vec![("CTMR_SKILL_RUNS_DIR".into(), "/r s".into())],
            prologue: None,
            shard_dir: PathBuf::from("/out/.slurm/x"),
            command: vec!["/bin/ctmr skill".into(), "run-batch".into()],
        });
        assert!(text.contains(TEMPLATE_ID));
        assert!(text.contains("export CTMR_SKILL_RUNS_DIR='/r s'"));
        assert!(text.contains("exec '/bin/ctmr skill' run-batch -- \"${inputs[@]}\""));
        assert!(text.contains("Not for clinical use"));
    }
}
