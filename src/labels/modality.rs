//! The three segment-everything modes upstream supports, and their names
//! (`CT_BODY`, `MRI_BODY`, `MRI_BRAIN`) as clients, the manifest and the bundle's
//! config spell them. Apart from the table because every layer above names a
//! modality without needing the vocabulary.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
