//! Why a label table could not be read: one typed error whose every variant names
//! the file, so a caller (doctor, the tools) can tell a wrong root from a damaged
//! bundle and say what to do.

use std::path::PathBuf;

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
