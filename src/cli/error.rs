//! What can go wrong in a subcommand, typed: the flag at fault (or the step that
//! failed) and the exit code it means. Subcommands return these instead of printing;
//! [`super::main`] is the one place that writes an error to stderr, as
//! `ctmr-skill <subcommand>: <message>`, and picks the exit code.

use std::path::PathBuf;

use super::exit_codes::ExitCode;
use crate::evidence::RunStatus;
use crate::tools::registry::{FailureKind, ToolFailure};
use crate::verifier::VerifyUsageError;

/// A subcommand's failure (or one before any subcommand ran).
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// A flag's value cannot be used (a missing file, a malformed spec): exit 2, nothing ran.
    #[error("--{flag}{}: {reason}", shown(value))]
    Flag {
        /// The flag, without its dashes.
        flag: &'static str,
        /// The path it named, when that is what is wrong.
        value: Option<PathBuf>,
        /// What is wrong and the fix.
        reason: String,
    },
    /// The verifier could form no verdict from what it was given: exit 2.
    #[error(transparent)]
    Verify(#[from] VerifyUsageError),
    /// What a flag asked for beyond the result could not be done (`verify --render`):
    /// exit 1, the result itself was printed.
    #[error("--{flag}: {reason}")]
    FlagFailed {
        /// The flag, without its dashes.
        flag: &'static str,
        /// What failed.
        reason: String,
    },
    /// The environment (`CTMR_SKILL_*`, the working directory) is unusable: exit 2.
    #[error("{0}")]
    Environment(String),
    /// The embedded manifest does not load (a build defect): exit 1.
    #[error("{0}")]
    Manifest(String),
    /// The tools could not be set up from the configuration and manifest: exit 1.
    #[error("{0}")]
    Tools(String),
    /// A run tool's call ended without its document: refused (exit 2, the refusal's
    /// document on stdout) or not started (exit 1, a `not_started` document on stdout).
    #[error("{}", .0.message)]
    Call(ToolFailure),
    /// A tool (or a file a flag named) refused the input: exit 2, nothing on stdout.
    #[error("{0}")]
    Input(String),
    /// The MCP server stopped on an error: exit 1.
    #[error("{0}")]
    Server(String),
    /// A file could not be written: exit 1.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `schema --check`: the files on disk differ from the generated ones: exit 1.
    #[error("generated schemas are out of date: {}. Fix: run `ctmr-skill schema`", .0.join(", "))]
    SchemasOutOfDate(Vec<String>),
    /// The result could not be written to standard output (a full disk): exit 1.
    #[error("cannot write the result to standard output: {0}")]
    Stdout(std::io::Error),
}

fn shown(value: &Option<PathBuf>) -> String {
    value
        .as_ref()
        .map(|p| format!(" {}", p.display()))
        .unwrap_or_default()
}

impl CliError {
    /// The exit code this error ends the process with.
    pub(crate) fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Flag { .. }
            | CliError::Verify(_)
            | CliError::Input(_)
            | CliError::Environment(_) => ExitCode::Usage,
            CliError::Call(failure) => ExitCode::of_failure(failure.kind),
            CliError::FlagFailed { .. }
            | CliError::Manifest(_)
            | CliError::Tools(_)
            | CliError::Server(_)
            | CliError::Write { .. }
            | CliError::SchemasOutOfDate(_)
            | CliError::Stdout(_) => ExitCode::Error,
        }
    }

    /// Whether the error belongs to the subcommand (printed after its name) rather than
    /// to the process around it (the environment, the manifest, standard output).
    pub(crate) fn in_subcommand(&self) -> bool {
        !matches!(
            self,
            CliError::Environment(_) | CliError::Manifest(_) | CliError::Stdout(_)
        )
    }

    /// What the error puts on stdout besides its line on stderr: a run tool's
    /// refusal (its document) or a run that could not start, for scripts that read
    /// the JSON whatever the exit code.
    pub(crate) fn document(&self) -> Option<serde_json::Value> {
        let CliError::Call(failure) = self else {
            return None;
        };
        let message = &failure.message;
        Some(match failure.kind {
            FailureKind::Refused => failure.document.clone().unwrap_or_else(
                || serde_json::json!({"status": RunStatus::Refused, "message": message}),
            ),
            FailureKind::NotStarted | FailureKind::Failed => {
                serde_json::json!({"status": "not_started", "message": message})
            }
        })
    }

    /// A flag whose path names nothing usable.
    pub(crate) fn flag_path(flag: &'static str, value: PathBuf, reason: impl Into<String>) -> Self {
        CliError::Flag {
            flag,
            value: Some(value),
            reason: reason.into(),
        }
    }

    /// A flag whose value is wrong.
    pub(crate) fn flag(flag: &'static str, reason: impl Into<String>) -> Self {
        CliError::Flag {
            flag,
            value: None,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_flag_and_codes_follow_the_kind() {
        let missing = CliError::flag_path("bounds", "/x.json".into(), "no such file");
        assert_eq!(missing.to_string(), "--bounds /x.json: no such file");
        assert_eq!(missing.exit_code(), ExitCode::Usage);
        let bad = CliError::flag("bundle-root", "empty name");
        assert_eq!(bad.to_string(), "--bundle-root: empty name");
        let drift = CliError::SchemasOutOfDate(vec!["a.json".into(), "b.json".into()]);
        assert_eq!(
            drift.to_string(),
            "generated schemas are out of date: a.json, b.json. Fix: run `ctmr-skill schema`"
        );
        assert_eq!(drift.exit_code(), ExitCode::Error);
        let stdout = CliError::Stdout(std::io::Error::other("disk full"));
        assert!(!stdout.in_subcommand() && drift.in_subcommand());
        assert_eq!(stdout.exit_code(), ExitCode::Error);
        assert_eq!(stdout.document(), None);
    }

    #[test]
    fn a_call_that_ran_nothing_says_so_on_stdout_too() {
        let refused = CliError::Call(ToolFailure::new(FailureKind::Refused, "no such file"));
        assert_eq!(refused.to_string(), "no such file");
        assert_eq!(refused.exit_code(), ExitCode::Usage);
        let doc = refused.document().unwrap();
        assert_eq!(doc["status"], "refused");
        assert_eq!(doc["message"], "no such file");
        let planted = ToolFailure {
            document: Some(serde_json::json!({"status": "refused", "gate": "g"})),
            ..ToolFailure::new(FailureKind::Refused, "gate g")
        };
        assert_eq!(CliError::Call(planted).document().unwrap()["gate"], "g");
        let idle = CliError::Call(ToolFailure::new(FailureKind::NotStarted, "no python"));
        assert_eq!(idle.exit_code(), ExitCode::Error);
        assert_eq!(idle.document().unwrap()["status"], "not_started");
    }
}
