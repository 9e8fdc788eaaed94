//! Which Python runs the bundle, the environment it runs under, and what that
//! environment really provides (versions, and the device torch will actually use).
//!
//! The device recorded in evidence is the probed one, not the requested one: `auto`
//! on a machine without CUDA runs on the CPU, and the evidence must say so.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::error::UpstreamError;
use super::sandbox::{harden, sandbox_for, with_tmpdir, PrivateTmp, SandboxRequest};

/// How long the probe may take by default: importing torch is slow on a cold cache.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(120);

/// Where the chosen interpreter came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PythonSource {
    /// `--python` (or a tool argument); when given, it is the only candidate.
    Explicit,
    /// `$CTMR_SKILL_PYTHON`.
    Env,
    /// `<cwd>/.venv/bin/python`.
    CwdVenv,
    /// `.venv/bin/python` in an ancestor of the running executable
    /// (`<repo>/target/release/ctmr-skill` finds `<repo>/.venv`).
    ExecutableVenv,
    /// `python3` on `$PATH`.
    Path,
}

impl PythonSource {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            PythonSource::Explicit => "--python",
            PythonSource::Env => "$CTMR_SKILL_PYTHON",
            PythonSource::CwdVenv => ".venv in the working directory",
            PythonSource::ExecutableVenv => ".venv beside the executable",
            PythonSource::Path => "python3 on PATH",
        }
    }
}

/// One interpreter candidate and its verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckedPython {
    pub path: PathBuf,
    pub source: PythonSource,
    /// `None` when accepted.
    pub rejected: Option<String>,
}

/// The interpreter to use, why, and everything checked before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct PythonChoice {
    pub path: PathBuf,
    pub source: PythonSource,
    pub checked: Vec<CheckedPython>,
}

/// Find the interpreter: `explicit`, else `$CTMR_SKILL_PYTHON` (`env_value`), else
/// `<cwd>/.venv/bin/python`, else `.venv/bin/python` in each ancestor of `exe`'s
/// directory, else `python3` on `path_var`. An explicit choice is the only candidate;
/// a bad `$CTMR_SKILL_PYTHON` is recorded and the search goes on. A bare name (no `/`)
/// is looked up on `path_var`. Paths are not canonicalised: a venv's `bin/python`
/// symlink must be run by its venv path to get the venv's packages.
pub(crate) fn find_python(
    explicit: Option<&Path>,
    env_value: Option<&OsStr>,
    cwd: &Path,
    exe: Option<&Path>,
    path_var: Option<&OsStr>,
) -> Result<PythonChoice, UpstreamError> {
    // (path, source, rejection known before looking at the file)
    let mut candidates: Vec<(PathBuf, PythonSource, Option<String>)> = Vec::new();
    let named = |p: &Path, source| {
        let bare = p.components().count() == 1 && !p.to_string_lossy().contains('/');
        if !bare {
            (cwd.join(p), source, None)
        } else {
            match which(p.as_os_str(), path_var) {
                Some(found) => (found, source, None),
                None => (
                    p.to_path_buf(),
                    source,
                    Some("not found on PATH".to_string()),
                ),
            }
        }
    };
    if let Some(p) = explicit {
        candidates.push(named(p, PythonSource::Explicit));
    } else {
        if let Some(v) = env_value.filter(|v| !v.is_empty()) {
            candidates.push(named(Path::new(v), PythonSource::Env));
        }
        candidates.push((cwd.join(".venv/bin/python"), PythonSource::CwdVenv, None));
        if let Some(dir) = exe.and_then(Path::parent) {
            for ancestor in dir.ancestors() {
                candidates.push((
                    ancestor.join(".venv/bin/python"),
                    PythonSource::ExecutableVenv,
                    None,
                ));
            }
        }
        candidates.push(named(Path::new("python3"), PythonSource::Path));
    }
    let mut checked: Vec<CheckedPython> = Vec::new();
    for (path, source, known) in candidates {
        if checked.iter().any(|c| c.path == path) {
            continue;
        }
        let rejected = known.or_else(|| executable_problem(&path));
        checked.push(CheckedPython {
            path: path.clone(),
            source,
            rejected: rejected.clone(),
        });
        if rejected.is_none() {
            return Ok(PythonChoice {
                path,
                source,
                checked,
            });
        }
    }
    Err(UpstreamError::PythonNotFound { checked })
}

