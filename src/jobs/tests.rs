//! The job table's tests: records across a restart, the index's word over a pack's,
//! run ids, and what a planted file in the index or a pack cannot do.

use serde_json::json;

use super::index::{read_json, Pointer};
use super::*;
use crate::call::{Progress, ToolOutcome};

#[test]
fn a_fifo_or_device_in_the_index_is_skipped_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index");
    std::fs::create_dir_all(&index).unwrap();
    let fifo = index.join("fifo-run.json");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    std::os::unix::fs::symlink("/dev/zero", index.join("zero-run.json")).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let table = JobTable::new(index);
        let _ = tx.send((table.list().len(), table.get("fifo-run").is_none()));
    });
    let (listed, absent) = rx
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("listing runs blocked on a FIFO");
    assert_eq!((listed, absent), (0, true));
}

#[test]
fn records_survive_a_restart_and_dead_runs_become_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index");
    let pack = dir.path().join("pack");
    let table = JobTable::new(index.clone());
    let (done, _) = table.start("run_script", &pack, "output.json").unwrap();
    let (running, cancel) = table.start("run_batch", &pack, "cohort.json").unwrap();
    std::fs::write(pack.join("output.json"), r#"{"status": "succeeded"}"#).unwrap();
    table.progress(
        &running.run_id,
        &Progress {
            progress: 1.0,
            total: Some(3.0),
            message: Some("1/3 volumes done".into()),
            item: None,
        },
    );
    table.finish(
        &done.run_id,
        &ToolOutcome::Success {
            structured: json!({"status": "succeeded"}),
            summary: "ok".into(),
            images: Vec::new(),
            brief: Default::default(),
        },
        false,
    );
    let live = table.get(&running.run_id).unwrap();
    assert_eq!(live.run.state, RunState::Running);
    assert_eq!(live.run.progress.as_ref().unwrap().progress, 1.0);
    assert!(table.cancel(&running.run_id));
    assert!(cancel.is_cancelled());
    assert!(!table.cancel(&done.run_id));

    // A restarted server: same index, nothing live. The finished run is listed
    // with its result; the one in flight was this process's, which no longer
    // has it live, so it is interrupted.
    let record_path = pack.join(".runs").join(format!("{}.json", running.run_id));
    drop(table);
    let restarted = JobTable::new(index);
    let runs = restarted.list();
    assert_eq!(runs.len(), 2);
    let state = |id: &str| runs.iter().find(|r| r.run_id == id).unwrap().state;
    assert_eq!(state(&done.run_id), RunState::Succeeded);
    assert_eq!(state(&running.run_id), RunState::Interrupted);
    let rewritten: RunRecord = read_json(&record_path).unwrap();
    assert_eq!(rewritten.state, RunState::Interrupted);
    let view = restarted.get(&done.run_id).unwrap();
    assert_eq!(view.result, Some(json!({"status": "succeeded"})));
    assert_eq!(view.run.message.as_deref(), Some("ok"));
    assert!(restarted.get("no-such-run").is_none());
}

#[test]
fn run_ids_are_checked_before_they_touch_the_file_system() {
    let id = new_run_id();
    assert!(valid_run_id(&id), "{id}");
    for bad in [
        "../x",
        "/etc/passwd",
        "",
        "20261204T153000Z-1a2b3c4",
        "20261204T153000Z-1A2B3C4D",
        "20261204T153000Z/1a2b3c4d",
        "../../20261204T15300-1a2b3c4d",
    ] {
        assert!(!valid_run_id(bad), "{bad}");
    }
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index");
    std::fs::create_dir_all(&index).unwrap();
    // A pointer-shaped file outside the index is never read through a crafted id.
    std::fs::write(
        dir.path().join("x.json"),
        r#"{"run_id": "x", "record": "/etc/hostname"}"#,
    )
    .unwrap();
    let table = JobTable::new(index);
    assert!(table.get("../x").is_none());
    assert!(!table.cancel("../x"));
}

#[test]
fn a_restarted_server_kills_an_upstream_that_outlived_its_server() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index");
    let pack = dir.path().join("pack");
    let table = JobTable::new(index.clone());
    let (record, _) = table.start("run_script", &pack, "output.json").unwrap();
    let mut orphan = std::process::Command::new("sleep")
        .arg("60")
        .process_group(0)
        .spawn()
        .unwrap();
    table.child(&record.run_id, orphan.id());
    // The server "died" without ending its run (SIGKILL): its pid is gone.
    let pointer_path = index.join(format!("{}.json", record.run_id));
    let mut pointer: Pointer = read_json(&pointer_path).unwrap();
    assert_eq!(pointer.child.map(|c| c.pid), Some(orphan.id()));
    pointer.server_pid = Some(i32::MAX as u32);
    crate::atomic::write_json(&pointer_path, &pointer).unwrap();
    drop(table);
    let restarted = JobTable::new(index);
    let status = orphan.wait().unwrap();
    assert!(!status.success(), "the orphan was killed: {status:?}");
    let view = restarted.get(&record.run_id).unwrap();
    assert_eq!(view.run.state, RunState::Interrupted);
    assert!(view
        .run
        .message
        .unwrap()
        .contains("was still running and was killed"));
}

/// Issue 21, item 2: a record edited in its pack (another pack_dir, a result file
/// outside it, `running` with the child of an unrelated process group) changes
/// neither where the server reads nor what it signals.
#[test]
fn a_forged_record_in_a_pack_is_data_not_authority() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    let (index, pack) = (base.join("index"), base.join("pack"));
    std::fs::create_dir_all(base.join("elsewhere")).unwrap();
    std::fs::write(base.join("elsewhere/secret.json"), r#"{"secret": 1}"#).unwrap();
    let table = JobTable::new(index.clone());
    let (run, _) = table.start("run_script", &pack, "output.json").unwrap();
    let done = ToolOutcome::failure("stopped");
    table.finish(&run.run_id, &done, false);
    drop(table);
    let mut victim = std::process::Command::new("sleep")
        .arg("60")
        .process_group(0)
        .spawn()
        .unwrap();
    let record_path = pack.join(".runs").join(format!("{}.json", run.run_id));
    let mut forged: RunRecord = read_json(&record_path).unwrap();
    forged.state = RunState::Running;
    forged.pid = i32::MAX as u32;
    forged.pack_dir = base.join("elsewhere").display().to_string();
    forged.result_file = "../elsewhere/secret.json".into();
    forged.result_written = true;
    forged.child = ChildProcess::of(victim.id());
    crate::atomic::write_json(&record_path, &forged).unwrap();
    // A record planted in the pack with no pointer in the index.
    let planted = new_run_id();
    forged.run_id = planted.clone();
    crate::atomic::write_json(&pack.join(format!(".runs/{planted}.json")), &forged).unwrap();

    let restarted = JobTable::new(index);
    let view = restarted.get(&run.run_id).unwrap();
    assert_eq!(view.run.pack_dir, pack.display().to_string());
    assert_eq!(view.run.result_file, "output.json");
    assert_eq!(view.result, None, "read a file outside the pack");
    assert!(restarted.get(&planted).is_none());
    let _ = restarted.start("run_script", &pack, "output.json").unwrap();
    assert!(restarted.list().iter().all(|r| r.run_id != planted));
    assert!(
        victim.try_wait().unwrap().is_none(),
        "a forged record made the server kill an unrelated process group"
    );
    victim.kill().unwrap();
    let _ = victim.wait();
}
