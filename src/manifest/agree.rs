//! Does a tool's typed `Args` agree with its declaration in the manifest?
//!
//! A call takes one path: the manifest validates the arguments (and fills in
//! defaults), then serde deserialises them into the tool's `Args`. So the two
//! statements *disagree* only where a value the manifest lets through could fail to
//! deserialise, or where both state a fact differently: a JSON type or item type the
//! Rust type does not take, enum values one side accepts and the other not, bounds
//! or lengths the manifest leaves wider than the Rust type, a field `Args` needs that
//! the manifest may leave out (or the reverse), a default stated twice, differently.
//! Where the Rust type says less (a `String` for an enum, an `Option<u32>` without
//! bounds) the manifest decides alone: that is agreement.
//!
//! The `Args` side is read from its JSON Schema ([`crate::json_schema::schema_of`]),
//! so anything schemars can see (`Option`, enums, `#[serde(default)]`,
//! `#[schemars(range, length)]`) counts.

use std::fmt;

use serde_json::Value;

use super::model::{ArgSpec, ArgType, ToolDecl, ValueSpec};

/// One argument on which the manifest and `Args` disagree.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Disagreement {
    pub tool: String,
    pub argument: String,
    pub what: Difference,
}

/// What differs. `manifest` is what the manifest declares, `rust` what `Args` takes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Difference {
    /// The argument's JSON type (`rust`: the types the schema allows, `null` aside).
    Type { manifest: String, rust: Vec<String> },
    /// The JSON type of an array argument's items.
    ItemType { manifest: String, rust: Vec<String> },
    /// Enum values: those only the manifest accepts, those only `Args` accepts (a
    /// manifest without `enum` accepts any string: `only_manifest` is `["*"]`).
    Enum {
        only_manifest: Vec<String>,
        only_rust: Vec<String>,
    },
    /// A bound or length (`minimum`, `maxLength`, `maxItems`, `items.maximum`, ...)
    /// the manifest leaves wider than `Args` (`None`: the manifest states none).
    Bound {
        keyword: String,
        manifest: Option<f64>,
        rust: f64,
    },
    /// The manifest requires the argument, `Args` lets it be absent (`Option`).
    RequiredOnlyInManifest,
    /// `Args` needs the field, the manifest lets it be absent and has no default.
    RequiredOnlyInRust,
    /// Both state a default, or `Args` states one the manifest lacks.
    Default {
        manifest: Option<Value>,
        rust: Value,
    },
}

impl fmt::Display for Disagreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (tool, arg) = (&self.tool, &self.argument);
        write!(f, "tool '{tool}': argument '{arg}': ")?;
        match &self.what {
            Difference::Type { manifest, rust } => {
                write!(f, "type: manifest {manifest}, Args {}", rust.join("|"))
            }
            Difference::ItemType { manifest, rust } => {
                write!(f, "item type: manifest {manifest}, Args {}", rust.join("|"))
            }
            Difference::Enum {
                only_manifest,
                only_rust,
            } => write!(
                f,
                "enum: only the manifest accepts {only_manifest:?}, only Args accepts {only_rust:?}"
            ),
            Difference::Bound {
                keyword,
                manifest,
                rust,
            } => match manifest {
                Some(m) => write!(f, "{keyword}: manifest {m}, Args {rust}"),
                None => write!(f, "{keyword}: manifest states none, Args {rust}"),
            },
            Difference::RequiredOnlyInManifest => {
                write!(
                    f,
                    "required: the manifest requires it, Args takes an Option"
                )
            }
            Difference::RequiredOnlyInRust => write!(
                f,
                "required: Args requires it, the manifest lets it be absent (no default)"
            ),
            Difference::Default { manifest, rust } => match manifest {
                Some(m) => write!(f, "default: manifest {m}, Args {rust}"),
                None => write!(f, "default: manifest states none, Args {rust}"),
            },
        }
    }
}