fn executable_problem(path: &Path) -> Option<String> {
    match std::fs::metadata(path) {
        Err(_) => Some("does not exist".into()),
        Ok(m) if !m.is_file() => Some("not a file".into()),
        Ok(m) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                if m.permissions().mode() & 0o111 == 0 {
                    return Some("not executable".into());
                }
            }
            let _ = m;
            None
        }
    }
}

fn which(name: &OsStr, path_var: Option<&OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path_var?)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|p| executable_problem(p).is_none())
}

/// The device the caller asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeviceRequest {
    /// Leave the environment as it is; the bundle picks CUDA when torch sees it.
    #[default]
    Auto,
    /// Hide every GPU (`CUDA_VISIBLE_DEVICES=""`).
    Cpu,
    /// Require CUDA: refused before running when the probe sees none.
    Cuda,
}

impl DeviceRequest {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceRequest::Auto => "auto",
            DeviceRequest::Cpu => "cpu",
            DeviceRequest::Cuda => "cuda",
        }
    }
}

impl std::str::FromStr for DeviceRequest {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DeviceRequest::Auto),
            "cpu" => Ok(DeviceRequest::Cpu),
            "cuda" => Ok(DeviceRequest::Cuda),
            other => Err(format!("device '{other}' is not one of auto, cpu, cuda")),
        }
    }
}

/// The environment of the child: the base environment plus the settings below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildEnv {
    /// The complete environment the child gets.
    pub vars: BTreeMap<OsString, OsString>,
    /// What we set or replaced, for the record.
    pub set_by_us: BTreeMap<String, String>,
    /// Variables of the base environment we did not pass on ([`STRIPPED_PYTHON_VARS`]),
    /// for the record.
    pub removed: Vec<String>,
}

/// Python variables never passed to the child: each would let the client's shell
/// change which code the interpreter runs (`PYTHONPATH` ahead of site-packages, a
/// startup file, another prefix or user base, an interactive prompt at the end).
pub(crate) const STRIPPED_PYTHON_VARS: [&str; 5] = [
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PYTHONHOME",
    "PYTHONUSERBASE",
    "PYTHONINSPECT",
];

/// Run first in every `-c` program we start in the bundle root (the probe, the run's
/// bootstrap): drop the working directory `-c` puts first on `sys.path` (Python older
/// than 3.11, which ignores `PYTHONSAFEPATH`), using nothing but the built-in `sys`, then
/// append the bundle root (the working directory) *after* site-packages, so the
/// bundle's own `scripts` package imports while a `monai/` (or `runpy.py`, `torch/`, ...)
/// placed in the bundle root cannot shadow the installed one.
/// It leaves no names behind in `__main__`.
pub(crate) const SAFE_PATH_PRELUDE: &str = "import sys
if sys.path and sys.path[0] == '':
    del sys.path[0]
sys.path.append(__import__('os').getcwd())
del sys
";

/// The child's environment: `base` (normally the server's own environment) plus
/// - `MONAI_DATA_DIRECTORY=<output_dir>/_monai_data` and
///   `PYTORCH_CUDA_ALLOC_CONF=max_split_size_mb:128,expandable_segments:True` if unset
///   (the reference wrapper's defaults);
/// - `PYTHONUNBUFFERED=1` if unset, so log lines arrive as they are written (progress);
/// - `PYTHONDONTWRITEBYTECODE=1` if unset, so importing the bundle's `scripts` package
///   writes no `__pycache__` into the upstream checkout;
/// - for `device=cpu`, `CUDA_VISIBLE_DEVICES=""`;
/// - `PYTHONSAFEPATH=1` always (Python >= 3.11 then puts no working directory first on
///   `sys.path`; see [`SAFE_PATH_PRELUDE`] for older ones);
/// - without [`STRIPPED_PYTHON_VARS`], whatever the base says.
pub fn child_env(
    base: impl IntoIterator<Item = (OsString, OsString)>,
    output_dir: &Path,
    device: DeviceRequest,
) -> ChildEnv {
    let mut vars: BTreeMap<OsString, OsString> = base.into_iter().collect();
    let mut set_by_us = BTreeMap::new();
    let mut set_default = |key: &str, value: OsString| {
        if !vars.contains_key(OsStr::new(key)) {
            set_by_us.insert(key.to_string(), value.to_string_lossy().into_owned());
            vars.insert(key.into(), value);
        }
    };
    set_default(
        "MONAI_DATA_DIRECTORY",
        output_dir.join("_monai_data").into_os_string(),
    );
    set_default(
        "PYTORCH_CUDA_ALLOC_CONF",
        "max_split_size_mb:128,expandable_segments:True".into(),
    );
    set_default("PYTHONUNBUFFERED", "1".into());
    set_default("PYTHONDONTWRITEBYTECODE", "1".into());
    if device == DeviceRequest::Cpu {
        vars.insert("CUDA_VISIBLE_DEVICES".into(), OsString::new());
        set_by_us.insert("CUDA_VISIBLE_DEVICES".into(), String::new());
    }
    vars.insert("PYTHONSAFEPATH".into(), "1".into());
    set_by_us.insert("PYTHONSAFEPATH".into(), "1".into());
    let mut removed = Vec::new();
    for key in STRIPPED_PYTHON_VARS {
        if vars.remove(OsStr::new(key)).is_some() {
            removed.push(key.to_string());
        }
    }
    ChildEnv {
        vars,
        set_by_us,
        removed,
    }
}

