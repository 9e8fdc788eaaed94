//! Command-line interface: parse once into a typed command, dispatch, map every
//! outcome to a documented exit code.
//!
//! Exit codes:
//! - 0: success (for `verify`: the verdict is pass)
//! - 1: an internal or I/O error (for `verify`: the verdict is fail)
//! - 2: usage error or a gate refused the arguments
//! - 3: the upstream run failed (evidence is still written)
//! - 4: the upstream run timed out (evidence is still written)
//! - 5: the run was cancelled (evidence is still written)

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// ctmr-skill: run NV-Segment-CTMR and return verifiable evidence. Not for clinical use.
#[derive(Debug, Parser)]
#[command(name = "ctmr-skill", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the tools over MCP on stdio (JSON-RPC 2.0, one message per line).
    Serve,
}

/// Parse the process arguments, run, and map the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Serve => {
            eprintln!("ctmr-skill serve: not implemented yet");
            ExitCode::from(1)
        }
    }
}