/// Every disagreement between `decl` and the JSON Schema of its `Args`, for the
/// arguments both name (which names each side has is the registry's check).
pub(crate) fn disagreements(decl: &ToolDecl, args_schema: &Value) -> Vec<Disagreement> {
    let required: Vec<&str> = args_schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    for arg in &decl.arguments {
        let Some(rust) = args_schema["properties"].get(&arg.name) else {
            continue;
        };
        let rust_required = required.contains(&arg.name.as_str());
        out.extend(
            argument(arg, rust, rust_required)
                .into_iter()
                .map(|what| Disagreement {
                    tool: decl.name.clone(),
                    argument: arg.name.clone(),
                    what,
                }),
        );
    }
    out
}

/// The differences for one argument.
fn argument(arg: &ArgSpec, rust: &Value, rust_required: bool) -> Vec<Difference> {
    let mut out = Vec::new();
    let types = json_types(rust);
    if !takes(&types, arg.value.ty) {
        out.push(Difference::Type {
            manifest: arg.value.ty.json_name().into(),
            rust: types,
        });
        return out;
    }
    out.extend(value(&arg.value, rust, ""));
    out.extend(count(arg, rust));
    if let (Some(items), Some(rust_items)) = (&arg.items, branch_value(rust, "items")) {
        out.extend(item(items, rust_items));
    }
    out.extend(required(arg, rust_required));
    out.extend(default(arg, rust));
    out
}

/// The differences for the items of an array argument.
fn item(items: &ValueSpec, rust: &Value) -> Vec<Difference> {
    let types = json_types(rust);
    if !takes(&types, items.ty) {
        return vec![Difference::ItemType {
            manifest: items.ty.json_name().into(),
            rust: types,
        }];
    }
    value(items, rust, "items.")
}

/// Enum values and bounds of one value; `prefix` names where (`items.` for items).
fn value(spec: &ValueSpec, rust: &Value, prefix: &str) -> Vec<Difference> {
    let mut out: Vec<Difference> = enumeration(spec, rust).into_iter().collect();
    let bounds = [
        ("minimum", spec.minimum, Side::Low),
        ("maximum", spec.maximum, Side::High),
        ("minLength", spec.min_length.map(|n| n as f64), Side::Low),
        ("maxLength", spec.max_length.map(|n| n as f64), Side::High),
    ];
    for (keyword, manifest, side) in bounds {
        out.extend(bound(rust, keyword, manifest, side, prefix));
    }
    out
}

/// `minItems` and `maxItems` of an array argument.
fn count(arg: &ArgSpec, rust: &Value) -> Vec<Difference> {
    let min = arg.min_items.map(|n| n as f64);
    let max = arg.max_items.map(|n| n as f64);
    bound(rust, "minItems", min, Side::Low, "")
        .into_iter()
        .chain(bound(rust, "maxItems", max, Side::High, ""))
        .collect()
}

#[derive(Clone, Copy)]
enum Side {
    Low,
    High,
}

/// A bound `Args` states that the manifest leaves wider (or does not state).
fn bound(
    rust: &Value,
    keyword: &str,
    manifest: Option<f64>,
    side: Side,
    prefix: &str,
) -> Option<Difference> {
    let rust = branch_value(rust, keyword)?.as_f64()?;
    let within = manifest.is_some_and(|m| match side {
        Side::Low => m >= rust,
        Side::High => m <= rust,
    });
    (!within).then(|| Difference::Bound {
        keyword: format!("{prefix}{keyword}"),
        manifest,
        rust,
    })
}

/// Enum values, where `Args` states them: the two sets must be equal.
fn enumeration(spec: &ValueSpec, rust: &Value) -> Option<Difference> {
    let consts = branches(rust).into_iter().filter_map(|s| s.get("const"));
    let rust: Vec<String> = branch_values(rust, "enum")
        .into_iter()
        .chain(consts)
        .filter(|v| !v.is_null())
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string())
        })
        .collect();
    if rust.is_empty() {
        return None;
    }
    let manifest = spec.allowed.clone().unwrap_or_else(|| vec!["*".into()]);
    let only_manifest: Vec<String> = manifest
        .iter()
        .filter(|m| !rust.contains(m))
        .cloned()
        .collect();
    let only_rust: Vec<String> = rust
        .iter()
        .filter(|r| !manifest.contains(r))
        .cloned()
        .collect();
    (!only_manifest.is_empty() || !only_rust.is_empty()).then_some(Difference::Enum {
        only_manifest,
        only_rust,
    })
}

