//! The crate's layers (see `src/lib.rs`): every `crate::<module>` reference outside
//! `#[cfg(test)]` code must point to a module the referring module may use. A new
//! upward reference fails here with the file that made it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common;

/// What each top-level module may use (besides itself), as `src/lib.rs` documents.
fn allowed() -> BTreeMap<&'static str, Vec<&'static str>> {
    let foundations = vec!["files", "atomic", "nifti", "json_schema", "config", "call"];
    let with = |extra: &[&'static str]| {
        let mut v = foundations.clone();
        v.extend_from_slice(extra);
        v
    };
    BTreeMap::from([
        ("files", vec![]),
        ("atomic", vec![]),
        ("nifti", vec!["files"]),
        ("json_schema", vec![]),
        ("config", vec![]),
        ("call", vec![]),
        ("inspect", with(&[])),
        ("labels", with(&[])),
        ("render", with(&["inspect", "labels"])),
        ("upstream", with(&[])),
        ("jobs", with(&[])),
        ("dicom", with(&[])),
        ("cluster", with(&[])),
        ("verifier", with(&["inspect", "labels", "render"])),
        ("runner", with(&["upstream", "evidence"])),
        (
            "evidence",
            with(&[
                "inspect", "labels", "render", "upstream", "dicom", "cluster",
            ]),
        ),
        (
            "manifest",
            with(&[
                "inspect", "labels", "render", "upstream", "jobs", "dicom", "cluster", "verifier",
                "evidence", "runner",
            ]),
        ),
        (
            "tools",
            with(&[
                "inspect", "labels", "render", "upstream", "jobs", "dicom", "cluster", "verifier",
                "evidence", "runner", "manifest",
            ]),
        ),
        (
            "server",
            with(&[
                "inspect", "labels", "render", "upstream", "jobs", "dicom", "cluster", "verifier",
                "evidence", "runner", "manifest", "tools",
            ]),
        ),
        (
            "cli",
            with(&[
                "inspect", "labels", "render", "upstream", "jobs", "dicom", "cluster", "verifier",
                "evidence", "runner", "manifest", "tools", "server",
            ]),
        ),
    ])
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its `#[cfg(test)]` part and without `//` comments.
fn code_of(text: &str) -> String {
    let body = text.split("#[cfg(test)]").next().unwrap_or_default();
    body.lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a piece of code names as `crate::<m>` or in `use crate::{<m>...}`.
fn references(code: &str, modules: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or_default();
            inner
                .split(',')
                .map(|p| p.trim().split("::").next().unwrap_or_default())
                .collect()
        } else {
            vec![rest
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .next()
                .unwrap_or_default()]
        };
        found.extend(
            names
                .into_iter()
                .filter(|n| modules.contains(n))
                .map(str::to_string),
        );
    }
    found
}

#[test]
fn dependencies_point_down() {
    let src = common::repo_root().join("src");
    let allowed = allowed();
    let modules: Vec<&str> = allowed.keys().copied().collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut upward = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let top = top.trim_end_matches(".rs");
        if top == "lib" || top == "main" {
            continue;
        }
        let may = allowed.get(top).unwrap_or_else(|| {
            panic!("src/{top} is not in the layer table of tests/it/layers.rs and src/lib.rs")
        });
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        for target in references(&code, &modules) {
            if target != top && !may.contains(&target.as_str()) {
                upward.push(format!("{} uses crate::{target}", rel.display()));
            }
        }
    }
    upward.sort();
    upward.dedup();
    assert!(
        upward.is_empty(),
        "references against the layers:\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_checker_sees_grouped_and_plain_references() {
    let modules = ["tools", "jobs", "call"];
    let code = "use crate::{jobs::X, call};\nlet t = crate::tools::run();";
    assert_eq!(references(code, &modules), vec!["jobs", "call", "tools"]);
    assert!(references(&code_of("// crate::tools\nfn a() {}"), &modules).is_empty());
}
