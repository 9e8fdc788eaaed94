//! Reading a bundle's label files into a [`LabelTable`]. Every file read is
//! hashed from the same bytes that are parsed. `inference.json`, a file of MONAI
//! expressions, is read through [`inference`].

mod inference;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{
    colour_for, DatasetLabel, EverythingSet, LabelClass, LabelError, LabelTable, Modality,
    SourceFile,
};
use inference::Config;

/// The path under which the built-in upstream files (embedded by build.rs) are recorded.
pub(super) const BUILT_IN_ROOT: &str = "<built-in upstream c46f994>";

/// The upstream label files compiled into the binary by build.rs from the shared
/// upstream data (never committed; provenance: data/upstream/README.md). Empty when the
/// build found none.
const BUILT_IN_FILES: [(&str, &str); 3] = [
    (
        "configs/metadata.json",
        include_str!(concat!(env!("OUT_DIR"), "/upstream-labels/metadata.json")),
    ),
    (
        "configs/label_dict.json",
        include_str!(concat!(env!("OUT_DIR"), "/upstream-labels/label_dict.json")),
    ),
    (
        "configs/label_mappings.json",
        include_str!(concat!(
            env!("OUT_DIR"),
            "/upstream-labels/label_mappings.json"
        )),
    ),
];

/// Whether this build embeds the upstream label files.
pub(super) fn has_built_in() -> bool {
    BUILT_IN_FILES.iter().all(|(_, text)| !text.is_empty())
}

/// The built-in bytes of `path` when it names a file under [`BUILT_IN_ROOT`].
fn built_in(path: &Path) -> Option<&'static str> {
    let rel = path.strip_prefix(BUILT_IN_ROOT).ok()?;
    BUILT_IN_FILES
        .iter()
        .find(|(name, text)| Path::new(name) == rel && !text.is_empty())
        .map(|(_, text)| *text)
}

/// A label file exists: built in, or a regular file on disk.
fn exists(path: &Path) -> bool {
    if path.starts_with(BUILT_IN_ROOT) {
        return built_in(path).is_some();
    }
    path.is_file()
}

const CHANNEL_DEF: &str = "network_data_format.outputs.pred.channel_def";
const DEPRECATED_SUFFIX: &str = "(deprecated)";

/// Upstream `ct_body`: ids 1..=132 without these (kidney/lung/bone parents,
/// deprecated, tumours, vessels, airway; see upstream docs/inference.md).
const CT_BODY_EXCLUDED: [u32; 15] = [
    2, 16, 18, 20, 21, 23, 24, 25, 26, 27, 128, 129, 130, 131, 132,
];
const CT_BODY_MAX: u32 = 132;

/// Upstream `subclass` (prompt → sub-classes) for when `inference.json` is absent.
fn builtin_subclasses() -> BTreeMap<u32, Vec<u32>> {
    let bone: Vec<u32> = (33..57).chain(63..98).chain([114, 120, 122]).collect();
    BTreeMap::from([(2, vec![14, 5]), (20, (28..=32).collect()), (21, bone)])
}

pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Read and parse a JSON file, recording its hash.
pub(super) fn read_json(path: &Path) -> Result<(Value, SourceFile), LabelError> {
    // Bounded, regular files only: a FIFO or /dev/zero is refused at once.
    let bytes = match built_in(path) {
        Some(text) => text.as_bytes().to_vec(),
        None => crate::files::read_capped(path, crate::files::JSON_CAP).map_err(|e| {
            LabelError::Read {
                path: path.to_path_buf(),
                source: e.into_io_without_path(),
            }
        })?,
    };
    let value = serde_json::from_slice(&bytes).map_err(|source| LabelError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let source = SourceFile {
        path: path.to_path_buf(),
        sha256: sha256_hex(&bytes),
    };
    Ok((value, source))
}

fn bad(path: &Path, key: &str, reason: impl Into<String>) -> LabelError {
    LabelError::BadValue {
        path: path.to_path_buf(),
        key: key.to_string(),
        reason: reason.into(),
    }
}

fn inconsistent(path: &Path, reason: impl Into<String>) -> LabelError {
    LabelError::Inconsistent {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// A note that `what` names ids which channel_def does not define. They are
/// kept as configured (that is what the bundle runs with), not dropped or guessed.
fn undefined_note(what: &str, undefined: &BTreeSet<u32>) -> String {
    const SHOWN: usize = 12;
    let mut listed: Vec<String> = undefined.iter().take(SHOWN).map(u32::to_string).collect();
    if undefined.len() > SHOWN {
        listed.push(format!("... {} more", undefined.len() - SHOWN));
    }
    format!(
        "{what} names {} id(s) that metadata.json channel_def does not define ({}); kept as configured",
        undefined.len(),
        listed.join(", ")
    )
}

fn parse_id(path: &Path, key: &str, text: &str) -> Result<u32, LabelError> {
    text.trim().parse::<u32>().map_err(|_| {
        bad(
            path,
            key,
            format!("'{text}' is not a non-negative integer id"),
        )
    })
}

pub(super) fn load_bundle(root: &Path) -> Result<LabelTable, LabelError> {
    let configs = root.join("configs");
    let metadata_path = configs.join("metadata.json");
    if !exists(&metadata_path) {
        return Err(LabelError::NotABundle {
            root: root.to_path_buf(),
            expected: metadata_path,
        });
    }
    let mut sources = Vec::new();
    let mut notes = Vec::new();

    let (metadata, source) = read_json(&metadata_path)?;
    sources.push(source);
    let mut classes = parse_channel_def(&metadata_path, &metadata)?;
    read_label_dict(&configs, &mut classes, &mut sources, &mut notes)?;
    let mappings = read_label_mappings(&configs, &mut classes, &mut sources, &mut notes)?;
    let inference_path = configs.join("inference.json");
    let inference = read_inference(&inference_path, &mut sources, &mut notes)?;

    let ids: BTreeSet<u32> = classes.keys().copied().collect();
    let mut config = inference.as_ref().map(|map| Config {
        root,
        path: &inference_path,
        map,
        loaded: Vec::new(),
        stack: Vec::new(),
        notes: Vec::new(),
    });
    let everything_sets = everything_sets(
        config.as_mut(),
        inference.is_some(),
        mappings.as_ref(),
        &ids,
        &mut notes,
    )?;
    let (subclasses, subclass_source) =
        subclasses(config.as_mut(), inference.is_some(), &ids, &mut notes)?;

    if let Some(config) = config {
        notes.extend(config.notes);
        for source in config.loaded {
            if !sources.iter().any(|s| s.path == source.path) {
                sources.push(source);
            }
        }
    }

    Ok(LabelTable {
        classes,
        sources,
        everything_sets,
        subclasses,
        subclass_source,
        notes,
        name_index: Default::default(),
    })
}

/// `configs/label_dict.json`, when present: training datasets of each class.
fn read_label_dict(
    configs: &Path,
    classes: &mut BTreeMap<u32, LabelClass>,
    sources: &mut Vec<SourceFile>,
    notes: &mut Vec<String>,
) -> Result<(), LabelError> {
    let label_dict_path = configs.join("label_dict.json");
    if exists(&label_dict_path) {
        let (dict, source) = read_json(&label_dict_path)?;
        sources.push(source);
        apply_label_dict(&label_dict_path, &dict, classes, notes)?;
    } else {
        notes.push(format!(
            "{} absent: classes carry no training datasets",
            label_dict_path.display()
        ));
    }
    Ok(())
}

/// `configs/label_mappings.json`, when present: each class's local ids per dataset.
fn read_label_mappings(
    configs: &Path,
    classes: &mut BTreeMap<u32, LabelClass>,
    sources: &mut Vec<SourceFile>,
    notes: &mut Vec<String>,
) -> Result<Option<Mappings>, LabelError> {
    let mappings_path = configs.join("label_mappings.json");
    if !exists(&mappings_path) {
        notes.push(format!(
            "{} absent: MRI everything-sets cannot be derived from it",
            mappings_path.display()
        ));
        return Ok(None);
    }
    let (mappings, source) = read_json(&mappings_path)?;
    sources.push(source);
    let parsed = parse_label_mappings(&mappings_path, &mappings, classes, notes)?;
    for (dataset, pairs) in &parsed {
        for &(local_id, global) in pairs {
            if let Some(class) = classes.get_mut(&global) {
                class.dataset_labels.push(DatasetLabel {
                    dataset: dataset.clone(),
                    local_id,
                });
            }
        }
    }
    for class in classes.values_mut() {
        class.dataset_labels.sort();
    }
    Ok(Some(parsed))
}

/// `configs/inference.json`, when present: it must be a JSON object.
fn read_inference(
    inference_path: &Path,
    sources: &mut Vec<SourceFile>,
    notes: &mut Vec<String>,
) -> Result<Option<serde_json::Map<String, Value>>, LabelError> {
    if !exists(inference_path) {
        notes.push(format!(
            "{} absent: everything-sets and sub-classes use the documented upstream definitions",
            inference_path.display()
        ));
        return Ok(None);
    }
    let (inference, source) = read_json(inference_path)?;
    sources.push(source);
    match inference {
        Value::Object(map) => Ok(Some(map)),
        _ => Err(bad(inference_path, "(top level)", "expected a JSON object")),
    }
}

/// The everything-set of each modality: from inference.json, else the documented fallback.
fn everything_sets(
    mut config: Option<&mut Config>,
    have_inference: bool,
    mappings: Option<&Mappings>,
    ids: &BTreeSet<u32>,
    notes: &mut Vec<String>,
) -> Result<BTreeMap<Modality, EverythingSet>, LabelError> {
    let mut everything_sets = BTreeMap::new();
    for modality in Modality::ALL {
        let from_config = match config.as_deref_mut() {
            Some(config) => config.everything_set(modality, ids)?,
            None => None,
        };
        let set = match from_config {
            Some(set) => Some(set),
            None => fallback_everything_set(modality, have_inference, mappings, ids, notes),
        };
        if let Some(set) = set {
            everything_sets.insert(modality, set);
        }
    }
    Ok(everything_sets)
}

/// Prompt id → its sub-class ids.
type Subclasses = BTreeMap<u32, Vec<u32>>;

/// Sub-classes of each prompt, and where they come from: inference.json's
/// `subclass`, else the built-in upstream definition.
fn subclasses(
    config: Option<&mut Config>,
    have_inference: bool,
    ids: &BTreeSet<u32>,
    notes: &mut Vec<String>,
) -> Result<(Subclasses, Option<String>), LabelError> {
    if let Some(config) = config.filter(|c| c.map.contains_key("subclass")) {
        return Ok((
            config.subclasses(ids)?,
            Some("configs/inference.json: subclass".to_string()),
        ));
    }
    let builtin = builtin_subclasses();
    let why = if have_inference {
        "configs/inference.json has no `subclass`"
    } else {
        "configs/inference.json absent"
    };
    let named: BTreeSet<u32> = builtin
        .iter()
        .flat_map(|(parent, children)| std::iter::once(parent).chain(children))
        .copied()
        .collect();
    let undefined: BTreeSet<u32> = named.difference(ids).copied().collect();
    if !undefined.is_empty() {
        notes.push(undefined_note(
            "the built-in upstream `subclass`",
            &undefined,
        ));
    }
    Ok((
        builtin,
        Some(format!(
            "built-in: the upstream inference.json `subclass` ({why})"
        )),
    ))
}

fn parse_channel_def(
    path: &Path,
    metadata: &Value,
) -> Result<BTreeMap<u32, LabelClass>, LabelError> {
    let channel_def = metadata
        .pointer("/network_data_format/outputs/pred/channel_def")
        .ok_or_else(|| LabelError::MissingKey {
            path: path.to_path_buf(),
            key: CHANNEL_DEF.into(),
        })?
        .as_object()
        .ok_or_else(|| {
            bad(
                path,
                CHANNEL_DEF,
                "expected an object {\"<id>\": \"<name>\"}",
            )
        })?;
    let mut classes = BTreeMap::new();
    let mut seen_names: BTreeMap<String, u32> = BTreeMap::new();
    for (key, value) in channel_def {
        let id = parse_id(path, CHANNEL_DEF, key)?;
        let name = value
            .as_str()
            .ok_or_else(|| {
                bad(
                    path,
                    CHANNEL_DEF,
                    format!("the name of id {id} is not a string"),
                )
            })?
            .trim()
            .to_string();
        if name.is_empty() {
            return Err(bad(path, CHANNEL_DEF, format!("id {id} has an empty name")));
        }
        if id == 0 {
            continue; // background, not a class
        }
        if let Some(other) = seen_names.insert(name.to_lowercase(), id) {
            return Err(bad(
                path,
                CHANNEL_DEF,
                format!("ids {other} and {id} share the name '{name}'"),
            ));
        }
        classes.insert(
            id,
            LabelClass {
                id,
                deprecated: is_deprecated(&name),
                name,
                datasets: Vec::new(),
                modalities: Vec::new(),
                dataset_labels: Vec::new(),
                colour: colour_for(id),
            },
        );
    }
    if classes.is_empty() {
        return Err(bad(path, CHANNEL_DEF, "defines no classes"));
    }
    Ok(classes)
}

pub(super) fn is_deprecated(name: &str) -> bool {
    name.trim_end().to_lowercase().ends_with(DEPRECATED_SUFFIX)
}

fn string_list(path: &Path, key: &str, value: Option<&Value>) -> Result<Vec<String>, LabelError> {
    match value {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad(path, key, "expected a list of strings"))
            })
            .collect(),
        Some(_) => Err(bad(path, key, "expected a list of strings")),
    }
}