/// Requiredness: `required: true` needs a field `Args` requires; a field `Args`
/// requires needs `required: true` or a default the manifest fills in.
fn required(arg: &ArgSpec, rust_required: bool) -> Option<Difference> {
    match (arg.required, rust_required) {
        (true, false) => Some(Difference::RequiredOnlyInManifest),
        (false, true) if arg.default.is_none() => Some(Difference::RequiredOnlyInRust),
        _ => None,
    }
}

/// A default `Args` states must be the manifest's.
fn default(arg: &ArgSpec, rust: &Value) -> Option<Difference> {
    let rust = rust.get("default").filter(|d| !d.is_null())?;
    let manifest = arg.default_json();
    let same = manifest.as_ref().is_some_and(|m| same_json(m, rust));
    (!same).then(|| Difference::Default {
        manifest,
        rust: rust.clone(),
    })
}

/// JSON equality with numbers compared by value (`3600` is `3600.0`).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        _ => a == b,
    }
}

/// Whether a value of the manifest's type deserialises into a Rust value of
/// `types` (empty: the schema does not say, anything goes). An integer is a number.
fn takes(types: &[String], ty: ArgType) -> bool {
    let has = |t: &str| types.iter().any(|x| x == t);
    types.is_empty() || has(ty.json_name()) || (ty == ArgType::Integer && has("number"))
}

/// The JSON types a schema allows, `null` aside (`Option`), with `anyOf`/`oneOf`
/// branches joined.
fn json_types(schema: &Value) -> Vec<String> {
    let mut types: Vec<String> = Vec::new();
    for node in branches(schema) {
        match &node["type"] {
            Value::String(t) => types.push(t.clone()),
            Value::Array(ts) => types.extend(ts.iter().filter_map(Value::as_str).map(Into::into)),
            _ => {}
        }
    }
    types.retain(|t| t != "null");
    types.sort();
    types.dedup();
    types
}

/// The schema itself and, depth first, its `anyOf`/`oneOf` branches (how schemars
/// writes an `Option` of a type it cannot make nullable in place, and an enum whose
/// variants carry doc comments).
fn branches(schema: &Value) -> Vec<&Value> {
    let mut out = vec![schema];
    for key in ["anyOf", "oneOf"] {
        for arm in schema[key].as_array().into_iter().flatten() {
            out.extend(branches(arm));
        }
    }
    out
}

/// `keyword` of the schema or of its first branch that states it.
fn branch_value<'a>(schema: &'a Value, keyword: &str) -> Option<&'a Value> {
    branches(schema).into_iter().find_map(|s| s.get(keyword))
}

/// The values of an array keyword (`enum`) across the schema and its branches.
fn branch_values<'a>(schema: &'a Value, keyword: &str) -> Vec<&'a Value> {
    branches(schema)
        .into_iter()
        .filter_map(|s| s[keyword].as_array())
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use schemars::JsonSchema;
    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize, JsonSchema)]
    #[allow(dead_code)]
    enum Colour {
        /// Documented variants make schemars write `oneOf` of `const`s.
        #[serde(rename = "red")]
        Red,
        #[serde(rename = "blue")]
        Blue,
    }

    fn ten() -> u32 {
        10
    }

    #[derive(Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct DemoArgs {
        name: String,
        count: Option<u32>,
        colour: Option<Colour>,
        sizes: Option<Vec<u32>>,
        #[serde(default = "ten")]
        limit: u32,
        free: Option<String>,
        ratio: Option<f64>,
    }

    const DEMO: &str = r#"
name: demo
title: Demo
description: A tool for the test.
read_only: true
arguments:
  - {name: name, type: string, max_length: 10, required: true, description: d}
  - {name: count, type: integer, minimum: 1, maximum: 5, description: d}
  - {name: colour, type: string, enum: [red, blue], description: d}
  - name: sizes
    type: array
    items: {type: integer, minimum: 16, maximum: 512}
    max_items: 3
    description: d
  - {name: limit, type: integer, minimum: 0, default: 10, description: d}
  - {name: free, type: string, enum: [a, b], default: a, description: d}
  - {name: ratio, type: number, description: d}
