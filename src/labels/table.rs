//! The [`LabelTable`]: the classes of one vocabulary with what it was read from,
//! its everything-sets and prompt sub-classes, and the queries the tools make of it
//! (lookup, expansion, resolution). Loading lives in `load`, naming in `resolve`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{load, rank, resolve, sidecars, LabelError, Modality, Resolution, ResolveError};

/// One class of the vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelClass {
    pub id: u32,
    /// The `channel_def` name, verbatim (including any `(deprecated)` suffix).
    pub name: String,
    /// The name ends with `(deprecated)`.
    pub deprecated: bool,
    /// Training datasets that contribute this class (`label_dict.json` `CT` ∪ `MRI`), sorted.
    pub datasets: Vec<String>,
    /// Training modalities (`label_dict.json` `datasets`: `CT`, `MRI`).
    #[serde(default)]
    pub modalities: Vec<String>,
    /// The dataset labels that `label_mappings.json` maps onto this class.
    #[serde(default)]
    pub dataset_labels: Vec<DatasetLabel>,
    /// Display colour, deterministic per id ([`colour_for`](super::colour_for)).
    pub colour: [u8; 3],
}

/// A dataset-local label id mapped onto a global class id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DatasetLabel {
    pub dataset: String,
    pub local_id: i64,
}

/// A file the table was read from, with the sha256 of the bytes read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    pub path: PathBuf,
    pub sha256: String,
}

/// An everything-set and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct EverythingSet {
    pub ids: BTreeSet<u32>,
    pub source: String,
}

/// The label vocabulary of one bundle (or of one sidecar).
#[derive(Debug, Clone, Serialize)]
pub struct LabelTable {
    #[serde(serialize_with = "classes_as_list")]
    pub(super) classes: BTreeMap<u32, LabelClass>,
    pub(super) sources: Vec<SourceFile>,
    pub(super) everything_sets: BTreeMap<Modality, EverythingSet>,
    /// Prompt id → the ids it expands to.
    pub(super) subclasses: BTreeMap<u32, Vec<u32>>,
    pub(super) subclass_source: Option<String>,
    /// Human-readable notes on optional files absent and fallbacks taken.
    pub(super) notes: Vec<String>,
    /// The class names prepared for resolution, built on the first query.
    #[serde(skip)]
    pub(super) name_index: std::sync::OnceLock<rank::NameIndex>,
}

fn classes_as_list<S: serde::Serializer>(
    classes: &BTreeMap<u32, LabelClass>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(classes.values())
}

impl LabelTable {
    /// Load the vocabulary of the bundle at `root` (see the module docs for the keys read).
    pub fn load_bundle(root: &std::path::Path) -> Result<LabelTable, LabelError> {
        load::load_bundle(root)
    }