/// What the interpreter provides under the run's environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvProbe {
    /// The interpreter as invoked.
    pub python: PathBuf,
    /// `sys.executable` as Python reports it.
    pub python_executable: String,
    pub python_version: String,
    pub platform: String,
    pub monai_version: String,
    pub torch_version: String,
    pub cuda_available: bool,
    pub cuda_device_name: Option<String>,
    /// The device the bundle will use: its config picks `cuda:0` iff
    /// `torch.cuda.is_available()`, so this is "cuda" or "cpu".
    pub device: String,
}

/// The probe run as `python -c PROBE_SCRIPT`; prints one marked JSON line.
pub(crate) const PROBE_SCRIPT: &str = r#"import json, platform, sys
r = {"python_executable": sys.executable, "python_version": platform.python_version(), "platform": platform.platform()}
try:
    import torch
    r["torch_version"] = str(torch.__version__)
    r["cuda_available"] = bool(torch.cuda.is_available())
    r["cuda_device_name"] = torch.cuda.get_device_name(0) if r["cuda_available"] else None
except Exception as e:
    r["torch_error"] = type(e).__name__ + ": " + str(e)
try:
    import monai
    r["monai_version"] = str(monai.__version__)
except Exception as e:
    r["monai_error"] = type(e).__name__ + ": " + str(e)
print("CTMR_SKILL_PROBE " + json.dumps(r), flush=True)
"#;

const PROBE_MARK: &str = "CTMR_SKILL_PROBE ";

#[derive(Deserialize)]
pub(crate) struct RawProbe {
    python_executable: String,
    python_version: String,
    platform: String,
    torch_version: Option<String>,
    cuda_available: Option<bool>,
    cuda_device_name: Option<String>,
    torch_error: Option<String>,
    monai_version: Option<String>,
    monai_error: Option<String>,
}

/// Run the probe with `python` under `env` in `cwd` (the run's own settings, so
/// `CUDA_VISIBLE_DEVICES` and friends have their effect), killed after `timeout`.
/// The program is [`SAFE_PATH_PRELUDE`] then [`PROBE_SCRIPT`]: like the run, the probe
/// imports monai and torch from site-packages, never from the bundle root. It runs in
/// the sandbox where Landlock is available, writing nowhere but its private `TMPDIR`
/// ([`super::supervise::probe_for_request`] applies the run's own sandbox settings).
pub async fn probe_environment(
    python: &Path,
    env: &ChildEnv,
    cwd: &Path,
    timeout: Duration,
) -> Result<EnvProbe, UpstreamError> {
    let sandbox = SandboxRequest {
        enabled: true,
        required: false,
        writable: Vec::new(),
        append_files: Vec::new(),
    };
    probe_environment_in(python, env, cwd, timeout, &sandbox).await
}

