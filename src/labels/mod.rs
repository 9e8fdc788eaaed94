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
//!
//! # The map
//!
//! [`table`] holds the [`LabelTable`] and its classes (the queries every caller
//! makes); [`load`] reads it from a bundle's files (or the built-in ones), with
//! [`expr`] for the everything-set expressions; [`resolve`], [`rank`] and [`edit`]
//! turn a name an agent typed into an id; [`sidecars`] writes and reads the viewer
//! files; [`modality`] and [`error`] are the modality names and why a table could
//! not be read.

mod edit;
mod error;
pub(crate) mod expr;
mod load;
mod modality;
mod rank;
mod resolve;
mod sidecars;
mod table;

pub use error::LabelError;
pub use modality::{Modality, ParseModalityError};
pub use resolve::{MatchKind, ResolveErrorKind};
pub(crate) use resolve::{Resolution, ResolveError};
pub use sidecars::{colour_for, write_sidecars, Sidecars};
pub(crate) use table::EverythingSet;
pub use table::{DatasetLabel, LabelClass, LabelTable, SourceFile};
