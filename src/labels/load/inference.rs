//! `configs/inference.json` as the upstream bundle means it: MONAI config items whose
//! values are expressions (`$...`, `@key#path`, `json.loads(...)` of a bundle file).
//! The everything-sets and the sub-class map are read from there by evaluating the
//! few expression forms the upstream uses ([`crate::labels::expr`]), never by running Python.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::super::expr::{self, Expr, Resolver, Val};
use super::super::{EverythingSet, LabelError, Modality, SourceFile};
use super::{bad, parse_id, read_json, undefined_note};

/// `inference.json` as a source of MONAI expressions.
pub(super) struct Config<'a> {
    pub(super) root: &'a Path,
    pub(super) path: &'a Path,
    pub(super) map: &'a serde_json::Map<String, Value>,
    /// Files loaded by `json.loads(...)` expressions, hashed.
    pub(super) loaded: Vec<SourceFile>,
    /// Keys being resolved, to reject circular references.
    pub(super) stack: Vec<String>,
    /// Notes on ids the config names that channel_def does not define.
    pub(super) notes: Vec<String>,
}

impl Config<'_> {
    fn unsupported(&self, key: &str, expr: &str, reason: String) -> LabelError {
        LabelError::UnsupportedExpression {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            expr: expr.to_string(),
            reason,
        }
    }

    /// The everything-set of `modality` as inference.json defines it, if it does.
    pub(super) fn everything_set(
        &mut self,
        modality: Modality,
        ids: &BTreeSet<u32>,
    ) -> Result<Option<EverythingSet>, LabelError> {
        let (key, expr_text, expr) = if let Some(raw) = self.map.get("everything_labels") {
            let text = raw.as_str().unwrap_or_default();
            let body = text.strip_prefix('$').ok_or_else(|| {
                self.unsupported(
                    "everything_labels",
                    &raw.to_string(),
                    "expected a `$` expression with a dict of modalities".into(),
                )
            })?;
            let parsed =
                expr::parse(body).map_err(|e| self.unsupported("everything_labels", text, e))?;
            // `{...}[@modality]` selects one entry at run time; we want every entry.
            let dict = match parsed {
                Expr::Index(base, index) if matches!(*index, Expr::Ref(ref n, _) if n == "modality") => {
                    *base
                }
                other => other,
            };
            let Expr::Dict(entries) = dict else {
                return Err(self.unsupported(
                    "everything_labels",
                    text,
                    "expected a dict literal {'CT_BODY': ..., ...}, optionally indexed by [@modality]".into(),
                ));
            };
            match entries.into_iter().find(|(k, _)| k == modality.as_str()) {
                Some((_, entry)) => {
                    let label = match &entry {
                        Expr::Ref(name, path) if path.is_empty() => {
                            format!("everything_labels['{modality}'] = @{name}")
                        }
                        _ => format!("everything_labels['{modality}']"),
                    };
                    (label, text.to_string(), entry)
                }
                None => return Ok(None),
            }
        } else {
            let key = modality.as_str().to_lowercase();
            if !self.map.contains_key(&key) {
                return Ok(None);
            }
            (key.clone(), format!("@{key}"), Expr::Ref(key, Vec::new()))
        };
        let value = expr::eval(&expr, self).map_err(|e| self.unsupported(&key, &expr_text, e))?;
        let set = self.id_set(&key, &expr_text, &value, ids)?;
        Ok(Some(EverythingSet {
            ids: set,
            source: format!("configs/inference.json: {key}"),
        }))
    }

    pub(super) fn subclasses(
        &mut self,
        ids: &BTreeSet<u32>,
    ) -> Result<BTreeMap<u32, Vec<u32>>, LabelError> {
        let raw = &self.map["subclass"];
        let value = self
            .value(raw)
            .map_err(|e| self.unsupported("subclass", &raw.to_string(), e))?;
        let Val::Dict(entries) = value else {
            return Err(bad(
                self.path,
                "subclass",
                "expected an object {\"<id>\": [ids...]}",
            ));
        };
        let mut out = BTreeMap::new();
        let mut undefined_parents = BTreeSet::new();
        for (parent, children) in entries {
            let key = format!("subclass.{parent}");
            let parent_id = parse_id(self.path, &key, &parent)?;
            if !ids.contains(&parent_id) {
                undefined_parents.insert(parent_id);
            }
            // Validate every id, then keep upstream's order (the order prompts are sent in).
            self.id_set(&key, &raw.to_string(), &children, ids)?;
            let ordered: Vec<u32> = children
                .as_ints()
                .map_err(|e| bad(self.path, &key, e))?
                .into_iter()
                .filter_map(|i| u32::try_from(i).ok())
                .collect();
            out.insert(parent_id, ordered);
        }
        if !undefined_parents.is_empty() {
            let what = "configs/inference.json `subclass` (its keys)";
            self.notes.push(undefined_note(what, &undefined_parents));
        }
        Ok(out)
    }

    /// Integers of `value` as class ids. Values that cannot be class ids (0,
    /// negative, too large) are errors; ids channel_def lacks are noted.
    fn id_set(
        &mut self,
        key: &str,
        expr_text: &str,
        value: &Val,
        ids: &BTreeSet<u32>,
    ) -> Result<BTreeSet<u32>, LabelError> {
        let ints = value
            .as_ints()
            .map_err(|e| self.unsupported(key, expr_text, e))?;
        let mut set = BTreeSet::new();
        let mut not_ids = Vec::new();
        for i in ints {
            match u32::try_from(i) {
                Ok(id) if id != 0 => {
                    set.insert(id);
                }
                _ => not_ids.push(i),
            }
        }
        if !not_ids.is_empty() {
            return Err(bad(
                self.path,
                key,
                format!("{not_ids:?} cannot be class ids (ids are 1 and up)"),
            ));
        }
        let undefined: BTreeSet<u32> = set.difference(ids).copied().collect();
        if !undefined.is_empty() {
            let what = format!("configs/inference.json `{key}`");
            self.notes.push(undefined_note(&what, &undefined));
        }
        Ok(set)
    }

    /// A config value: `$` strings are evaluated, containers recursively.
    fn value(&mut self, raw: &Value) -> Result<Val, String> {
        match raw {
            Value::String(s) => match s.strip_prefix('$') {
                Some(body) => {
                    if let Some(rel) = json_loads_path(body) {
                        return self.load_json_file(&rel);
                    }
                    let parsed = expr::parse(body)?;
                    expr::eval(&parsed, self)
                }
                None => Ok(Val::Str(s.clone())),
            },
            Value::Array(items) => items
                .iter()
                .map(|v| self.value(v))
                .collect::<Result<_, _>>()
                .map(Val::List),
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| Ok((k.clone(), self.value(v)?)))
                .collect::<Result<_, String>>()
                .map(Val::Dict),
            other => Val::from_json(other),
        }
    }

    fn load_json_file(&mut self, rel: &str) -> Result<Val, String> {
        let path: PathBuf = self.root.join(rel);
        let (value, source) = read_json(&path).map_err(|e| e.to_string())?;
        if !self.loaded.iter().any(|s| s.path == source.path) {
            self.loaded.push(source);
        }
        Val::from_json(&value)
    }
}