fn apply_label_dict(
    path: &Path,
    dict: &Value,
    classes: &mut BTreeMap<u32, LabelClass>,
    notes: &mut Vec<String>,
) -> Result<(), LabelError> {
    let mut undefined = BTreeSet::new();
    let entries = dict.as_object().ok_or_else(|| {
        bad(
            path,
            "(top level)",
            "expected an object {\"<name>\": {...}}",
        )
    })?;
    for (name, entry) in entries {
        let index = entry
            .get("index")
            .and_then(Value::as_u64)
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| bad(path, &format!("{name}.index"), "missing or not an id"))?;
        let Some(class) = classes.get_mut(&index) else {
            undefined.insert(index);
            continue;
        };
        if class.name != name.trim() {
            return Err(inconsistent(
                path,
                format!(
                    "index {index} is '{name}' here but '{}' in channel_def",
                    class.name
                ),
            ));
        }
        class.modalities = string_list(path, &format!("{name}.datasets"), entry.get("datasets"))?;
        let mut datasets = BTreeSet::new();
        for modality in ["CT", "MRI"] {
            datasets.extend(string_list(
                path,
                &format!("{name}.{modality}"),
                entry.get(modality),
            )?);
        }
        class.datasets = datasets.into_iter().collect();
    }
    if !undefined.is_empty() {
        notes.push(undefined_note("configs/label_dict.json", &undefined));
    }
    Ok(())
}

