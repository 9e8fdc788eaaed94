//! The checked-in schemas under schemas/ must equal what the manifest generates now:
//! agents and harnesses read those files, so drift is a bug. Fix: `ctmr-skill schema`.

use crate::common;

#[test]
fn checked_in_schemas_match_the_manifest() {
    let manifest = ctmr_skill::manifest::embedded().expect("embedded manifest parses");
    let root = common::repo_root();
    let scratch = common::fresh_dir();
    let config =
        ctmr_skill::config::Config::new(scratch.path().to_path_buf(), vec![], None, None, 1);
    let tools = ctmr_skill::tools::CtmrTools::new(config, manifest).expect("tools agree");
    let mut drifted = Vec::new();
    for (relative, content) in tools.schema_files() {
        let on_disk = std::fs::read_to_string(root.join(&relative)).unwrap_or_default();
        if on_disk != content {
            drifted.push(relative);
        }
    }
    assert!(
        drifted.is_empty(),
        "out of date: {drifted:?}; run `cargo run -- schema` and commit"
    );
}

#[test]
fn schema_check_subcommand_detects_drift() {
    let dir = common::fresh_dir();
    let out = std::process::Command::new(common::binary())
        .args(["schema", "--check", "--root"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ctmr-skill schema"));
    let out = std::process::Command::new(common::binary())
        .args(["schema", "--root"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = std::process::Command::new(common::binary())
        .args(["schema", "--check", "--root"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(dir.path().join("schemas/tools/tools_list.json").exists());
}