/// [`probe_environment`] under the sandbox settings `sandbox` (a private `TMPDIR` is
/// added to its writable directories).
pub async fn probe_environment_in(
    python: &Path,
    env: &ChildEnv,
    cwd: &Path,
    timeout: Duration,
    sandbox: &SandboxRequest,
) -> Result<EnvProbe, UpstreamError> {
    let tmp = PrivateTmp::create().map_err(|source| UpstreamError::Io {
        action: "cannot create the private temp dir in",
        path: std::env::temp_dir(),
        source,
    })?;
    let env = with_tmpdir(env, tmp.path());
    let mut sandbox = sandbox.clone();
    sandbox.writable.push(tmp.path().to_path_buf());
    let prepared = sandbox_for(&sandbox, &env)
        .map_err(|reason| UpstreamError::SandboxUnavailable { reason })?;
    let failed = |detail: String, stderr: &[u8]| UpstreamError::ProbeFailed {
        python: python.to_path_buf(),
        detail,
        stderr_tail: super::supervise::tail_of(&String::from_utf8_lossy(stderr), 2000),
    };
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg("-c")
        .arg(format!("{SAFE_PATH_PRELUDE}{PROBE_SCRIPT}"))
        .current_dir(cwd)
        .env_clear()
        .envs(&env.vars)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    cmd.process_group(0);
    harden(&mut cmd, &prepared);
    let spawned = cmd.spawn();
    drop(prepared);
    let child = spawned.map_err(|e| failed(format!("could not start it: {e}"), b""))?;
    let pid = child.id();
    let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(r) => r.map_err(|e| failed(format!("could not wait for it: {e}"), b""))?,
        Err(_) => {
            if let Some(pid) = pid {
                super::supervise::kill_group(pid, libc::SIGKILL);
            }
            return Err(failed(
                format!("no answer within {} s", timeout.as_secs_f64()),
                b"",
            ));
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Some(line) = stdout.lines().find_map(|l| l.strip_prefix(PROBE_MARK)) else {
        return Err(failed(
            format!("it exited with {} without an answer", out.status),
            &out.stderr,
        ));
    };
    let raw: RawProbe = serde_json::from_str(line)
        .map_err(|e| failed(format!("unreadable answer ({e}): {line}"), &out.stderr))?;
    probe_answer(python, raw)
}

/// The probe's answer as an [`EnvProbe`]; missing torch or monai is
/// [`UpstreamError::RuntimeMissing`].
pub(crate) fn probe_answer(python: &Path, raw: RawProbe) -> Result<EnvProbe, UpstreamError> {
    let missing: Vec<String> = [raw.torch_error.as_ref(), raw.monai_error.as_ref()]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(UpstreamError::RuntimeMissing {
            python: python.to_path_buf(),
            detail: missing.join("; "),
        });
    }
    let cuda_available = raw.cuda_available.unwrap_or(false);
    Ok(EnvProbe {
        python: python.to_path_buf(),
        python_executable: raw.python_executable,
        python_version: raw.python_version,
        platform: raw.platform,
        monai_version: raw.monai_version.unwrap_or_default(),
        torch_version: raw.torch_version.unwrap_or_default(),
        cuda_available,
        cuda_device_name: raw.cuda_device_name,
        device: if cuda_available { "cuda" } else { "cpu" }.into(),
    })
}

/// Refuse `device=cuda` when the probe (under the run's environment) saw no CUDA.
pub(crate) fn check_device(
    requested: DeviceRequest,
    probe: &EnvProbe,
) -> Result<(), UpstreamError> {
    if requested == DeviceRequest::Cuda && !probe.cuda_available {
        return Err(UpstreamError::CudaUnavailable {
            python: probe.python.clone(),
            torch_version: probe.torch_version.clone(),
        });
    }
    Ok(())
}

