//! Everything the process learns from its environment, read once at start-up and
//! passed down, so no module reaches for `std::env` on its own.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// What can be wrong with the environment or with a bundle root a call names; the
/// messages are the ones operators and clients read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// The working directory cannot be read (deleted under the process, no permission).
    #[error("cannot read the working directory: {0}")]
    WorkingDirectory(#[source] std::io::Error),
    /// A variable that must hold a positive number does not.
    #[error("{variable}={value:?} is not a positive {what}")]
    NotPositive {
        variable: &'static str,
        value: String,
        /// "integer" or "number of seconds".
        what: &'static str,
    },
    /// Two bundle roots share a name.
    #[error("bundle root name '{0}' is declared twice; give each --bundle-root NAME=DIR a distinct name")]
    DuplicateRootName(String),
    /// A call named a bundle root the operator did not install; `known` lists those it
    /// may name, as `NAME (DIR)`.
    #[error("names no bundle root the operator installed (a bundle's configs and scripts run as code, so only the operator may add one); use one of: {}", .known.join(", "))]
    RootNotInstalled { known: Vec<String> },
}

/// Environment variable naming extra directories runs may write into (`:`-separated).
pub(crate) const ALLOWED_DIRS_ENV: &str = "CTMR_SKILL_ALLOWED_DIRS";
/// Environment variable naming the upstream bundle root.
pub(crate) const ROOT_ENV: &str = "NV_SEGMENT_CTMR_ROOT";
/// Environment variable naming the Python interpreter for the upstream.
pub(crate) const PYTHON_ENV: &str = "CTMR_SKILL_PYTHON";
/// Environment variable for how many upstream runs may execute at once on each device.
pub(crate) const MAX_RUNS_ENV: &str = "CTMR_SKILL_MAX_CONCURRENT_RUNS";
/// Environment variable naming the bundle roots an operator installed
/// (`:`-separated, each `DIR` or `NAME=DIR`), beside `serve --bundle-root`.
pub(crate) const BUNDLE_ROOTS_ENV: &str = "CTMR_SKILL_BUNDLE_ROOTS";
/// Environment variable: seconds a warm worker waits for requests before it stops.
pub(crate) const WORKER_IDLE_ENV: &str = "CTMR_SKILL_WORKER_IDLE_SECONDS";
/// Environment variable that makes the sandbox a requirement (`1`, `true`, `yes`).
pub(crate) const REQUIRE_SANDBOX_ENV: &str = "CTMR_SKILL_REQUIRE_SANDBOX";
/// The bundle root found without any setting (relative to the working directory).
pub(crate) const WORKBENCH_ROOT: &str = ".workbench_data/upstreams/NV-Segment-CTMR/NV-Segment-CTMR";
/// Environment variable naming the runs index directory (see [`index_dir`]).
pub(crate) const RUNS_DIR_ENV: &str = "CTMR_SKILL_RUNS_DIR";
/// Comma-separated `sbatch` flags (`--constraint,--reservation`) clients may add to a
/// Slurm cohort (`serve --slurm-allow-flag` adds more).
pub(crate) const SLURM_ALLOW_FLAGS_ENV: &str = "CTMR_SKILL_SLURM_ALLOW_FLAGS";
/// Lines the Slurm job script runs before ctmr-skill (`module load ...`, a container).
pub(crate) const SLURM_PROLOGUE_ENV: &str = "CTMR_SKILL_SLURM_PROLOGUE";

/// A bundle root the operator installed, and the name a client may use for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleRoot {
    pub name: String,
    /// Absolute.
    pub path: PathBuf,
}

