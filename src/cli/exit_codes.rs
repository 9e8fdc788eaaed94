//! The CLI's exit codes, in one place: scripts and schedulers branch on them, so each
//! has one meaning across subcommands, documented here and in the README's CLI section.
//!
//! - 0: success (`verify`: the verdict is pass; `doctor`: every required check passed)
//! - 1: an internal or I/O error, including a result that cannot be written to stdout
//!   (a full disk) (`verify`: the verdict is fail; `doctor`: a required check failed)
//! - 2: usage error, or a gate refused the arguments (nothing ran)
//! - 3: the upstream run failed (the evidence is still written)
//! - 4: the upstream run timed out (the evidence is still written)
//! - 5: the run was cancelled (the evidence is still written)

use crate::evidence::cohort::CohortStatus;
use crate::evidence::RunStatus;
use crate::tools::registry::{Answer, FailureKind, ToolFailure};
use crate::tools::run_batch::BatchOutput;
use crate::tools::run_script::RunOutput;

/// How a `ctmr-skill` process ends; each variant's number is the process's exit code
/// (listed in the README's CLI section too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Success; `verify`: pass.
    Success = 0,
    /// An internal or I/O error; `verify`: a fail verdict.
    Error = 1,
    /// A usage error or a gate's refusal: nothing ran.
    Usage = 2,
    /// The upstream run failed (evidence written).
    UpstreamFailed = 3,
    /// The upstream run timed out (evidence written).
    TimedOut = 4,
    /// The run was cancelled (evidence written).
    Cancelled = 5,
}

impl ExitCode {
    /// The code of a call that ended without its document: a refusal is a usage
    /// error (nothing ran); a call that could not start, or failed, is an error.
    pub(crate) fn of_failure(kind: FailureKind) -> Self {
        match kind {
            FailureKind::Refused => ExitCode::Usage,
            FailureKind::NotStarted | FailureKind::Failed => ExitCode::Error,
        }
    }

    /// The code of a finished call of a run tool: the one place a run's or a cohort's
    /// status (or a verifier's distrust) becomes an exit code.
    pub(crate) fn of_call<O: Finished>(outcome: &Result<Answer<O>, ToolFailure>) -> Self {
        match outcome {
            Ok(answer) => answer.output.exit_code(),
            Err(failure) => Self::of_failure(failure.kind),
        }
    }

    /// Success when `ok`, else [`ExitCode::Error`]: a verdict (verify, doctor).
    pub fn verdict(ok: bool) -> Self {
        if ok {
            ExitCode::Success
        } else {
            ExitCode::Error
        }
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code as u8)
    }
}

/// A run tool's output, as an exit code: `run` and `run-batch` end with it.
pub(crate) trait Finished {
    /// The code this output ends the process with.
    fn exit_code(&self) -> ExitCode;
}

impl Finished for RunOutput {
    /// After `--verify`, the verifier's verdict; otherwise the run's status.
    fn exit_code(&self) -> ExitCode {
        if let Some(trust) = &self.trust_summary {
            return ExitCode::verdict(trust.trusted);
        }
        match self.evidence.status {
            RunStatus::Succeeded => ExitCode::Success,
            RunStatus::TimedOut => ExitCode::TimedOut,
            RunStatus::Cancelled => ExitCode::Cancelled,
            RunStatus::Refused => ExitCode::Usage,
            RunStatus::UpstreamFailed => ExitCode::UpstreamFailed,
        }
    }
}

impl Finished for BatchOutput {
    /// A volume the verifier distrusts is an error; otherwise the cohort's status
    /// (a partial cohort is an upstream failure).
    fn exit_code(&self) -> ExitCode {
        let untrusted = self
            .trust_summaries
            .iter()
            .flatten()
            .any(|t| !t.trust.trusted);
        match self.cohort.status {
            _ if untrusted => ExitCode::Error,
            CohortStatus::Succeeded => ExitCode::Success,
            CohortStatus::TimedOut => ExitCode::TimedOut,
            CohortStatus::Cancelled => ExitCode::Cancelled,
            CohortStatus::Partial | CohortStatus::Failed => ExitCode::UpstreamFailed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_documented_number() {
        use ExitCode::*;
        let numbers = [Success, Error, Usage, UpstreamFailed, TimedOut, Cancelled].map(|c| c as u8);
        assert_eq!(numbers, [0, 1, 2, 3, 4, 5]);
        assert_eq!(ExitCode::of_failure(FailureKind::Refused), Usage);
        assert_eq!(ExitCode::of_failure(FailureKind::NotStarted), Error);
        assert_eq!(ExitCode::of_failure(FailureKind::Failed), Error);
    }
}
