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
    /// The code a subcommand that still answers in `u8` returned (`run`, `run-batch`,
    /// `inspect`, `render`, `labels`); a number outside the table is an error.
    pub(crate) fn from_u8(code: u8) -> Self {
        match code {
            0 => ExitCode::Success,
            2 => ExitCode::Usage,
            3 => ExitCode::UpstreamFailed,
            4 => ExitCode::TimedOut,
            5 => ExitCode::Cancelled,
            _ => ExitCode::Error,
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

/// [`ExitCode::Success`] as a number, for the subcommands that return `u8`.
pub(crate) const EXIT_OK: u8 = ExitCode::Success as u8;
/// [`ExitCode::Error`] as a number.
pub(crate) const EXIT_ERROR: u8 = ExitCode::Error as u8;
/// [`ExitCode::Usage`] as a number.
pub(crate) const EXIT_USAGE: u8 = ExitCode::Usage as u8;
/// [`ExitCode::UpstreamFailed`] as a number.
pub(crate) const EXIT_UPSTREAM_FAILED: u8 = ExitCode::UpstreamFailed as u8;
/// [`ExitCode::TimedOut`] as a number.
pub(crate) const EXIT_TIMED_OUT: u8 = ExitCode::TimedOut as u8;
/// [`ExitCode::Cancelled`] as a number.
pub(crate) const EXIT_CANCELLED: u8 = ExitCode::Cancelled as u8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_number() {
        use ExitCode::*;
        for code in [Success, Error, Usage, UpstreamFailed, TimedOut, Cancelled] {
            assert_eq!(ExitCode::from_u8(code as u8), code);
        }
        assert_eq!(ExitCode::from_u8(101), Error);
        assert_eq!((EXIT_OK, EXIT_USAGE, EXIT_CANCELLED), (0, 2, 5));
    }
}