/// TensorRT needs CUDA: refuse `tensorrt` before running when the probe, taken under
/// the run's own environment, sees no CUDA device (`device=cpu`, or `auto` on a
/// machine without one).
pub(crate) fn check_tensorrt(tensorrt: bool, probe: &EnvProbe) -> Result<(), UpstreamError> {
    if tensorrt && !probe.cuda_available {
        return Err(UpstreamError::TensorRtNeedsCuda {
            python: probe.python.clone(),
            torch_version: probe.torch_version.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exe_file(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    #[test]
    fn search_order_and_records() {
        let t = tempfile::tempdir().unwrap();
        let cwd = t.path().join("work");
        let repo = t.path().join("repo");
        let bin = t.path().join("bin");
        std::fs::create_dir_all(&cwd).unwrap();
        exe_file(&bin.join("python3"));
        let exe = repo.join("target/release/ctmr-skill");
        let path_var = OsString::from(bin.as_os_str());

        // Only python3 on PATH exists.
        let c = find_python(None, None, &cwd, Some(&exe), Some(&path_var)).unwrap();
        assert_eq!(c.source, PythonSource::Path);
        assert_eq!(c.path, bin.join("python3"));
        assert_eq!(c.checked[0].source, PythonSource::CwdVenv);
        assert_eq!(c.checked[0].rejected.as_deref(), Some("does not exist"));
        assert!(c
            .checked
            .iter()
            .any(|k| k.path == repo.join(".venv/bin/python")
                && k.source == PythonSource::ExecutableVenv));

        // The repo's venv beside the release binary comes before PATH.
        exe_file(&repo.join(".venv/bin/python"));
        let c = find_python(None, None, &cwd, Some(&exe), Some(&path_var)).unwrap();
        assert_eq!(c.source, PythonSource::ExecutableVenv);
        assert_eq!(c.path, repo.join(".venv/bin/python"));

        // The working directory's venv comes before that.
        exe_file(&cwd.join(".venv/bin/python"));
        let c = find_python(None, None, &cwd, Some(&exe), Some(&path_var)).unwrap();
        assert_eq!(c.source, PythonSource::CwdVenv);

        // A bad $CTMR_SKILL_PYTHON is recorded and skipped; a good one wins.
        let bad = t.path().join("nope/python");
        let c = find_python(
            None,
            Some(bad.as_os_str()),
            &cwd,
            Some(&exe),
            Some(&path_var),
        )
        .unwrap();
        assert_eq!(c.source, PythonSource::CwdVenv);
        assert_eq!(c.checked[0].source, PythonSource::Env);
        assert_eq!(c.checked[0].path, bad);
        let good = t.path().join("custom/python");
        exe_file(&good);
        let c = find_python(
            None,
            Some(good.as_os_str()),
            &cwd,
            Some(&exe),
            Some(&path_var),
        )
        .unwrap();
        assert_eq!((c.source, c.path), (PythonSource::Env, good.clone()));

        // Explicit is the only candidate, and a bare name is looked up on PATH.
        let c = find_python(
            Some(Path::new("python3")),
            Some(good.as_os_str()),
            &cwd,
            None,
            Some(&path_var),
        )
        .unwrap();
        assert_eq!(
            (c.source, c.path),
            (PythonSource::Explicit, bin.join("python3"))
        );
        let err = find_python(Some(&bad), None, &cwd, Some(&exe), Some(&path_var)).unwrap_err();
        let UpstreamError::PythonNotFound { checked } = &err else {
            panic!("{err}")
        };
        assert_eq!(checked.len(), 1);
        assert!(err.to_string().contains("scripts/setup-python.sh"));
        assert!(err.to_string().contains(&bad.display().to_string()));
    }

    #[cfg(unix)]
    #[test]
    fn non_executable_and_nothing_found() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let py = t.path().join(".venv/bin/python");
        exe_file(&py);
        std::fs::set_permissions(&py, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = find_python(None, None, t.path(), None, Some(OsStr::new(""))).unwrap_err();
        let UpstreamError::PythonNotFound { checked } = err else {
            panic!()
        };
        assert_eq!(checked[0].rejected.as_deref(), Some("not executable"));
        assert_eq!(
            checked.last().unwrap().rejected.as_deref(),
            Some("not found on PATH")
        );
    }

    #[test]
    fn env_defaults_respect_the_callers_values() {
        let out = Path::new("/runs/out");
        let base = vec![
            (OsString::from("PATH"), OsString::from("/usr/bin")),
            (
                OsString::from("PYTORCH_CUDA_ALLOC_CONF"),
                OsString::from("mine"),
            ),
            (OsString::from("CUDA_VISIBLE_DEVICES"), OsString::from("0")),
        ];
        let e = child_env(base.clone(), out, DeviceRequest::Auto);
        assert_eq!(
            e.vars[OsStr::new("MONAI_DATA_DIRECTORY")],
            "/runs/out/_monai_data"
        );
        assert_eq!(e.vars[OsStr::new("PYTORCH_CUDA_ALLOC_CONF")], "mine");
        assert_eq!(e.vars[OsStr::new("CUDA_VISIBLE_DEVICES")], "0");
        assert_eq!(e.vars[OsStr::new("PATH")], "/usr/bin");
        assert_eq!(e.vars[OsStr::new("PYTHONDONTWRITEBYTECODE")], "1");
        assert!(!e.set_by_us.contains_key("PYTORCH_CUDA_ALLOC_CONF"));
        assert!(e.set_by_us.contains_key("MONAI_DATA_DIRECTORY"));

        let e = child_env(base, out, DeviceRequest::Cpu);
        assert_eq!(e.vars[OsStr::new("CUDA_VISIBLE_DEVICES")], "");
        assert_eq!(e.set_by_us["CUDA_VISIBLE_DEVICES"], "");

        let e = child_env(Vec::new(), out, DeviceRequest::Cuda);
        assert_eq!(
            e.vars[OsStr::new("PYTORCH_CUDA_ALLOC_CONF")],
            "max_split_size_mb:128,expandable_segments:True"
        );
        assert!(!e.vars.contains_key(OsStr::new("CUDA_VISIBLE_DEVICES")));
    }

    #[test]
    fn the_clients_python_settings_never_reach_the_child() {
        let mut base: Vec<(OsString, OsString)> = STRIPPED_PYTHON_VARS
            .iter()
            .map(|k| (OsString::from(k), OsString::from("/client/thing")))
            .collect();
        base.push(("PYTHONSAFEPATH".into(), "".into()));
        base.push(("PYTHONWARNINGS".into(), "ignore".into()));
        let e = child_env(base, Path::new("/runs/out"), DeviceRequest::Auto);
        for key in STRIPPED_PYTHON_VARS {
            assert!(!e.vars.contains_key(OsStr::new(key)), "{key} passed on");
        }
        assert_eq!(e.removed, STRIPPED_PYTHON_VARS);
        assert_eq!(e.vars[OsStr::new("PYTHONSAFEPATH")], "1");
        assert_eq!(e.set_by_us["PYTHONSAFEPATH"], "1");
        assert_eq!(e.vars[OsStr::new("PYTHONWARNINGS")], "ignore");

        let e = child_env(Vec::new(), Path::new("/runs/out"), DeviceRequest::Auto);
        assert!(e.removed.is_empty());
        assert_eq!(e.vars[OsStr::new("PYTHONSAFEPATH")], "1");
    }

    #[test]
    fn the_prelude_uses_only_sys_before_dropping_the_working_directory() {
        let drop_at = SAFE_PATH_PRELUDE.find("del sys.path[0]").unwrap();
        let before = &SAFE_PATH_PRELUDE[..drop_at];
        assert_eq!(before.matches("import").count(), 1, "{before}");
        assert!(before.starts_with("import sys\n"));
        assert!(SAFE_PATH_PRELUDE.contains("sys.path.append("));
        assert!(!SAFE_PATH_PRELUDE.contains("insert("));
    }

    #[test]
    fn cuda_is_refused_without_cuda() {
        let mut probe = EnvProbe {
            python: PathBuf::from("/venv/bin/python"),
            python_executable: "/venv/bin/python".into(),
            python_version: "3.11.7".into(),
            platform: "Linux".into(),
            monai_version: "1.5.2".into(),
            torch_version: "2.9.0+cpu".into(),
            cuda_available: false,
            cuda_device_name: None,
            device: "cpu".into(),
        };
        let err = check_device(DeviceRequest::Cuda, &probe).unwrap_err();
        assert!(err.to_string().contains("'cpu' or 'auto'"), "{err}");
        assert!(check_device(DeviceRequest::Auto, &probe).is_ok());
        assert!(check_device(DeviceRequest::Cpu, &probe).is_ok());
        let err = check_tensorrt(true, &probe).unwrap_err();
        assert!(err.to_string().contains("argument 'tensorrt'"), "{err}");
        assert!(err.to_string().contains("drop tensorrt"), "{err}");
        assert!(check_tensorrt(false, &probe).is_ok());
        probe.cuda_available = true;
        assert!(check_device(DeviceRequest::Cuda, &probe).is_ok());
        assert!(check_tensorrt(true, &probe).is_ok());
        assert_eq!("cuda".parse::<DeviceRequest>(), Ok(DeviceRequest::Cuda));
        assert!("gpu"
            .parse::<DeviceRequest>()
            .unwrap_err()
            .contains("auto, cpu, cuda"));
    }
}
