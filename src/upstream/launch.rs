//! How the documented command is started so that nothing in the bundle root can shadow
//! an installed package, while the bundle's own `scripts` package still imports.
//!
//! `python -m` puts the working directory (the bundle root) *first* on `sys.path`, so a
//! `monai/` there would replace the real MONAI. Two ways around it:
//!
//! - Python >= 3.11 (`PYTHONSAFEPATH` honoured): the documented line runs **as is**.
//!   `PYTHONSAFEPATH=1` ([`super::child_env`]) keeps the working directory off
//!   `sys.path`, and `PYTHONPATH` names a private directory holding only
//!   [`PATH_SHIM`] as `sitecustomize.py`: it removes its own directory from `sys.path`,
//!   runs the environment's own `sitecustomize` (if any) as it would have run, and
//!   appends the bundle root *after* site-packages.
//! - Older Pythons: [`super::launch_argv`]'s `-c` bootstrap (same arguments, same
//!   `__main__` machinery as `-m`).

use super::argv::launch_argv;
use super::error::UpstreamError;
use super::python::ChildEnv;
use super::sandbox::PrivateTmp;
#[cfg(test)]
use std::path::Path;

/// The `sitecustomize.py` of the private `PYTHONPATH` directory (see the module docs).
pub const PATH_SHIM: &str = r#""""ctmr-skill: keep the bundle root after site-packages on sys.path."""
import os as _os
import sys as _sys

_here = _os.path.dirname(_os.path.abspath(__file__))
_sys.path[:] = [p for p in _sys.path if not p or _os.path.abspath(p) != _here]


def _chain():
    # The environment's own sitecustomize, looked up where site would have found it.
    from importlib.machinery import PathFinder
    from importlib.util import module_from_spec

    spec = PathFinder.find_spec("sitecustomize", _sys.path)
    if spec is None or spec.loader is None:
        return
    module = module_from_spec(spec)
    _sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


try:
    _chain()
finally:
    _sys.path.append(_os.getcwd())
"#;

/// Whether `python_version` (as the probe reports it, `3.11.7`) honours
/// `PYTHONSAFEPATH` (3.11 and later). Unreadable versions count as not.
pub fn safe_path_honoured(python_version: &str) -> bool {
    let mut parts = python_version
        .split('.')
        .map(|p| p.trim().parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= (3, 11),
        _ => false,
    }
}

/// The line and environment that start a documented command, and the private
/// directory they need (kept until the run ends).
#[derive(Debug)]
pub(crate) struct Launch {
    pub argv: Vec<String>,
    pub env: ChildEnv,
    /// Held so the shim's directory lives as long as the launch.
    #[cfg_attr(not(test), expect(dead_code, reason = "held, not read"))]
    shim: Option<PrivateTmp>,
}

impl Launch {
    /// The `PYTHONPATH` directory holding the shim, if this launch uses one.
    #[cfg(test)]
    pub(crate) fn shim_dir(&self) -> Option<&Path> {
        self.shim.as_ref().map(PrivateTmp::path)
    }
}

/// How to start `documented` (`python -m monai.bundle ...`) under `env` with an
/// interpreter of `python_version`: the documented line with the path shim where
/// `PYTHONSAFEPATH` is honoured, else the `-c` bootstrap.
pub(crate) fn plan_launch(
    documented: &[String],
    env: ChildEnv,
    python_version: &str,
) -> Result<Launch, UpstreamError> {
    if !safe_path_honoured(python_version) {
        return Ok(Launch {
            argv: launch_argv(documented),
            env,
            shim: None,
        });
    }
    let shim = PrivateTmp::create().map_err(|source| UpstreamError::Io {
        action: "cannot create the private path-shim dir in",
        path: std::env::temp_dir(),
        source,
    })?;
    let file = shim.path().join("sitecustomize.py");
    std::fs::write(&file, PATH_SHIM).map_err(|source| UpstreamError::Io {
        action: "cannot write",
        path: file,
        source,
    })?;
    let mut env = env;
    env.vars
        .insert("PYTHONPATH".into(), shim.path().as_os_str().to_os_string());
    env.set_by_us
        .insert("PYTHONPATH".into(), shim.path().display().to_string());
    Ok(Launch {
        argv: documented.to_vec(),
        env,
        shim: Some(shim),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn versions() {
        for (v, ok) in [
            ("3.11.7", true),
            ("3.12.0", true),
            ("3.13.0rc1", true),
            ("4.0", true),
            ("3.10.14", false),
            ("3.9", false),
            ("2.7.18", false),
            ("", false),
            ("three", false),
        ] {
            assert_eq!(safe_path_honoured(v), ok, "{v}");
        }
    }

    #[test]
    fn new_pythons_run_the_documented_line_with_the_shim() {
        let documented: Vec<String> = ["/venv/bin/python", "-m", "monai.bundle", "run", "--x", "1"]
            .map(String::from)
            .to_vec();
        let env = crate::upstream::child_env(Vec::new(), Path::new("/o"), Default::default());
        let l = plan_launch(&documented, env.clone(), "3.11.7").unwrap();
        assert_eq!(l.argv, documented);
        let dir = l.shim_dir().unwrap().to_path_buf();
        assert_eq!(l.env.vars[OsStr::new("PYTHONPATH")], dir.as_os_str());
        assert_eq!(l.env.set_by_us["PYTHONPATH"], dir.display().to_string());
        assert_eq!(
            std::fs::read_to_string(dir.join("sitecustomize.py")).unwrap(),
            PATH_SHIM
        );
        drop(l);
        assert!(!dir.exists(), "the shim dir outlived the launch");

        let l = plan_launch(&documented, env.clone(), "3.10.12").unwrap();
        assert_eq!(l.argv, launch_argv(&documented));
        assert_eq!(l.env, env);
        assert!(l.shim_dir().is_none());
    }
}
