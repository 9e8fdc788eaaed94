//! The upstream label vocabulary: id → name, deprecation, datasets, the
//! everything-sets per modality, prompt sub-class expansion, name resolution for
//! agents, and the viewer sidecars written next to a mask.
//!
//! Why a module of its own: every id we report, prompt we send and colour we
//! draw must come from the bundle's own files, so that a verifier can recompute
//! it from the same bytes. Each file read is recorded with its sha256
//! ([`LabelTable::sources`]) and nothing is guessed. Sets are kept exactly as the
//! bundle's config defines them (that is what the bundle runs with); ids they
//! name that `channel_def` lacks are recorded in [`LabelTable::notes`], as the
//! demo bundle does (7 classes, upstream's everything-sets). Values that cannot
//! be ids, unsupported expressions and names that contradict `channel_def` are
//! errors.
//!
//! # What is read from a bundle root (`LabelTable::load_bundle`)
//!
//! | file (under the bundle root) | required | keys read |
//! |---|---|---|
//! | `configs/metadata.json` | yes | `network_data_format.outputs.pred.channel_def`: `{"<id>": "<name>"}`; id `0` is background and not a class |
//! | `configs/label_dict.json` | no | `{"<name>": {"index": id, "datasets": ["CT","MRI"], "CT": [dataset...], "MRI": [dataset...]}}`; an `index` that `channel_def` has must carry the same name |
//! | `configs/label_mappings.json` | no | `{"<dataset>": [[local_id, global_id], ...]}`; attached to the classes `channel_def` has |
//! | `configs/inference.json` | no | `everything_labels`, the keys it references (upstream: `ct_body`, `mri_body`, `mri_brain`, `label_mapping`), and `subclass` |
//!
//! A class is *deprecated* when its `channel_def` name ends with `(deprecated)`
//! (16 classes upstream). Deprecated classes stay resolvable but are flagged.
//!
//! # Without a bundle ([`LabelTable::built_in`])
//!
//! The upstream's `metadata.json`, `label_dict.json` and `label_mappings.json` of commit
//! c46f994 are compiled into the binary (by build.rs, from the shared upstream data,
//! checked against their sha256; never committed here) and read by the same loader, so names, sidecars and pictures work on a machine that has only the
//! binary. A bundle found at run time always wins; [`LabelTable::differs_from_built_in`]
//! says how its table differs, for `list_labels` to report.
//!
//! # Everything-sets (the ids segmented when no prompt is given)
//!
//! Upstream (`NV-Segment-CTMR/configs/inference.json`) defines
//! `everything_labels` as `${'CT_BODY': @ct_body, 'MRI_BODY': @mri_body, 'MRI_BRAIN': @mri_brain}[@modality]`
//! with `ct_body` = ids 1..=132 minus {2,16,18,20,21,23,24,25,26,27,128,129,130,131,132},
//! `mri_body` = the second element of each pair in `label_mappings.json["TotalSegmentatorMR"]` and
//! `mri_brain` = the same for `["LUMIR"]` (`label_mapping` is `json.loads` of
//! `configs/label_mappings.json`). These expressions are evaluated by a small,
//! closed evaluator ([`expr`]) that never runs bundle code and rejects any form it
//! does not know (an error naming the key, never a guess). References follow
//! MONAI: `@key#a#0` names a raw config item, then evaluates it; the one file
//! idiom understood is `json.loads(pathlib.Path(@bundle_root + '/<relative path>').read_text())`
//! (read from the bundle root and hashed into the sources). `tests/it/labels_monai.rs`
//! checks the results against MONAI's own `ConfigParser`. Per modality:
//!
//! 1. `inference.json` `everything_labels` as a dict literal (optionally indexed by
//!    `[@modality]`) whose entry for `CT_BODY`/`MRI_BODY`/`MRI_BRAIN` is evaluated;
//! 2. else `inference.json` key `ct_body` / `mri_body` / `mri_brain`;
//! 3. else the documented definition: CT_BODY the built-in set above; MRI_BODY and
//!    MRI_BRAIN from `label_mappings.json` `TotalSegmentatorMR` / `LUMIR`.
//!
//! [`LabelTable::everything_set_source`] says which of these was used, e.g.
//! `configs/inference.json: everything_labels['CT_BODY'] = @ct_body`,
//! `configs/inference.json: ct_body`, `built-in: ...` or
//! `configs/label_mappings.json: TotalSegmentatorMR ...`. A demo
//! bundle that mirrors the upstream layout (the same keys, same expression forms,
//! or plain JSON integer lists) yields its own sets.
//!
//! Note: `metadata.json` also has `network_data_format.everything_labels`, but its
//! CT_BODY lists all ids 0..=132 (the CT output space), not the ids that
//! inference prompts, so it is not used.
//!
//! # Prompt expansion
//!
//! `inference.json` `subclass` (`{"2": [14, 5], "20": [28..32], "21": "$list(range(33, 57)) + ..."}`)
//! is passed upstream to `VistaPreTransformd`, which replaces a prompt that is a
//! key by its sub-classes (one level). Without `inference.json` (or without its
//! `subclass`) the upstream definition is used and recorded as built-in
//! ([`LabelTable::subclass_source`]).
//!
//! # Name resolution
//!
//! [`LabelTable::resolve_match`]: a number is an id (or unknown); then the exact
//! name ignoring case; then the same words in any order and with any separators
//! ("kidney_left" → left kidney; the `(deprecated)` marker is ignored); then the
//! one class whose name contains the query or all its words. Several matches at
//! the first stage that matches are ambiguous; none is unknown, with the five
//! closest names by word and edit similarity. Never a guessed id.
//!
//! # Sidecars
//!
//! [`write_sidecars`] writes `labels.json` (the source of truth), a 3D Slicer
//! colour table `labels.ctbl` and an ITK-SNAP label description
//! `labels_itksnap.txt`, for the ids present in a mask plus background. Note
//! that upstream fills NaN voxels with 255, which in NV-Segment-CTMR is also a
//! class (`Left-AnG---angular-gyrus`); `labels.json` warns when 255 is present.

