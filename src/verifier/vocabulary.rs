//! The label vocabulary the verifier uses: names keyed by id, prompt sub-classes and
//! the everything-sets, taken from the project's label table (`crate::labels`) and
//! reduced to plain maps so the verdict code stays pure.
//!
//! Where the table comes from, first that loads wins: an explicit
//! [`LabelSource`](super::LabelSource); the pack's `output.label_map_source`; its
//! `invocation.upstream_root`; the pack's `labels.json` sidecar; else ids only.
//! Every attempt that fails is noted in the report.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::labels::{LabelTable, Modality};

/// Prompt sub-classes as upstream's `VistaPreTransformd` expands them, used only when
/// no label table provides its own map (e.g. a `labels.json` sidecar, which carries
/// names only): 2 (kidney) → right and left kidney; 20 (lung) → the five lobes;
/// 21 (bone) → the individual bones.
pub(crate) fn builtin_subclasses() -> BTreeMap<u32, Vec<u32>> {
    let mut m = BTreeMap::new();
    m.insert(2, vec![14, 5]);
    m.insert(20, (28..=32).collect());
    let mut bone: Vec<u32> = (33..=56).collect();
    bone.extend(63..=97);
    bone.extend([114, 120, 122]);
    m.insert(21, bone);
    m
}

/// Names, sub-classes and everything-sets, with where each came from.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Vocabulary {
    /// What the names came from, for the report.
    pub source: String,
    pub names: BTreeMap<u32, String>,
    pub subclasses: BTreeMap<u32, Vec<u32>>,
    pub subclass_source: String,
    /// Keyed by modality spelling (`CT_BODY`, ...), with the set's source.
    pub everything_sets: BTreeMap<String, (BTreeSet<u32>, String)>,
    /// Attempts that failed before this vocabulary was chosen.
    pub notes: Vec<String>,
}

impl Vocabulary {
    /// No table: ids only, built-in sub-classes, no everything-sets.
    pub(crate) fn ids_only(notes: Vec<String>) -> Vocabulary {
        Vocabulary {
            source: "ids only (no label table could be loaded)".to_string(),
            names: BTreeMap::new(),
            subclasses: builtin_subclasses(),
            subclass_source: "built-in (upstream VistaPreTransformd sub-classes 2, 20, 21)"
                .to_string(),
            everything_sets: BTreeMap::new(),
            notes,
        }
    }

    /// The class name, or `label_id_<id>` when the table has none.
    pub(crate) fn name(&self, id: u32) -> String {
        self.names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("label_id_{id}"))
    }

    /// Prompts as the model is prompted: a prompt with sub-classes is replaced by them.
    pub(crate) fn expand_prompts(&self, prompts: &[u32]) -> BTreeSet<u32> {
        let mut out = BTreeSet::new();
        for p in prompts {
            match self.subclasses.get(p) {
                Some(subs) if !subs.is_empty() => out.extend(subs.iter().copied()),
                _ => {
                    out.insert(*p);
                }
            }
        }
        out
    }
}

/// Vocabulary of a loaded label table. A table without sub-classes (a sidecar) gets
/// the built-in map; a table without everything-sets simply has none.
pub(crate) fn from_table(table: &LabelTable, source: String) -> Vocabulary {
    let names = table.iter().map(|c| (c.id, c.name.clone())).collect();
    let (subclasses, subclass_source) = if table.subclasses().is_empty() {
        let v = Vocabulary::ids_only(Vec::new());
        (v.subclasses, v.subclass_source)
    } else {
        (
            table.subclasses().clone(),
            table.subclass_source().unwrap_or("label table").to_string(),
        )
    };
    let everything_sets = Modality::ALL
        .into_iter()
        .filter_map(|m| {
            let set = table.everything_set(m)?;
            let src = table
                .everything_set_source(m)
                .unwrap_or("label table")
                .to_string();
            Some((m.as_str().to_string(), (set.clone(), src)))
        })
        .collect();
    Vocabulary {
        source,
        names,
        subclasses,
        subclass_source,
        everything_sets,
        notes: Vec::new(),
    }
}

/// Vocabulary of a bundle root (its `configs/`).
pub(crate) fn from_bundle(root: &Path) -> Result<Vocabulary, String> {
    let table = LabelTable::load_bundle(root).map_err(|e| e.to_string())?;
    Ok(from_table(
        &table,
        format!("label table of bundle {}", root.display()),
    ))
}

/// Vocabulary of a `labels.json` sidecar (names only).
pub(crate) fn from_labels_json(path: &Path) -> Result<Vocabulary, String> {
    let table = LabelTable::load_labels_json(path).map_err(|e| e.to_string())?;
    Ok(from_table(
        &table,
        format!("labels sidecar {}", path.display()),
    ))
}

/// Vocabulary from a path recorded in the pack: a bundle root, a file inside the
/// bundle's `configs/` (the reference records the label dictionary it read), or a
/// `labels.json` sidecar.
pub(crate) fn from_recorded_path(path: &Path) -> Result<Vocabulary, String> {
    if path.is_dir() {
        return from_bundle(path);
    }
    if !path.exists() {
        return Err(format!("{} does not exist", path.display()));
    }
    let parent = path.parent();
    if let Some(root) = parent
        .filter(|p| p.file_name().is_some_and(|n| n == "configs"))
        .and_then(Path::parent)
    {
        return from_bundle(root);
    }
    from_labels_json(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_expansion_matches_the_brief() {
        let v = Vocabulary::ids_only(Vec::new());
        assert_eq!(v.expand_prompts(&[2, 3]), [3, 5, 14].into_iter().collect());
        assert_eq!(v.expand_prompts(&[20]), (28..=32).collect());
        let bone = v.expand_prompts(&[21]);
        assert_eq!(bone.len(), 24 + 35 + 3);
        assert!(
            bone.contains(&33) && bone.contains(&56) && bone.contains(&63) && bone.contains(&97)
        );
        assert!(
            bone.contains(&114)
                && bone.contains(&120)
                && bone.contains(&122)
                && !bone.contains(&57)
        );
        assert_eq!(v.name(7), "label_id_7");
    }

    fn upstream_root() -> std::path::PathBuf {
        let beside = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/upstream-data/NV-Segment-CTMR");
        if beside.join("configs/metadata.json").exists() {
            beside
        } else {
            std::path::PathBuf::from("/work/shared/upstream-data/NV-Segment-CTMR")
        }
    }

    #[test]
    fn the_real_table_gives_names_subclasses_and_the_ct_everything_set() {
        let root = upstream_root();
        let v = from_bundle(&root).unwrap();
        assert_eq!(
            (v.name(1), v.name(5), v.name(14)),
            (
                "liver".to_string(),
                "right kidney".to_string(),
                "left kidney".to_string()
            )
        );
        assert_eq!(v.expand_prompts(&[2]), [5, 14].into_iter().collect());
        let (ct, _) = &v.everything_sets["CT_BODY"];
        assert!(ct.contains(&1) && !ct.contains(&2) && !ct.contains(&255));
        // A recorded file inside configs/ leads to the same bundle.
        let via_file = from_recorded_path(&root.join("configs/metadata.json")).unwrap();
        assert_eq!(via_file.names, v.names);
        assert!(from_recorded_path(&root.join("configs/nope.json"))
            .unwrap_err()
            .contains("does not exist"));
    }
}