    /// The upstream table compiled into the binary (commit c46f994, embedded by
    /// build.rs): the fallback when no bundle root is found. `None` for a build made
    /// without the upstream data.
    pub(crate) fn built_in() -> Option<&'static LabelTable> {
        static TABLE: std::sync::OnceLock<LabelTable> = std::sync::OnceLock::new();
        if !load::has_built_in() {
            return None;
        }
        Some(TABLE.get_or_init(|| {
            let mut table = load::load_bundle(std::path::Path::new(load::BUILT_IN_ROOT))
                .expect("the built-in upstream label files parse (build.rs checked their sha256)");
            table.notes.push(
                "no bundle root found: the built-in upstream label table (commit c46f994) is used"
                    .to_string(),
            );
            table
        }))
    }

    /// Whether this table was read from the built-in upstream files.
    pub(crate) fn is_built_in(&self) -> bool {
        self.sources
            .first()
            .is_some_and(|s| s.path.starts_with(load::BUILT_IN_ROOT))
    }

    /// How this table's id → name map differs from the built-in upstream one, in
    /// words (`None` when they agree).
    pub(crate) fn differs_from_built_in(&self) -> Option<String> {
        let built_in = LabelTable::built_in()?;
        let mut changed = Vec::new();
        let mut missing = 0usize;
        for class in built_in.iter() {
            match self.get(class.id) {
                None => missing += 1,
                Some(c) if c.name != class.name => changed.push(class.id),
                Some(_) => {}
            }
        }
        let extra = self.iter().filter(|c| built_in.get(c.id).is_none()).count();
        if changed.is_empty() && missing == 0 && extra == 0 {
            return None;
        }
        let shown: Vec<String> = changed.iter().take(8).map(u32::to_string).collect();
        Some(format!(
            "the bundle's label table differs from the built-in upstream table (commit c46f994): \
             it has {} classes, the built-in table {}; {missing} built-in ids absent, {extra} ids \
             extra, {} renamed{}; the bundle's names are used",
            self.len(),
            built_in.len(),
            changed.len(),
            if shown.is_empty() {
                String::new()
            } else {
                format!(" (ids {})", shown.join(", "))
            }
        ))
    }

    /// Read a `labels.json` sidecar written by [`write_sidecars`](super::write_sidecars) back into a table
    /// (its classes and its recorded sources; no everything-sets or sub-classes).
    pub fn load_labels_json(path: &std::path::Path) -> Result<LabelTable, LabelError> {
        sidecars::load_labels_json(path)
    }

    /// A table of exactly these classes, with no sources, everything-sets or sub-classes.
    pub fn from_classes(classes: Vec<LabelClass>) -> LabelTable {
        LabelTable {
            classes: classes.into_iter().map(|c| (c.id, c)).collect(),
            sources: Vec::new(),
            everything_sets: BTreeMap::new(),
            subclasses: BTreeMap::new(),
            subclass_source: None,
            notes: Vec::new(),
            name_index: Default::default(),
        }
    }

    pub fn get(&self, id: u32) -> Option<&LabelClass> {
        self.classes.get(&id)
    }

    pub fn name(&self, id: u32) -> Option<&str> {
        self.classes.get(&id).map(|c| c.name.as_str())
    }

    /// Classes in ascending id order.
    pub fn iter(&self) -> impl Iterator<Item = &LabelClass> {
        self.classes.values()
    }

    pub fn len(&self) -> usize {
        self.classes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    pub fn sources(&self) -> &[SourceFile] {
        &self.sources
    }

    /// Notes on optional files that were absent and fallbacks that were taken.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    pub fn everything_set(&self, modality: Modality) -> Option<&BTreeSet<u32>> {
        self.everything_sets.get(&modality).map(|s| &s.ids)
    }

    /// Where the everything-set of `modality` came from, e.g.
    /// `configs/inference.json: everything_labels['CT_BODY'] = @ct_body`.
    pub fn everything_set_source(&self, modality: Modality) -> Option<&str> {
        self.everything_sets
            .get(&modality)
            .map(|s| s.source.as_str())
    }

    /// The sub-class map used by [`LabelTable::expand_prompts`].
    pub fn subclasses(&self) -> &BTreeMap<u32, Vec<u32>> {
        &self.subclasses
    }

    /// Where the sub-class map came from.
    pub fn subclass_source(&self) -> Option<&str> {
        self.subclass_source.as_deref()
    }

    /// The ids the model is actually prompted with: as upstream's
    /// `VistaPreTransformd`, a prompt that has sub-classes is replaced by them
    /// (one level); any other prompt stays.
    pub fn expand_prompts(&self, prompts: &[u32]) -> BTreeSet<u32> {
        let mut out = BTreeSet::new();
        for id in prompts {
            match self.subclasses.get(id) {
                Some(children) => out.extend(children.iter().copied()),
                None => {
                    out.insert(*id);
                }
            }
        }
        out
    }

    /// Resolve a class name (or id) given by an agent; see [`LabelTable::resolve_match`].
    pub fn resolve(&self, query: &str) -> Result<u32, ResolveError> {
        self.resolve_match(query).map(|r| r.id)
    }

    /// Resolve with the details: exact (case-insensitive) name, then the same
    /// tokens in any order and separator, then a unique substring / token subset.
    /// Ambiguous or unknown queries return the closest real names; never a guess.
    pub fn resolve_match(&self, query: &str) -> Result<Resolution, ResolveError> {
        resolve::resolve(self, query)
    }

    pub(super) fn name_index(&self) -> &rank::NameIndex {
        self.name_index.get_or_init(|| rank::NameIndex::new(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::colour_for;

    fn class(id: u32, name: &str) -> LabelClass {
        LabelClass {
            id,
            name: name.into(),
            deprecated: name.ends_with("(deprecated)"),
            datasets: vec![],
            modalities: vec![],
            dataset_labels: vec![],
            colour: colour_for(id),
        }
    }

    #[test]
    fn modality_strings_round_trip() {
        for m in Modality::ALL {
            assert_eq!(m.as_str().parse::<Modality>().unwrap(), m);
            assert_eq!(m.to_string(), m.as_str());
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(json, format!("\"{}\"", m.as_str()));
            assert_eq!(serde_json::from_str::<Modality>(&json).unwrap(), m);
        }
        assert_eq!("mri_brain".parse::<Modality>().unwrap(), Modality::MriBrain);
        let err = "CT".parse::<Modality>().unwrap_err();
        assert!(err.to_string().contains("CT_BODY, MRI_BODY, MRI_BRAIN"));
    }

    #[test]
    fn expansion_without_subclasses_is_identity() {
        let table = LabelTable::from_classes(vec![class(1, "liver"), class(2, "kidney")]);
        assert_eq!(table.expand_prompts(&[2, 1, 2]), BTreeSet::from([1, 2]));
        assert_eq!(table.len(), 2);
        assert_eq!(table.name(2), Some("kidney"));
        assert!(table.everything_set(Modality::CtBody).is_none());
    }

    #[test]
    fn the_built_in_table_is_the_upstream_one_with_its_hashes() {
        let table = LabelTable::built_in()
            .expect("this build embeds the upstream label table (build.rs found the shared data)");
        assert!(table.is_built_in());
        assert_eq!(table.len(), 345);
        assert_eq!(table.name(1), Some("liver"));
        assert_eq!(table.resolve("left kidney").unwrap(), 14);
        let metadata = &table.sources()[0];
        assert_eq!(
            metadata.sha256,
            "55a9d7960095eeacdda8934802e0a2eb36f009d9a1283114d62d26be14e5d909"
        );
        assert!(table.everything_set(Modality::CtBody).is_some());
        assert_eq!(table.differs_from_built_in(), None);
        // A bundle with other names is reported, not merged.
        let other = LabelTable::from_classes(vec![class(1, "hepar"), class(900, "extra")]);
        let note = other.differs_from_built_in().unwrap();
        assert!(
            note.contains("1 renamed (ids 1)") && note.contains("1 ids extra"),
            "{note}"
        );
        assert!(!other.is_built_in());
    }

    #[test]
    fn serialises_classes_as_a_list() {
        let table = LabelTable::from_classes(vec![class(3, "spleen"), class(1, "liver")]);
        let json = serde_json::to_value(&table).unwrap();
        let ids: Vec<u64> = json["classes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_u64().unwrap())
            .collect();
        assert_eq!(ids, vec![1, 3]);
    }
}