mod edit;
pub(crate) mod expr;
mod load;
mod rank;
mod resolve;
mod sidecars;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use resolve::{MatchKind, ResolveErrorKind};
pub(crate) use resolve::{Resolution, ResolveError};
pub use sidecars::{colour_for, write_sidecars, Sidecars};

/// The three segment-everything modes upstream supports.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum Modality {
    #[serde(rename = "CT_BODY")]
    CtBody,
    #[serde(rename = "MRI_BODY")]
    MriBody,
    #[serde(rename = "MRI_BRAIN")]
    MriBrain,
}

impl Modality {
    pub const ALL: [Modality; 3] = [Modality::CtBody, Modality::MriBody, Modality::MriBrain];

    /// The upstream spelling, as passed to `--modality`.
    pub fn as_str(self) -> &'static str {
        match self {
            Modality::CtBody => "CT_BODY",
            Modality::MriBody => "MRI_BODY",
            Modality::MriBrain => "MRI_BRAIN",
        }
    }
}

impl fmt::Display for Modality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A modality string that is none of `CT_BODY`, `MRI_BODY`, `MRI_BRAIN`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown modality '{0}': use one of CT_BODY, MRI_BODY, MRI_BRAIN")]
pub struct ParseModalityError(pub String);

impl FromStr for Modality {
    type Err = ParseModalityError;

    /// Accepts the upstream spellings, case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Modality::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ParseModalityError(s.to_string()))
    }
}

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
    /// Display colour, deterministic per id ([`colour_for`]).
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
    classes: BTreeMap<u32, LabelClass>,
    sources: Vec<SourceFile>,
    everything_sets: BTreeMap<Modality, EverythingSet>,
    /// Prompt id → the ids it expands to.
    subclasses: BTreeMap<u32, Vec<u32>>,
    subclass_source: Option<String>,
    /// Human-readable notes on optional files absent and fallbacks taken.
    notes: Vec<String>,
    /// The class names prepared for resolution, built on the first query.
    #[serde(skip)]
    name_index: std::sync::OnceLock<rank::NameIndex>,
}

fn classes_as_list<S: serde::Serializer>(
    classes: &BTreeMap<u32, LabelClass>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(classes.values())
}

/// Why a label table could not be read. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    #[error(
        "{root} is not an NV-Segment-CTMR bundle root: {expected} does not exist; \
         pass the directory that contains configs/metadata.json"
    )]
    NotABundle { root: PathBuf, expected: PathBuf },
    #[error("cannot read {path}: {source}; check that the file exists and is readable")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON: {source}; restore the file from the bundle")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path} has no `{key}`; restore the file from the upstream bundle")]
    MissingKey { path: PathBuf, key: String },
    #[error(
        "{path}: `{key}` is malformed: {reason}; correct it or restore the file from the bundle"
    )]
    BadValue {
        path: PathBuf,
        key: String,
        reason: String,
    },
    #[error("{path} disagrees with configs/metadata.json channel_def: {reason}; the bundle files are from different versions")]
    Inconsistent { path: PathBuf, reason: String },
    #[error(
        "{path}: cannot evaluate `{key}` = {expr:?}: {reason}; \
         write it as a JSON list of ids or one of the forms documented in ctmr_skill::labels"
    )]
    UnsupportedExpression {
        path: PathBuf,
        key: String,
        expr: String,
        reason: String,
    },
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

    /// Read a `labels.json` sidecar written by [`write_sidecars`] back into a table
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

    fn name_index(&self) -> &rank::NameIndex {
        self.name_index.get_or_init(|| rank::NameIndex::new(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