impl Resolver for Config<'_> {
    /// MONAI semantics: `@a#b#0` names the raw config item `a` → `b` → `[0]`,
    /// which is then evaluated; `#` never indexes into an expression's result.
    fn resolve(&mut self, name: &str, path: &[String]) -> Result<Val, String> {
        let id = std::iter::once(name)
            .chain(path.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join("#");
        if self.stack.contains(&id) {
            return Err(format!("circular reference to @{id}"));
        }
        let mut raw = self
            .map
            .get(name)
            .ok_or_else(|| format!("@{name} is not a key of inference.json"))?;
        for part in path {
            raw = match raw {
                Value::Object(map) => map.get(part),
                Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            }
            .ok_or_else(|| format!("@{id}: no config item '{part}' there"))?;
        }
        self.stack.push(id);
        let value = self.value(raw);
        self.stack.pop();
        value
    }
}

/// The bundle-relative file of the upstream idiom
/// `json.loads(pathlib.Path(@bundle_root + '/configs/x.json').read_text())`.
/// Only plain relative paths inside the bundle are accepted.
fn json_loads_path(body: &str) -> Option<String> {
    let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let inner = compact
        .strip_prefix("json.loads(pathlib.Path(@bundle_root+")?
        .strip_suffix(").read_text())")?;
    let quoted = inner
        .strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')))?;
    let rel = quoted.trim_start_matches('/');
    let safe = !rel.is_empty()
        && Path::new(rel)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    safe.then(|| rel.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_json_loads_idiom_and_only_paths_inside_the_bundle() {
        assert_eq!(
            json_loads_path("json.loads(pathlib.Path(@bundle_root + '/configs/label_mappings.json').read_text())"),
            Some("configs/label_mappings.json".into())
        );
        assert_eq!(
            json_loads_path(
                "json.loads(pathlib.Path(@bundle_root + '/../secret.json').read_text())"
            ),
            None
        );
        assert_eq!(json_loads_path("json.loads(open('x').read())"), None);
    }
}