/// Who names bundle roots in calls. The bundle's configs and scripts run as code, so
/// only the operator may introduce one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootPolicy {
    /// The operator's own CLI: any directory it names.
    Operator,
    /// MCP clients: one of [`Config::bundle_roots`], by name or path, or none.
    Declared,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The working directory; relative paths in arguments resolve against it.
    pub cwd: PathBuf,
    /// Directories a run may write into (canonical): cwd, the temp dir, and `CTMR_SKILL_ALLOWED_DIRS`.
    pub allowed_dirs: Vec<PathBuf>,
    /// `$NV_SEGMENT_CTMR_ROOT`, if set and non-empty.
    pub env_root: Option<String>,
    /// The interpreter chosen explicitly (`--python`, or by whoever builds the config).
    pub python: Option<PathBuf>,
    /// `$CTMR_SKILL_PYTHON`, if set and non-empty (consulted after `python`).
    pub python_env: Option<PathBuf>,
    /// Upstream runs allowed at once per device; further runs queue.
    pub max_concurrent_runs: usize,
    /// The runs index directory (see [`index_dir`]).
    pub runs_dir: PathBuf,
    /// This executable (a `.venv` beside it is one place to find Python).
    pub exe: Option<PathBuf>,
    /// `$PATH`, where `python3` is looked for last.
    pub path_var: Option<OsString>,
    /// The environment the upstream children start from (they add and remove from it).
    pub child_env: Vec<(OsString, OsString)>,
    /// The bundle roots the operator declared (`serve --bundle-root`,
    /// `CTMR_SKILL_BUNDLE_ROOTS`, `NV_SEGMENT_CTMR_ROOT` as `env`, the workbench root
    /// as `default`), in that order.
    pub bundle_roots: Vec<BundleRoot>,
    pub root_policy: RootPolicy,
    /// Refuse to run the upstream where the Landlock sandbox cannot be applied
    /// (`serve --require-sandbox`, `CTMR_SKILL_REQUIRE_SANDBOX=1`).
    pub require_sandbox: bool,
    /// `run_script` goes through warm workers that keep the model loaded (`serve`'s
    /// default; `serve --no-warm` and the CLI run the documented command each time).
    pub warm_workers: bool,
    /// A warm worker stops after this long without requests
    /// (`CTMR_SKILL_WORKER_IDLE_SECONDS`, default 300), freeing its memory.
    pub worker_idle: std::time::Duration,
    /// `sbatch` flags a client may pass in `slurm_flags` (the operator's allow-list).
    pub slurm_allow_flags: Vec<String>,
    /// The operator's prologue for Slurm job scripts.
    pub slurm_prologue: Option<String>,
}

