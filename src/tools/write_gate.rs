//! The one gate for every path a client names for writing.
//!
//! Why one gate: a tool that writes where a client says (`run_script`'s `output_dir`,
//! `run_batch`'s `output_root`, `render_overlay`'s `out`) is a way for whoever steers
//! the client to overwrite the operator's files. Each such argument is declared in the
//! manifest with `writes: directory` or `writes: picture`, and each tool passes it
//! through [`check`] before anything is written; `tests/it/trust_boundary.rs` reads the
//! manifest and tries every declared argument with paths outside the rules.
//!
//! The rules, in the order they are checked:
//! - no NUL byte;
//! - resolved (every existing prefix's links and `..` applied), the path lies inside
//!   an allowed directory, so a link inside an allowed directory cannot carry a write
//!   out of it: the write goes to the resolved path;
//! - a directory is not an allowed directory itself: a run gets a directory of its
//!   own, so nothing that was already there is ever taken for part of its pack;
//! - it is outside every bundle root the operator declared and outside the runs index;
//! - a picture's file name ends in `.png` and is not hidden (no `.bashrc`, no
//!   `.ssh/authorized_keys` inside an allowed home directory), and is not a directory.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::config::{canonical_or_self, Config};

/// What a client's path will receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    /// A run's directory (an evidence pack, a cohort's output root).
    Directory,
    /// One PNG file.
    Picture,
}

impl Written {
    /// The manifest's word for it (`writes: directory`).
    pub(crate) fn parse(word: &str) -> Option<Written> {
        match word {
            "directory" => Some(Written::Directory),
            "picture" => Some(Written::Picture),
            _ => None,
        }
    }
}

/// Why a path may not be written: the rule it broke and the fix, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub rule: String,
    pub fix: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; {}", self.rule, self.fix)
    }
}

impl Refusal {
    /// The refusal of the client's argument `argument`.
    pub(crate) fn for_argument(self, argument: &str) -> crate::manifest::args::ArgError {
        crate::manifest::args::ArgError::new(argument, self.rule, self.fix)
    }
}

fn refuse(rule: String, fix: impl Into<String>) -> Refusal {
    Refusal {
        rule,
        fix: fix.into(),
    }
}

/// Where `path` (relative to the server's working directory) may be written: its
/// resolved form, or the rule it broke.
pub(crate) fn check(config: &Config, path: &Path, what: Written) -> Result<PathBuf, Refusal> {
    let shown = path.display();
    if path.as_os_str().as_bytes().contains(&0) {
        return Err(refuse(
            format!(
                "{} holds a NUL byte",
                shown.to_string().replace('\0', "\\0")
            ),
            "pass a plain path",
        ));
    }
    let real = canonical_or_self(&config.absolute(path));
    if !config.allowed_dirs.iter().any(|a| real.starts_with(a)) {
        return Err(refuse(
            format!(
                "{shown} is not inside an allowed directory ({})",
                list(&config.allowed_dirs)
            ),
            "choose a path under one of them, or ask the operator to add one (CTMR_SKILL_ALLOWED_DIRS)",
        ));
    }
    if what == Written::Directory && config.allowed_dirs.contains(&real) {
        return Err(refuse(
            format!("{shown} is an allowed directory itself; a run needs a directory of its own (nothing already there may become part of its pack)"),
            format!("choose a subdirectory such as {}", real.join("run-1").display()),
        ));
    }
    if let Some(root) = config
        .bundle_roots
        .iter()
        .find(|r| real.starts_with(canonical_or_self(&r.path)))
    {
        return Err(refuse(
            format!("{shown} is inside the bundle root '{}'", root.name),
            "choose a directory outside every bundle",
        ));
    }
    if real.starts_with(canonical_or_self(&config.runs_dir)) {
        return Err(refuse(
            format!(
                "{shown} is inside the runs index ({})",
                config.runs_dir.display()
            ),
            "choose a directory outside it",
        ));
    }
    if what == Written::Picture {
        picture_name(&real, path)?;
    }
    Ok(real)
}

fn picture_name(real: &Path, path: &Path) -> Result<(), Refusal> {
    let name = real
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.starts_with('.') || !name.ends_with(".png") || name.len() <= ".png".len() {
        return Err(refuse(
            format!("{} is not a picture's name", path.display()),
            "pass a file name ending in .png that does not start with a dot",
        ));
    }
    if real.is_dir() {
        return Err(refuse(
            format!("{} is a directory", path.display()),
            "pass a file name ending in .png",
        ));
    }
    Ok(())
}

fn list(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(base: &Path) -> Config {
        let mut c = Config::new(base.join("cwd"), vec![], None, None, 0);
        c.allowed_dirs = vec![base.join("cwd")];
        c.runs_dir = base.join("cwd/index");
        c
    }

    #[test]
    fn each_rule_refuses_in_words_and_a_good_path_resolves() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(base.join("cwd/pics")).unwrap();
        std::fs::create_dir_all(base.join("outside")).unwrap();
        std::os::unix::fs::symlink(base.join("outside"), base.join("cwd/link")).unwrap();
        let c = config(&base);
        let dir_cases = [
            ("../outside/x", "not inside an allowed directory"),
            ("link/pack", "not inside an allowed directory"),
            (".", "an allowed directory itself"),
            ("pics/..", "an allowed directory itself"),
            ("index/pack", "inside the runs index"),
            ("a\0b", "NUL byte"),
        ];
        for (path, words) in dir_cases {
            let e = check(&c, Path::new(path), Written::Directory)
                .unwrap_err()
                .to_string();
            assert!(e.contains(words), "{path}: {e}");
        }
        for (path, words) in [
            ("pics/.bashrc", "not a picture's name"),
            (".png", "not a picture's name"),
            ("pics/x.txt", "not a picture's name"),
            ("link/x.png", "not inside an allowed directory"),
        ] {
            let e = check(&c, Path::new(path), Written::Picture)
                .unwrap_err()
                .to_string();
            assert!(e.contains(words), "{path}: {e}");
        }
        std::fs::create_dir(base.join("cwd/pics/d.png")).unwrap();
        let e = check(&c, Path::new("pics/d.png"), Written::Picture)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is a directory"), "{e}");
        assert_eq!(
            check(&c, Path::new("pics/../pics/a.png"), Written::Picture).unwrap(),
            base.join("cwd/pics/a.png")
        );
        assert_eq!(
            check(&c, Path::new("pack"), Written::Directory).unwrap(),
            base.join("cwd/pack")
        );
    }
}
