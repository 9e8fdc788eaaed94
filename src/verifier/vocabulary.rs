//! The label vocabulary the verifier uses: names keyed by id, prompt sub-classes and
//! the everything-sets, taken from the project's label table (`crate::labels`) and
//! reduced to plain maps so the verdict code stays pure.
//!
//! Where the table comes from, first that loads wins: an explicit
//! [`LabelSource`](super::LabelSource); the pack's `output.label_map_source`; its
//! `invocation.upstream_root`; the pack's `labels.json` sidecar; else ids only.
//! Every attempt that fails is noted in the report.

use std::collections::{BTreeMap, BTreeSet};

/// Prompt sub-classes as upstream's `VistaPreTransformd` expands them, used only when
/// no label table provides its own map (e.g. a `labels.json` sidecar, which carries
/// names only): 2 (kidney) → right and left kidney; 20 (lung) → the five lobes;
/// 21 (bone) → the individual bones.
pub fn builtin_subclasses() -> BTreeMap<u32, Vec<u32>> {
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
pub struct Vocabulary {
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
    pub fn ids_only(notes: Vec<String>) -> Vocabulary {
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
    pub fn name(&self, id: u32) -> String {
        self.names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("label_id_{id}"))
    }

    /// Prompts as the model is prompted: a prompt with sub-classes is replaced by them.
    pub fn expand_prompts(&self, prompts: &[u32]) -> BTreeSet<u32> {
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

// Loading from the project's label table (crate::labels): wired when that module lands.
/// Vocabulary of a bundle root.
pub fn from_bundle(root: &std::path::Path) -> Result<Vocabulary, String> {
    Err(format!(
        "{}: label tables are not available in this build yet",
        root.display()
    ))
}

/// Vocabulary of a `labels.json` sidecar.
pub fn from_labels_json(path: &std::path::Path) -> Result<Vocabulary, String> {
    Err(format!(
        "{}: label tables are not available in this build yet",
        path.display()
    ))
}

/// Vocabulary from a path recorded in the pack: a bundle root, a file in its `configs/`, or a sidecar.
pub fn from_recorded_path(path: &std::path::Path) -> Result<Vocabulary, String> {
    from_bundle(path)
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
}