type Mappings = BTreeMap<String, Vec<(i64, u32)>>;

fn parse_label_mappings(
    path: &Path,
    value: &Value,
    classes: &BTreeMap<u32, LabelClass>,
    notes: &mut Vec<String>,
) -> Result<Mappings, LabelError> {
    let datasets = value.as_object().ok_or_else(|| {
        bad(
            path,
            "(top level)",
            "expected an object {\"<dataset>\": [[local, global], ...]}",
        )
    })?;
    let mut out = BTreeMap::new();
    for (dataset, pairs) in datasets {
        let pairs = pairs
            .as_array()
            .ok_or_else(|| bad(path, dataset, "expected a list of [local, global] pairs"))?;
        let mut parsed = Vec::with_capacity(pairs.len());
        let mut undefined = BTreeSet::new();
        for pair in pairs {
            let (local, global) = match pair.as_array().map(Vec::as_slice) {
                Some([local, global]) => (local.as_i64(), global.as_u64()),
                _ => (None, None),
            };
            let (Some(local), Some(global)) = (local, global.and_then(|g| u32::try_from(g).ok()))
            else {
                return Err(bad(
                    path,
                    dataset,
                    format!("{pair} is not a [local, global] id pair"),
                ));
            };
            if global != 0 && !classes.contains_key(&global) {
                undefined.insert(global);
            }
            parsed.push((local, global));
        }
        if !undefined.is_empty() {
            notes.push(undefined_note(
                &format!("configs/label_mappings.json '{dataset}'"),
                &undefined,
            ));
        }
        out.insert(dataset.clone(), parsed);
    }
    Ok(out)
}

fn fallback_everything_set(
    modality: Modality,
    have_inference: bool,
    mappings: Option<&Mappings>,
    ids: &BTreeSet<u32>,
    notes: &mut Vec<String>,
) -> Option<EverythingSet> {
    let why = if have_inference {
        format!("configs/inference.json does not define {modality}")
    } else {
        "configs/inference.json absent".to_string()
    };
    match modality {
        Modality::CtBody => {
            let set: BTreeSet<u32> = (1..=CT_BODY_MAX)
                .filter(|id| !CT_BODY_EXCLUDED.contains(id))
                .collect();
            let undefined: BTreeSet<u32> = set.difference(ids).copied().collect();
            if !undefined.is_empty() {
                notes.push(undefined_note(
                    "the built-in upstream `ct_body`",
                    &undefined,
                ));
            }
            Some(EverythingSet {
                ids: set,
                source: format!(
                    "built-in: the upstream inference.json `ct_body` (ids 1..=132 minus {CT_BODY_EXCLUDED:?}) ({why})"
                ),
            })
        }
        Modality::MriBody | Modality::MriBrain => {
            let dataset = if modality == Modality::MriBody {
                "TotalSegmentatorMR"
            } else {
                "LUMIR"
            };
            match mappings.and_then(|m| m.get(dataset)) {
                Some(pairs) => Some(EverythingSet {
                    ids: pairs.iter().map(|&(_, g)| g).filter(|&g| g != 0).collect(),
                    source: format!(
                        "configs/label_mappings.json: {dataset} (second element of each pair, as the upstream inference.json `{}`) ({why})",
                        modality.as_str().to_lowercase()
                    ),
                }),
                None => {
                    notes.push(format!(
                        "{why}, and configs/label_mappings.json has no '{dataset}': no {modality} set"
                    ));
                    None
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_subclasses_match_the_documented_upstream_definition() {
        let sub = builtin_subclasses();
        assert_eq!(sub[&2], vec![14, 5]);
        assert_eq!(sub[&20], vec![28, 29, 30, 31, 32]);
        let bone = &sub[&21];
        assert_eq!(bone.len(), 24 + 35 + 3);
        assert_eq!((bone[0], bone[23], bone[24], bone[58]), (33, 56, 63, 97));
        assert_eq!(&bone[59..], &[114, 120, 122]);
    }

    #[test]
    fn sha256_of_known_bytes() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