impl Config {
    pub(crate) fn from_env() -> Result<Config, ConfigError> {
        let cwd = std::env::current_dir().map_err(ConfigError::WorkingDirectory)?;
        let extra = std::env::var(ALLOWED_DIRS_ENV).unwrap_or_default();
        let max_runs = match std::env::var(MAX_RUNS_ENV) {
            Ok(v) if !v.trim().is_empty() => {
                v.trim().parse::<usize>().ok().filter(|n| *n >= 1).ok_or(
                    ConfigError::NotPositive {
                        variable: MAX_RUNS_ENV,
                        value: v,
                        what: "integer",
                    },
                )?
            }
            _ => 1,
        };
        let var = |k: &str| std::env::var(k).ok();
        let runs_dir = index_dir(
            var(RUNS_DIR_ENV).as_deref(),
            var("XDG_STATE_HOME").as_deref(),
            var("HOME").as_deref(),
            &cwd,
        );
        let mut config = Config::new(
            cwd,
            extra
                .split(':')
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect(),
            non_empty(std::env::var(ROOT_ENV).ok()),
            non_empty(std::env::var(PYTHON_ENV).ok()).map(PathBuf::from),
            max_runs,
        );
        config.runs_dir = runs_dir;
        if let Ok(v) = std::env::var(WORKER_IDLE_ENV) {
            let seconds = v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0)
                .ok_or(ConfigError::NotPositive {
                    variable: WORKER_IDLE_ENV,
                    value: v.clone(),
                    what: "number of seconds",
                })?;
            config.worker_idle = std::time::Duration::from_secs_f64(seconds);
        }
        config.slurm_allow_flags = std::env::var(SLURM_ALLOW_FLAGS_ENV)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        config.slurm_prologue = non_empty(std::env::var(SLURM_PROLOGUE_ENV).ok());
        config.require_sandbox = matches!(
            std::env::var(REQUIRE_SANDBOX_ENV).as_deref().map(str::trim),
            Ok("1" | "true" | "yes")
        );
        config.declare_roots(
            &std::env::var(BUNDLE_ROOTS_ENV)
                .unwrap_or_default()
                .split(':')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>(),
        )?;
        Ok(config)
    }

    /// Build a config from explicit parts (tests build fresh worlds this way).
    pub fn new(
        cwd: PathBuf,
        extra_allowed: Vec<PathBuf>,
        env_root: Option<String>,
        python: Option<PathBuf>,
        max_concurrent_runs: usize,
    ) -> Config {
        let mut allowed_dirs = vec![
            canonical_or_self(&cwd),
            canonical_or_self(&std::env::temp_dir()),
        ];
        allowed_dirs.extend(
            extra_allowed
                .iter()
                .map(|p| canonical_or_self(&cwd.join(p))),
        );
        allowed_dirs.dedup();
        let mut config = Config {
            runs_dir: cwd.join(".ctmr-skill/runs"),
            cwd,
            allowed_dirs,
            env_root,
            python,
            python_env: None,
            max_concurrent_runs: max_concurrent_runs.max(1),
            // What the process itself was started with: the children start from it.
            exe: std::env::current_exe().ok(),
            path_var: std::env::var_os("PATH"),
            child_env: std::env::vars_os().collect(),
            require_sandbox: false,
            warm_workers: false,
            worker_idle: std::time::Duration::from_secs(300),
            slurm_allow_flags: Vec::new(),
            slurm_prologue: None,
            bundle_roots: Vec::new(),
            root_policy: RootPolicy::Operator,
        };
        config.declare_implicit_roots();
        config
    }

    /// `NV_SEGMENT_CTMR_ROOT` as `env` and the workbench root as `default`, after
    /// whatever was declared by name.
    fn declare_implicit_roots(&mut self) {
        self.bundle_roots
            .retain(|r| r.name != "env" && r.name != "default");
        if let Some(env) = &self.env_root {
            let path = canonical_or_self(&self.cwd.join(env));
            self.bundle_roots.push(BundleRoot {
                name: "env".into(),
                path,
            });
        }
        let path = canonical_or_self(&self.cwd.join(WORKBENCH_ROOT));
        self.bundle_roots.push(BundleRoot {
            name: "default".into(),
            path,
        });
    }

    /// Add operator roots, each `DIR` (named after its last component) or `NAME=DIR`,
    /// ahead of `env` and `default`. A name used twice is an error.
    pub(crate) fn declare_roots(&mut self, specs: &[String]) -> Result<(), ConfigError> {
        let mut declared: Vec<BundleRoot> = Vec::new();
        for spec in specs {
            let (name, dir) = match spec.split_once('=') {
                Some((name, dir)) if !name.is_empty() && !name.contains('/') => {
                    (name.to_string(), dir)
                }
                _ => {
                    let name = Path::new(spec)
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_else(|| spec.clone());
                    (name, spec.as_str())
                }
            };
            let path = canonical_or_self(&self.cwd.join(dir));
            if declared
                .iter()
                .chain(&self.bundle_roots)
                .any(|r| r.name == name)
            {
                return Err(ConfigError::DuplicateRootName(name));
            }
            declared.push(BundleRoot { name, path });
        }
        declared.append(&mut self.bundle_roots);
        self.bundle_roots = declared;
        Ok(())
    }

    /// The bundle root a call asked for, under the policy. Nothing asked: `None` (the
    /// usual order: `NV_SEGMENT_CTMR_ROOT`, then the workbench root) unless the
    /// variable is unset and the operator declared roots by name, then the first of
    /// those. The error says which roots a client may name.
    pub(crate) fn bundle_root_for(
        &self,
        requested: Option<&str>,
    ) -> Result<Option<PathBuf>, ConfigError> {
        let Some(requested) = requested else {
            if self.env_root.is_some() {
                return Ok(None);
            }
            let declared = self
                .bundle_roots
                .iter()
                .find(|r| r.name != "env" && r.name != "default");
            return Ok(declared.map(|r| r.path.clone()));
        };
        if self.root_policy == RootPolicy::Operator {
            return Ok(Some(self.absolute(Path::new(requested))));
        }
        if let Some(root) = self.bundle_roots.iter().find(|r| r.name == requested) {
            return Ok(Some(root.path.clone()));
        }
        let asked = canonical_or_self(&self.absolute(Path::new(requested)));
        if let Some(root) = self.bundle_roots.iter().find(|r| r.path == asked) {
            return Ok(Some(root.path.clone()));
        }
        let known: Vec<String> = self
            .bundle_roots
            .iter()
            .map(|r| format!("{} ({})", r.name, r.path.display()))
            .collect();
        Err(ConfigError::RootNotInstalled { known })
    }

    /// An argument path made absolute against the working directory.
    pub fn absolute(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.cwd.join(path)
        }
    }
}

