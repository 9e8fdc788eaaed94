//! `wait: false` end to end through the product's toolbox with the real demo bundle:
//! run_batch and run_script return a run record at once, get_run shows progress and
//! then the result, list_runs lists them, and a toolbox built afresh over the same
//! runs index (a restarted server) still lists them, with their results.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use ctmr_skill::config::Config;
use ctmr_skill::jobs::JobTable;
use ctmr_skill::tools::{CallContext, CtmrTools, ToolBox, ToolOutcome};

fn tools(base: &Path, index: &Path) -> CtmrTools {
    let config = Config::new(base.to_path_buf(), vec![], None, Some(common::python()), 1);
    CtmrTools::with_jobs(
        config,
        ctmr_skill::manifest::embedded().unwrap(),
        JobTable::new(index.to_path_buf()),
    )
    .expect("the manifest and the tools agree")
}

async fn call(tools: &CtmrTools, name: &str, args: Value) -> ToolOutcome {
    let args: Map<String, Value> = args.as_object().unwrap().clone();
    tools
        .call(name, args, CallContext::detached())
        .await
        .unwrap()
}

fn structured(outcome: ToolOutcome) -> Value {
    match outcome {
        ToolOutcome::Success { structured, .. } => structured,
        ToolOutcome::Failure { message, .. } => panic!("tool failed: {message}"),
    }
}

