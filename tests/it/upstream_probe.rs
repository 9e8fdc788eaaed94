//! The environment probe against the real venv interpreter, an interpreter without the
//! runtime, a missing interpreter and a hanging one.

use crate::common;

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ctmr_skill::upstream::{
    child_env, probe_environment, probe_environment_in, DeviceRequest, SandboxRequest,
    UpstreamError, DEFAULT_PROBE_TIMEOUT,
};

/// What the interpreter itself says, asked directly (one launch: importing torch is slow).
fn python_says() -> Vec<String> {
    let code = "import platform, monai, torch\n\
print(monai.__version__); print(torch.__version__); print(platform.python_version()); \
print(torch.cuda.is_available())";
    let out = Command::new(common::python())
        .arg("-c")
        .arg(code)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn real_probe_reports_versions_and_the_device_that_will_be_used() {
    let dir = common::fresh_dir();
    let python = common::python();
    let said = python_says();
    let (monai, torch, version, cuda) = (&said[0], &said[1], &said[2], said[3] == "True");

    let cpu_env = child_env(std::env::vars_os(), dir.path(), DeviceRequest::Cpu);
    let p = probe_environment(&python, &cpu_env, dir.path(), DEFAULT_PROBE_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(p.python, python);
    assert_eq!(&p.monai_version, monai);
    assert_eq!(&p.torch_version, torch);
    assert_eq!(&p.python_version, version);
    assert!(!p.platform.is_empty());
    // device=cpu hides every GPU, so the bundle will run on the CPU.
    assert!(!p.cuda_available);
    assert_eq!(p.device, "cpu");

    // device=auto: whatever torch sees under the unchanged environment.
    let auto_env = child_env(std::env::vars_os(), dir.path(), DeviceRequest::Auto);
    let p = probe_environment(&python, &auto_env, dir.path(), DEFAULT_PROBE_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(p.cuda_available, cuda);
    assert_eq!(p.device, if cuda { "cuda" } else { "cpu" });
}

#[tokio::test]
async fn missing_runtime_names_the_fix() {
    let dir = common::fresh_dir();
    let python = common::repo_root().join("tests/fixtures/upstream/python_without_runtime.py");
    let env = child_env(std::env::vars_os(), dir.path(), DeviceRequest::Auto);
    let err = probe_environment(&python, &env, dir.path(), DEFAULT_PROBE_TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::RuntimeMissing { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("scripts/setup-python.sh"), "{msg}");
    assert!(msg.contains("monai"), "{msg}");
    assert!(msg.contains("python_without_runtime.py"), "{msg}");
}

#[tokio::test]
async fn missing_interpreter_is_a_probe_failure() {
    let dir = common::fresh_dir();
    let python = dir.path().join("no-python");
    let env = child_env(std::env::vars_os(), dir.path(), DeviceRequest::Auto);
    let err = probe_environment(&python, &env, dir.path(), DEFAULT_PROBE_TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::ProbeFailed { .. }), "{err}");
    assert!(err.to_string().contains("no-python"), "{err}");
}

#[tokio::test]
async fn hanging_interpreter_is_killed_at_the_probe_timeout() {
    let dir = common::fresh_dir();
    let record = dir.path().join("record.json");
    let python = common::repo_root().join("tests/fixtures/upstream/fake_python.py");
    let mut base: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    base.push(("FAKE_SLEEP".into(), "300".into()));
    base.push(("FAKE_RECORD".into(), record.clone().into_os_string()));
    let env = child_env(base, dir.path(), DeviceRequest::Auto);
    // The fake records beside the probe's private TMPDIR: let the sandbox allow it.
    let sandbox = SandboxRequest {
        enabled: true,
        required: false,
        writable: vec![dir.path().to_path_buf()],
        append_files: vec![],
    };
    let err = probe_environment_in(&python, &env, dir.path(), Duration::from_secs(8), &sandbox)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no answer within"), "{err}");
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    let pid = rec["pid"].as_i64().unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(20);
    while Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid) {
        assert!(
            std::time::Instant::now() < until,
            "probe process {pid} survived"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn is_zombie(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}
