//! No tool name outside its tool: each tool's `NAME` (the manifest's `name`) appears as
//! a string literal in `src/` only in that tool's own file or folder, in the registry
//! (`src/tools/registry.rs`) and in the one list of tools (`src/tools/toolbox.rs`).
//! Everything else names a tool through its `Tool::NAME` constant, so renaming a tool
//! is a change to its file and the manifest.
//!
//! What is read: the string literals (`"..."`, including raw strings) of every `.rs`
//! file under `src/`. Excluded: comment lines (`//`, `///`, `//!`: docs may name
//! tools), everything from a file's first `#[cfg(test)]` on (the test modules, which
//! this crate keeps at the end of a file), files named `tests.rs` (a test module moved
//! into its own file, declared `#[cfg(test)] mod tests;`), and the literals of [`KNOWN`].

use std::path::{Path, PathBuf};

/// Literals allowed to name a tool outside its home, by their first words: none today
/// (the server's instructions and `doctor`'s lines take the tools' constants).
const KNOWN: &[&str] = &[];

/// The folders and files each tool's name may appear in, besides the registry's.
fn home(name: &str) -> Vec<String> {
    let own = match name {
        "get_run" | "list_runs" | "cancel_run" => "src/tools/runs/".to_string(),
        other => format!("src/tools/{other}"),
    };
    vec![
        own,
        "src/tools/registry.rs".into(),
        "src/tools/toolbox.rs".into(),
    ]
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(path);
        }
    }
}

/// The string literals of `code` (comment lines already removed): `"..."` with its
/// escapes, and raw strings `r"..."`, `r#"..."#`.
fn literals(code: &str) -> Vec<String> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            // A char literal: '"' must not open a string.
            b'\'' if i + 2 < b.len() && b[i + 2] == b'\'' => i += 3,
            b'\'' if i + 3 < b.len() && b[i + 1] == b'\\' && b[i + 3] == b'\'' => i += 4,
            b'r' if i + 1 < b.len() && (b[i + 1] == b'"' || b[i + 1] == b'#') => {
                let hashes = b[i + 1..].iter().take_while(|c| **c == b'#').count();
                if b.get(i + 1 + hashes) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let start = i + 2 + hashes;
                let close = format!("\"{}", "#".repeat(hashes));
                let end = code[start..].find(&close).map_or(b.len(), |e| start + e);
                out.push(code[start..end].to_string());
                i = end + close.len();
            }
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                out.push(code[start..j.min(b.len())].to_string());
                i = j + 1;
            }
            _ => i += 1,
        }
    }
    out
}

/// Whether `text` holds `word` bounded by non-identifier characters.
fn names(text: &str, word: &str) -> bool {
    let ident = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    text.match_indices(word).any(|(at, _)| {
        !ident(text[..at].chars().next_back()) && !ident(text[at + word.len()..].chars().next())
    })
}

/// The code of a file as this test reads it: no comment lines, no test modules.
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let before_tests = text.split("#[cfg(test)]").next().unwrap_or("");
    before_tests
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn no_tool_name_appears_outside_its_tool() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = ctmr_skill::manifest::embedded().unwrap();
    let tools: Vec<String> = manifest
        .interface
        .tools
        .iter()
        .map(|t| t.name.clone())
        .collect();
    assert!(tools.len() >= 9, "{tools:?}");
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut found = Vec::new();
    for path in &files {
        let relative = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .to_string();
        for literal in literals(&code_of(path)) {
            if KNOWN.iter().any(|k| literal.starts_with(k)) {
                continue;
            }
            for tool in &tools {
                let allowed = home(tool).iter().any(|h| relative.starts_with(h.as_str()));
                if !allowed && names(&literal, tool) {
                    found.push(format!("{relative}: {tool} in {literal:?}"));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "tool names outside their tools (use the tool's Tool::NAME):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_reader_finds_names_in_each_kind_of_literal() {
    let code = "let a = \"x run_script y\"; let c = '\"'; let b = r#\"a \"q\" run_batch\"#;";
    let found = literals(code);
    assert!(names(&found[0], "run_script"), "{found:?}");
    assert!(found.iter().any(|l| names(l, "run_batch")), "{found:?}");
    assert!(!names("run_scripts", "run_script"));
    assert!(!names("crate::tools::run_script_x", "run_script"));
}
