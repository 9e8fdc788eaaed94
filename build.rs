//! Embeds the upstream label table (NV-Segment-CTMR c46f994: `metadata.json`,
//! `label_dict.json`, `label_mappings.json`) as the fallback for machines without a
//! bundle, WITHOUT committing the upstream's files: they are read at build time from the
//! shared upstream data (`$CTMR_SKILL_UPSTREAM_DATA`, else
//! `../shared/upstream-data/NV-Segment-CTMR/configs` beside the checkout, else
//! `/work/shared/upstream-data/NV-Segment-CTMR/configs`), checked against the sha256 of
//! that commit, and copied into `OUT_DIR`. Without them the build has no built-in table
//! (empty files; `LabelTable::built_in` is `None`) and says so in a warning.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The files and their sha256 at upstream commit c46f994 (data/upstream/README.md).
const FILES: [(&str, &str); 3] = [
    (
        "metadata.json",
        "55a9d7960095eeacdda8934802e0a2eb36f009d9a1283114d62d26be14e5d909",
    ),
    (
        "label_dict.json",
        "0cac41ef76f435905bf1a76b7d41c661ce3e26e8e57f7cc2b2563ec8608ba022",
    ),
    (
        "label_mappings.json",
        "e6b555743a3d91a38a7f55331068ef0582f23016c206f167f0c887f2420a30ad",
    ),
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CTMR_SKILL_UPSTREAM_DATA");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dir = out.join("upstream-labels");
    std::fs::create_dir_all(&dir).expect("OUT_DIR is writable");
    let texts = candidates()
        .into_iter()
        .find_map(|configs| verified(&configs));
    if texts.is_none() {
        println!(
            "cargo:warning=no upstream label data found (set CTMR_SKILL_UPSTREAM_DATA to \
             NV-Segment-CTMR's configs folder at c46f994): this build has no built-in label table"
        );
    }
    for (i, (name, _)) in FILES.iter().enumerate() {
        let text = texts.as_ref().map_or(&[][..], |t| t[i].as_slice());
        std::fs::write(dir.join(name), text).expect("OUT_DIR is writable");
    }
}

fn candidates() -> Vec<PathBuf> {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let mut list: Vec<PathBuf> = std::env::var_os("CTMR_SKILL_UPSTREAM_DATA")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    list.push(manifest.join("../shared/upstream-data/NV-Segment-CTMR/configs"));
    list.push(PathBuf::from(
        "/work/shared/upstream-data/NV-Segment-CTMR/configs",
    ));
    list
}

/// The three files' bytes when every one is present with its pinned sha256.
fn verified(configs: &Path) -> Option<Vec<Vec<u8>>> {
    let mut texts = Vec::new();
    for (name, sha) in FILES {
        let path = configs.join(name);
        let bytes = std::fs::read(&path).ok()?;
        let digest: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if digest != sha {
            println!(
                "cargo:warning={} is not the c46f994 file (sha256 {digest}); not embedded",
                path.display()
            );
            return None;
        }
        println!("cargo:rerun-if-changed={}", path.display());
        texts.push(bytes);
    }
    Some(texts)
}
