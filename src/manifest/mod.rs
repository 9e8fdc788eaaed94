//! `skill_manifest.yaml`: the single source of the tool interface, argument gates,
//! generated JSON Schemas and the sanity checks evaluated on every evidence document.
