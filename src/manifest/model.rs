//! Typed view of the parts of `skill_manifest.yaml` the code acts on. The rest of the
//! document (upstream refs, intended use, costs) is kept as raw YAML for the evidence.

use serde::Deserialize;
use serde_json::Value;

use crate::evidence::sanity::SanityCheck;
use crate::evidence::Skill;

/// A manifest that failed to parse or is internally inconsistent.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("skill_manifest.yaml does not parse: {0}")]
    Parse(#[from] serde_yaml::Error),
    #[error("skill_manifest.yaml is inconsistent: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub id: String,
    pub version: String,
    pub license: String,
    pub runtime: Runtime,
    pub paired_verifiers: Vec<PairedVerifier>,
    pub interface: Interface,
    pub validation: Validation,
    /// `validation.sanity_checks`, parsed once by [`Manifest::parse`].
    #[serde(skip)]
    pub checks: Vec<SanityCheck>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Runtime {
    pub entrypoint: String,
    pub official_entrypoint: String,
    pub config_file: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PairedVerifier {
    pub id: String,
    pub path: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Interface {
    pub tools: Vec<ToolDecl>,
    pub gates: Vec<GateSpec>,
}

/// One tool as declared: its documentation and every argument.
#[derive(Debug, Clone, Deserialize)]
pub struct ToolDecl {
    pub name: String,
    pub title: String,
    pub description: String,
    pub read_only: bool,
    pub output_schema: Option<String>,
    pub arguments: Vec<ArgSpec>,
}

/// The JSON type of an argument (or of an array's items).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArgType {
    String,
    Integer,
    Number,
    Boolean,
    Array,
}

impl ArgType {
    pub(crate) fn json_name(self) -> &'static str {
        match self {
            ArgType::String => "string",
            ArgType::Integer => "integer",
            ArgType::Number => "number",
            ArgType::Boolean => "boolean",
            ArgType::Array => "array",
        }
    }
}

/// The constraints on one value (an argument, or the items of an array argument).
#[derive(Debug, Clone, Deserialize)]
pub struct ValueSpec {
    #[serde(rename = "type")]
    pub ty: ArgType,
    #[serde(default, rename = "enum")]
    pub allowed: Option<Vec<String>>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub min_length: Option<usize>,
    /// The most characters a string may hold (JSON Schema `maxLength`).
    pub max_length: Option<usize>,
}

/// One declared argument.
#[derive(Debug, Clone, Deserialize)]
pub struct ArgSpec {
    pub name: String,
    /// The `ctmr-skill run` flag carrying the same argument, if any.
    pub cli: Option<String>,
    #[serde(flatten)]
    pub value: ValueSpec,
    pub items: Option<ValueSpec>,
    pub min_items: Option<usize>,
    pub max_items: Option<usize>,
    pub default: Option<serde_yaml::Value>,
    #[serde(default)]
    pub required: bool,
    pub description: String,
    #[serde(default)]
    pub gates: Vec<String>,
    /// `directory` or `picture` for an argument naming a path the tool writes: the
    /// tool passes it through the one write gate (`tools::write_gate`).
    pub writes: Option<String>,
}

impl ValueSpec {
    /// A string a client may fill freely (no `enum`) must state `max_length`.
    fn uncapped_string(&self) -> bool {
        self.ty == ArgType::String && self.allowed.is_none() && self.max_length.is_none()
    }
}

impl ArgSpec {
    /// What the declaration lacks to bound what a client can send, if anything: every
    /// free string states `max_length`, every array `items`, `max_items` and, for
    /// strings, the items' `max_length`.
    fn missing_cap(&self) -> Option<&'static str> {
        if self.value.uncapped_string() {
            return Some("is a string without max_length");
        }
        if self.value.ty != ArgType::Array {
            return None;
        }
        match &self.items {
            None => Some("is an array without `items`"),
            Some(_) if self.max_items.is_none() => Some("is an array without max_items"),
            Some(items) if items.uncapped_string() => Some("has string items without max_length"),
            Some(_) => None,
        }
    }

    /// The default as JSON, for schemas and for filling in absent arguments.
    pub(crate) fn default_json(&self) -> Option<Value> {
        self.default
            .as_ref()
            .and_then(|v| serde_json::to_value(v).ok())
    }
}

/// A gate: a rule checked before anything runs, and the fix a refusal suggests.
#[derive(Debug, Clone, Deserialize)]
pub struct GateSpec {
    pub id: String,
    pub rule: String,
    pub fix: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Validation {
    pub sanity_checks: Vec<serde_yaml::Value>,
}

impl Manifest {
    /// Parse and check internal consistency: unique tool and argument names, every gate
    /// an argument cites is declared, every sanity check parses. (That every tool has an
    /// implementation and an output schema is the tool registry's start-up check.)
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let mut manifest: Manifest = serde_yaml::from_str(text)?;
        let mut tool_names = std::collections::BTreeSet::new();
        for tool in &manifest.interface.tools {
            if !tool_names.insert(tool.name.as_str()) {
                return Err(ManifestError::Invalid(format!(
                    "tool '{}' declared twice",
                    tool.name
                )));
            }
            let mut arg_names = std::collections::BTreeSet::new();
            for arg in &tool.arguments {
                if !arg_names.insert(arg.name.as_str()) {
                    return Err(ManifestError::Invalid(format!(
                        "tool '{}': argument '{}' declared twice",
                        tool.name, arg.name
                    )));
                }
                if let Some(missing) = arg.missing_cap() {
                    return Err(ManifestError::Invalid(format!(
                        "tool '{}': argument '{}' {missing}",
                        tool.name, arg.name
                    )));
                }
                for gate in &arg.gates {
                    if manifest.gate(gate).is_none() {
                        return Err(ManifestError::Invalid(format!(
                            "tool '{}': argument '{}' cites undeclared gate '{gate}'",
                            tool.name, arg.name
                        )));
                    }
                }
            }
        }
        manifest.checks = SanityCheck::parse_all(&manifest.validation.sanity_checks)
            .map_err(ManifestError::Invalid)?;
        Ok(manifest)
    }

    pub fn tool(&self, name: &str) -> Option<&ToolDecl> {
        self.interface.tools.iter().find(|t| t.name == name)
    }

    pub fn gate(&self, id: &str) -> Option<&GateSpec> {
        self.interface.gates.iter().find(|g| g.id == id)
    }

    /// The skill as evidence records it: id, version and the sanity checks.
    pub fn skill(&self) -> Skill<'_> {
        Skill {
            id: &self.id,
            version: &self.version,
            sanity_checks: &self.checks,
        }
    }
}

impl ToolDecl {
    pub fn argument(&self, name: &str) -> Option<&ArgSpec> {
        self.arguments.iter().find(|a| a.name == name)
    }
}