"#;

    fn demo() -> ToolDecl {
        serde_yaml::from_str(DEMO).unwrap()
    }

    /// The differences after `plant` edits a copy of the demo declaration.
    fn planted(plant: impl FnOnce(&mut ToolDecl)) -> Vec<Disagreement> {
        let mut decl = demo();
        plant(&mut decl);
        disagreements(&decl, &crate::json_schema::schema_of::<DemoArgs>())
    }

    fn arg<'a>(decl: &'a mut ToolDecl, name: &str) -> &'a mut ArgSpec {
        decl.arguments.iter_mut().find(|a| a.name == name).unwrap()
    }

    /// The one disagreement planted, with its message naming tool and argument.
    fn only(found: Vec<Disagreement>, argument: &str) -> Difference {
        assert_eq!(found.len(), 1, "{found:#?}");
        let text = found[0].to_string();
        let named = format!("tool 'demo': argument '{argument}': ");
        assert!(text.starts_with(&named), "{text}");
        found[0].what.clone()
    }

    #[test]
    fn the_demo_declaration_agrees_where_rust_says_less() {
        // `free` is a String under an enum and a default, `count` an Option<u32>
        // under tighter bounds: the manifest decides alone.
        assert_eq!(planted(|_| {}), vec![]);
    }

    #[test]
    fn a_type_and_an_item_type_that_differ_are_named() {
        let found = planted(|d| arg(d, "count").value.ty = ArgType::String);
        let what = only(found, "count");
        let rust = vec!["integer".to_string()];
        let manifest = "string".to_string();
        assert_eq!(what, Difference::Type { manifest, rust });
        let found = planted(|d| arg(d, "sizes").items.as_mut().unwrap().ty = ArgType::Number);
        let what = only(found, "sizes");
        let rust = vec!["integer".to_string()];
        let manifest = "number".to_string();
        assert_eq!(what, Difference::ItemType { manifest, rust });
        // An integer the manifest declares is a number to an f64: agreement.
        assert_eq!(
            planted(|d| arg(d, "ratio").value.ty = ArgType::Integer),
            vec![]
        );
    }

    #[test]
    fn enum_values_either_side_lacks_are_named() {
        let found =
            planted(|d| arg(d, "colour").value.allowed = Some(vec!["red".into(), "green".into()]));
        let only_manifest = vec!["green".to_string()];
        let only_rust = vec!["blue".to_string()];
        let expected = Difference::Enum {
            only_manifest,
            only_rust,
        };
        assert_eq!(only(found, "colour"), expected);
        let found = planted(|d| arg(d, "colour").value.allowed = None);
        let what = only(found, "colour");
        assert!(
            matches!(what, Difference::Enum { ref only_manifest, .. } if only_manifest == &["*"])
        );
    }

    #[test]
    fn requiredness_either_way_is_named() {
        let found = planted(|d| arg(d, "name").required = false);
        assert_eq!(only(found, "name"), Difference::RequiredOnlyInRust);
        let found = planted(|d| arg(d, "count").required = true);
        assert_eq!(only(found, "count"), Difference::RequiredOnlyInManifest);
    }

    #[test]
    fn a_default_that_differs_or_is_missing_is_named() {
        let found = planted(|d| arg(d, "limit").default = Some(serde_yaml::Value::from(20)));
        let what = only(found, "limit");
        assert!(
            matches!(what, Difference::Default { ref rust, .. } if rust == 10),
            "{what:?}"
        );
        // A serde default makes the field optional to Args: only the default is named.
        let found = planted(|d| arg(d, "limit").default = None);
        let what = only(found, "limit");
        assert!(
            matches!(what, Difference::Default { manifest: None, .. }),
            "{what:?}"
        );
    }

    #[test]
    fn bounds_the_manifest_leaves_wider_are_named() {
        let found = planted(|d| arg(d, "count").value.minimum = Some(-1.0));
        let what = only(found, "count");
        let keyword = "minimum".to_string();
        let expected = Difference::Bound {
            keyword,
            manifest: Some(-1.0),
            rust: 0.0,
        };
        assert_eq!(what, expected);
        let found = planted(|d| arg(d, "sizes").items.as_mut().unwrap().minimum = None);
        let what = only(found, "sizes");
        assert!(
            matches!(what, Difference::Bound { ref keyword, manifest: None, .. } if keyword == "items.minimum"),
            "{what:?}"
        );
    }
}
