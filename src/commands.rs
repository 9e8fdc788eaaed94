//! The CLI subcommands: each is a thin face over the library, printing JSON or a
//! readable table and returning the documented exit code (see [`crate::cli`]).

use std::path::Path;

use crate::cli::{Command, SchemaArgs};
use crate::config::Config;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: internal or I/O error; for `verify`, a fail verdict.
pub const EXIT_ERROR: u8 = 1;
/// Exit code: usage error or gate refusal.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the upstream run failed.
pub const EXIT_UPSTREAM_FAILED: u8 = 3;
/// Exit code: the upstream run timed out.
pub const EXIT_TIMED_OUT: u8 = 4;
/// Exit code: the run was cancelled.
pub const EXIT_CANCELLED: u8 = 5;

pub fn dispatch(command: Command, config: Config) -> u8 {
    match command {
        Command::Schema(args) => schema(&args),
        other => {
            let _ = (other, config);
            eprintln!("ctmr-skill: this subcommand is being wired");
            EXIT_ERROR
        }
    }
}

/// `ctmr-skill schema`: write (or check) the generated schema files.
fn schema(args: &SchemaArgs) -> u8 {
    let manifest = match crate::manifest::embedded() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("ctmr-skill: {e}");
            return EXIT_ERROR;
        }
    };
    let mut drifted = Vec::new();
    for (relative, content) in crate::manifest::schema::generated_files(&manifest) {
        let path = args.root.join(&relative);
        let current = std::fs::read_to_string(&path).ok();
        if current.as_deref() == Some(content.as_str()) {
            continue;
        }
        if args.check {
            drifted.push(relative);
        } else if let Err(e) = crate::atomic::write(&path, content.as_bytes()) {
            eprintln!("ctmr-skill: cannot write {}: {e}", path.display());
            return EXIT_ERROR;
        } else {
            eprintln!("wrote {}", display(&path));
        }
    }
    if drifted.is_empty() {
        EXIT_OK
    } else {
        eprintln!(
            "ctmr-skill: generated schemas are out of date: {}. Fix: run `ctmr-skill schema`",
            drifted.join(", ")
        );
        EXIT_ERROR
    }
}

fn display(path: &Path) -> String {
    path.display().to_string()
}