/// Poll get_run until the run leaves `running`; returns every answer seen.
async fn until_finished(tools: &CtmrTools, run_id: &str) -> Vec<Value> {
    let t0 = Instant::now();
    let mut seen = Vec::new();
    loop {
        let view = structured(call(tools, "get_run", json!({"run_id": run_id})).await);
        let state = view["run"]["state"].as_str().unwrap().to_string();
        seen.push(view);
        if state != "running" {
            return seen;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "run {run_id} did not finish"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_false_runs_in_the_background_and_is_listed_after_a_restart() {
    let dir = common::fresh_dir();
    let base = dir.path().canonicalize().unwrap();
    let bundle = base.join("demo-bundle");
    common::demo_bundle_copy(&bundle);
    let inputs: Vec<PathBuf> = ["x.nii.gz", "y.nii.gz"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let path = base.join("data").join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            common::run_python(
                &common::repo_root().join("scripts/make-demo-volume.py"),
                &[
                    path.to_str().unwrap(),
                    "--shape",
                    "40",
                    "40",
                    "24",
                    "--seed",
                    &(i + 1).to_string(),
                ],
            );
            path
        })
        .collect();
    let index = base.join("runs-index");
    let toolbox = tools(&base, &index);

    // run_batch, wait false: a run record comes back at once.
    let record = structured(
        call(
            &toolbox,
            "run_batch",
            json!({"inputs": inputs, "output_root": base.join("cohort"), "upstream_root": bundle,
                   "device": "cpu", "wait": false}),
        )
        .await,
    );
    assert_eq!(record["state"], "running");
    assert_eq!(record["tool"], "run_batch");
    let batch_id = record["run_id"].as_str().unwrap().to_string();
    let record_file = base.join("cohort/.runs").join(format!("{batch_id}.json"));
    assert!(record_file.is_file(), "the record is written at start");

    let views = until_finished(&toolbox, &batch_id).await;
    let last = views.last().unwrap();
    assert_eq!(last["run"]["state"], "succeeded", "{last}");
    assert_eq!(last["result"]["status"], "succeeded", "{last}");
    assert_eq!(last["result"]["volumes"].as_array().unwrap().len(), 2);
    // While it ran, get_run carried per-volume progress.
    let progress: Vec<&str> = views
        .iter()
        .filter_map(|v| v["run"]["progress"]["message"].as_str())
        .collect();
    assert!(
        progress.iter().any(|m| m.contains("volumes done")),
        "{progress:?}"
    );
    let on_disk: Value =
        serde_json::from_str(&std::fs::read_to_string(&record_file).unwrap()).unwrap();
    assert_eq!(on_disk["state"], "succeeded");
    assert!(on_disk["finished_at"].is_string());

    // run_script, wait false, same pattern; its result is the evidence.
    let record = structured(
        call(
            &toolbox,
            "run_script",
            json!({"input": inputs[0], "output_dir": base.join("single"), "upstream_root": bundle,
                   "device": "cpu", "wait": false}),
        )
        .await,
    );
    let single_id = record["run_id"].as_str().unwrap().to_string();
    let views = until_finished(&toolbox, &single_id).await;
    let last = views.last().unwrap();
    assert_eq!(last["run"]["state"], "succeeded", "{last}");
    assert_eq!(last["result"]["schema_version"], "ctmr-skill.evidence/1");
    assert_eq!(last["result"]["status"], "succeeded");

    // A bad `wait` is refused by name.
    match call(
        &toolbox,
        "run_script",
        json!({"input": inputs[0], "wait": "later"}),
    )
    .await
    {
        ToolOutcome::Failure { message, .. } => assert!(message.contains("'wait'"), "{message}"),
        other => panic!("{other:?}"),
    }

    // A restarted server over the same index lists both, finished, with results.
    drop(toolbox);
    let restarted = tools(&base, &index);
    let list = structured(call(&restarted, "list_runs", json!({})).await);
    let runs = list["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{list}");
    assert_eq!(runs[0]["run_id"], single_id.as_str(), "newest first");
    assert!(runs.iter().all(|r| r["state"] == "succeeded"), "{list}");
    let view = structured(call(&restarted, "get_run", json!({"run_id": batch_id})).await);
    assert_eq!(view["result"]["status"], "succeeded");
    match call(&restarted, "get_run", json!({"run_id": "nope"})).await {
        ToolOutcome::Failure { message, .. } => assert!(message.contains("list_runs"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_run_stops_a_background_batch() {
    let dir = common::fresh_dir();
    let base = dir.path().canonicalize().unwrap();
    let bundle = base.join("demo-bundle");
    common::demo_bundle_copy(&bundle);
    let input = base.join("data/c.nii.gz");
    std::fs::create_dir_all(input.parent().unwrap()).unwrap();
    common::run_python(
        &common::repo_root().join("scripts/make-demo-volume.py"),
        &[input.to_str().unwrap(), "--shape", "40", "40", "24"],
    );
    let toolbox = tools(&base, &base.join("index"));
    let record = structured(
        call(
            &toolbox,
            "run_batch",
            json!({"inputs": [input], "output_root": base.join("out"), "upstream_root": bundle,
                   "device": "cpu", "wait": false}),
        )
        .await,
    );
    let run_id = record["run_id"].as_str().unwrap().to_string();
    let view = structured(call(&toolbox, "cancel_run", json!({"run_id": run_id})).await);
    assert_eq!(view["run"]["run_id"], run_id.as_str());
    let last = until_finished(&toolbox, &run_id).await;
    let last = last.last().unwrap();
    assert_eq!(last["run"]["state"], "cancelled", "{last}");
    // Cancelling what no longer runs is refused by name.
    match call(&toolbox, "cancel_run", json!({"run_id": run_id})).await {
        ToolOutcome::Failure { message, .. } => assert!(message.contains("get_run"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_run_in_flight_when_its_server_died_is_interrupted() {
    let dir = common::fresh_dir();
    let base = dir.path().canonicalize().unwrap();
    let index = base.join("index");
    let pack = base.join("pack");
    // The records a server leaves when it is killed mid-run: state running, its pid.
    let table = JobTable::new(index.clone());
    let (record, _cancel) = table.start("run_batch", &pack, "cohort.json").unwrap();
    drop(table);
    let path = pack.join(".runs").join(format!("{}.json", record.run_id));
    let mut on_disk: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // A pid no live process has (the dead server).
    on_disk["pid"] = json!(i32::MAX);
    std::fs::write(&path, on_disk.to_string()).unwrap();

    let restarted = tools(&base, &index);
    let list = structured(call(&restarted, "list_runs", json!({})).await);
    assert_eq!(list["runs"][0]["state"], "interrupted", "{list}");
    assert!(list["runs"][0]["message"]
        .as_str()
        .unwrap()
        .contains("stopped while this run was in flight"));
    let rewritten: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(rewritten["state"], "interrupted");
}