/// The runs index directory from the environment's values (pure):
/// `CTMR_SKILL_RUNS_DIR`, else `$XDG_STATE_HOME/ctmr-skill/runs`, else
/// `~/.local/state/ctmr-skill/runs`, else `<cwd>/.ctmr-skill/runs`.
pub(crate) fn index_dir(
    runs_env: Option<&str>,
    xdg_state_home: Option<&str>,
    home: Option<&str>,
    cwd: &Path,
) -> PathBuf {
    let set = |v: Option<&str>| {
        v.map(str::trim)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = set(runs_env) {
        return cwd.join(dir);
    }
    if let Some(state) = set(xdg_state_home).filter(|p| p.is_absolute()) {
        return state.join("ctmr-skill/runs");
    }
    if let Some(home) = set(home).filter(|p| p.is_absolute()) {
        return home.join(".local/state/ctmr-skill/runs");
    }
    cwd.join(".ctmr-skill/runs")
}

fn non_empty(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The canonical form of a path that may not exist yet: components are applied one by
/// one, resolving symlinks of every existing prefix, so `..` and links cannot escape a
/// containment check.
pub(crate) fn canonical_or_self(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => {
                out.push(other);
                if let Ok(resolved) = out.canonicalize() {
                    out = resolved;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_of_missing_paths_resolves_dot_dot() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let p = canonical_or_self(&dir.path().join("a/b/../c"));
        assert_eq!(p, base.join("a/c"));
    }

    #[test]
    fn allowed_dirs_include_cwd_and_temp() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::new(dir.path().to_path_buf(), vec![], None, None, 0);
        assert!(config
            .allowed_dirs
            .contains(&dir.path().canonicalize().unwrap()));
        assert!(config
            .allowed_dirs
            .contains(&std::env::temp_dir().canonicalize().unwrap()));
        assert_eq!(config.max_concurrent_runs, 1);
    }

    #[test]
    fn index_dir_precedence() {
        let cwd = Path::new("/work/here");
        assert_eq!(
            index_dir(Some("runs"), Some("/state"), Some("/home/u"), cwd),
            PathBuf::from("/work/here/runs")
        );
        assert_eq!(
            index_dir(Some(" "), Some("/state"), Some("/home/u"), cwd),
            PathBuf::from("/state/ctmr-skill/runs")
        );
        assert_eq!(
            index_dir(None, Some("relative"), Some("/home/u"), cwd),
            PathBuf::from("/home/u/.local/state/ctmr-skill/runs")
        );
        assert_eq!(
            index_dir(None, None, None, cwd),
            PathBuf::from("/work/here/.ctmr-skill/runs")
        );
    }

    #[test]
    fn clients_choose_among_the_operators_roots() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let mut config = Config::new(base.clone(), vec![], Some("env-root".into()), None, 1);
        config
            .declare_roots(&["demo=bundles/demo".into(), "bundles/real".into()])
            .unwrap();
        let names: Vec<&str> = config
            .bundle_roots
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(names, ["demo", "real", "env", "default"]);
        // The operator's CLI may name any directory.
        assert_eq!(
            config.bundle_root_for(Some("/elsewhere")).unwrap(),
            Some(PathBuf::from("/elsewhere"))
        );
        config.root_policy = RootPolicy::Declared;
        assert_eq!(
            config.bundle_root_for(Some("demo")).unwrap(),
            Some(base.join("bundles/demo"))
        );
        assert_eq!(
            config
                .bundle_root_for(Some(&base.join("bundles/real/").display().to_string()))
                .unwrap(),
            Some(base.join("bundles/real"))
        );
        assert_eq!(
            config.bundle_root_for(Some("env")).unwrap(),
            Some(base.join("env-root"))
        );
        // NV_SEGMENT_CTMR_ROOT stays the default while it is set.
        assert_eq!(config.bundle_root_for(None).unwrap(), None);
        let refused = config.bundle_root_for(Some("/tmp/attacker")).unwrap_err();
        assert!(matches!(&refused, ConfigError::RootNotInstalled { known } if known.len() == 4));
        let refused = refused.to_string();
        assert!(
            refused.contains("demo (") && refused.contains("operator"),
            "{refused}"
        );
        // `..` cannot walk out of a declared root into another directory.
        assert!(config
            .bundle_root_for(Some(&base.join("bundles/demo/../x").display().to_string()))
            .is_err());
        let twice = config.declare_roots(&["demo=/x".into()]).unwrap_err();
        assert!(
            matches!(&twice, ConfigError::DuplicateRootName(name) if name == "demo"),
            "{twice}"
        );
        assert!(twice
            .to_string()
            .starts_with("bundle root name 'demo' is declared twice"));
        // Without the variable, the first root declared by name is the default.
        let mut config = Config::new(base.clone(), vec![], None, None, 1);
        config.declare_roots(&["demo=bundles/demo".into()]).unwrap();
        config.root_policy = RootPolicy::Declared;
        assert_eq!(
            config.bundle_root_for(None).unwrap(),
            Some(base.join("bundles/demo"))
        );
    }
}
