//! JSON Schema generation from the manifest's argument declarations.
//!
//! Schemas are JSON Schema 2020-12, root `type: object`, flat (no top-level
//! oneOf/anyOf, no `$ref`) and `additionalProperties: false`, because that is what
//! every MCP client (and the models behind them) handles reliably.

use serde_json::{json, Map, Value};

use super::model::{ArgSpec, Manifest, ToolDecl, ValueSpec};
pub(crate) use crate::json_schema::DIALECT;

/// What `tools/list` shows for one tool.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub title: String,
    pub description: String,
    /// JSON Schema 2020-12, root `type: object`, flat, `additionalProperties: false`.
    pub input_schema: Value,
    /// JSON Schema of `structuredContent`, when the tool returns structured content.
    pub output_schema: Option<Value>,
    /// The tool only reads (MCP `readOnlyHint`).
    pub read_only: bool,
}

/// The `inputSchema` of one tool.
pub fn input_schema(tool: &ToolDecl) -> Value {
    let properties: Map<String, Value> = tool
        .arguments
        .iter()
        .map(|arg| (arg.name.clone(), property(arg)))
        .collect();
    let required: Vec<&str> = tool
        .arguments
        .iter()
        .filter(|a| a.required)
        .map(|a| a.name.as_str())
        .collect();
    let mut schema = json!({
        "$schema": DIALECT,
        "type": "object",
        "properties": properties,
        "additionalProperties": false,
    });
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    schema
}

fn value_schema(spec: &ValueSpec) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("type".into(), json!(spec.ty.json_name()));
    if let Some(allowed) = &spec.allowed {
        out.insert("enum".into(), json!(allowed));
    }
    if let Some(min) = spec.minimum {
        out.insert("minimum".into(), number(min));
    }
    if let Some(max) = spec.maximum {
        out.insert("maximum".into(), number(max));
    }
    if let Some(min) = spec.min_length {
        out.insert("minLength".into(), json!(min));
    }
    if let Some(max) = spec.max_length {
        out.insert("maxLength".into(), json!(max));
    }
    out
}

fn property(arg: &ArgSpec) -> Value {
    let mut out = value_schema(&arg.value);
    out.insert("description".into(), json!(arg.description.trim()));
    if let Some(items) = &arg.items {
        out.insert("items".into(), Value::Object(value_schema(items)));
    }
    if let Some(n) = arg.min_items {
        out.insert("minItems".into(), json!(n));
    }
    if let Some(n) = arg.max_items {
        out.insert("maxItems".into(), json!(n));
    }
    if let Some(default) = arg.default_json() {
        out.insert("default".into(), default);
    }
    Value::Object(out)
}

/// Integral bounds print as integers (`1`, not `1.0`), which is what people write.
fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

/// The tools as `tools/list` shows them. `documents` holds the schema documents by
/// the paths the manifest's `output_schema` entries name (the tool registry hands them
/// in); a tool naming a path that is not there gets no output schema, which the
/// registry's start-up check refuses.
pub(crate) fn tool_specs(manifest: &Manifest, documents: &[(String, Value)]) -> Vec<ToolSpec> {
    let document = |path: &str| {
        documents
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, v)| v.clone())
    };
    manifest
        .interface
        .tools
        .iter()
        .map(|tool| ToolSpec {
            name: tool.name.clone(),
            title: tool.title.clone(),
            description: tool.description.trim().to_string(),
            input_schema: input_schema(tool),
            output_schema: tool
                .output_schema
                .as_deref()
                .and_then(document)
                .map(inline_refs)
                .map(flatten_top_level)
                .map(compact_output_schema),
            read_only: tool.read_only,
        })
        .collect()
}

/// How deep an output schema in `tools/list` describes its document: the top-level
/// fields and the fields of those; deeper values are typed only.
pub(crate) const OUTPUT_SCHEMA_DEPTH: usize = 2;

/// An output schema as `tools/list` sends it: no prose (`description`, `title`,
/// `examples`, `default`, `$schema`), `required` only at the top level, and below
/// [`OUTPUT_SCHEMA_DEPTH`] only each value's type (`type`, `enum`, `const`, `anyOf` of
/// those). Every document the full schema accepts,
/// this one accepts; the full schemas stay under schemas/ for readers.
pub(crate) fn compact_output_schema(schema: Value) -> Value {
    fn strip(node: Value, names: bool) -> Value {
        match node {
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .filter(|(k, _)| {
                        names
                            || !matches!(
                                k.as_str(),
                                "description" | "title" | "examples" | "default" | "$comment"
                            )
                    })
                    .map(|(k, v)| {
                        let under_names = !names && (k == "properties" || k == "$defs");
                        (k, strip(v, under_names))
                    })
                    .collect(),
            ),
            Value::Array(items) => {
                Value::Array(items.into_iter().map(|v| strip(v, false)).collect())
            }
            other => other,
        }
    }
    fn cut(node: Value, level: usize) -> Value {
        let Value::Object(mut map) = node else {
            return node;
        };
        if let Some(Value::Array(options)) = map.remove("anyOf") {
            map.insert(
                "anyOf".into(),
                Value::Array(options.into_iter().map(|o| cut(o, level)).collect()),
            );
        }
        if level > 0 {
            // The top level names what every result has; below it, the types suffice.
            map.remove("required");
        }
        if level >= OUTPUT_SCHEMA_DEPTH {
            return type_only(map);
        }
        if let Some(Value::Object(props)) = map.remove("properties") {
            let props = props
                .into_iter()
                .map(|(k, v)| (k, cut(v, level + 1)))
                .collect();
            map.insert("properties".into(), Value::Object(props));
        }
        for key in ["items", "additionalProperties"] {
            if let Some(inner) = map.get_mut(key).filter(|v| v.is_object()) {
                *inner = cut(inner.take(), level + 1);
            }
        }
        Value::Object(map)
    }
    let mut compact = cut(strip(schema, false), 0);
    if let Some(root) = compact.as_object_mut() {
        root.remove("$schema");
        root.remove("$id");
    }
    compact
}

/// A value below [`OUTPUT_SCHEMA_DEPTH`]: its JSON type(s) only (an `anyOf` of types
/// becomes a type list; an `enum` or `const` keeps its type), which accepts every value
/// the full schema accepts.
fn type_only(map: Map<String, Value>) -> Value {
    fn types_of(map: &Map<String, Value>) -> Option<Vec<Value>> {
        match map.get("type") {
            Some(Value::String(t)) => return Some(vec![json!(t)]),
            Some(Value::Array(ts)) => return Some(ts.clone()),
            _ => {}
        }
        if let Some(Value::Array(options)) = map.get("anyOf") {
            let mut all = Vec::new();
            for option in options {
                for t in types_of(option.as_object()?)? {
                    if !all.contains(&t) {
                        all.push(t);
                    }
                }
            }
            return Some(all);
        }
        None
    }
    match types_of(&map) {
        Some(types) if types.len() == 1 => json!({"type": types[0]}),
        Some(types) => json!({ "type": types }),
        None => json!({}),
    }
}

/// Replace every local `{"$ref": "#/$defs/name"}` with the definition itself and drop
/// `$defs`, so clients that do not resolve references (many do not) see the whole shape.
/// Hand-written schemas may use `$defs` for readability; agents get them inlined.
pub(crate) fn inline_refs(schema: Value) -> Value {
    let defs = schema
        .get("$defs")
        .or_else(|| schema.get("definitions"))
        .cloned()
        .unwrap_or(Value::Null);
    fn walk(node: Value, defs: &Value, depth: usize) -> Value {
        match node {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    let name = target.rsplit('/').next().unwrap_or_default();
                    if let Some(def) = defs.get(name).filter(|_| depth < 32) {
                        let mut resolved = walk(def.clone(), defs, depth + 1);
                        // Sibling keywords (e.g. a description) stay beside the inlined definition.
                        if let Value::Object(target_map) = &mut resolved {
                            for (k, v) in map.iter().filter(|(k, _)| k.as_str() != "$ref") {
                                target_map.insert(k.clone(), walk(v.clone(), defs, depth + 1));
                            }
                        }
                        return resolved;
                    }
                }
                Value::Object(
                    map.into_iter()
                        .filter(|(k, _)| k != "$defs" && k != "definitions")
                        .map(|(k, v)| (k, walk(v, defs, depth)))
                        .collect(),
                )
            }
            Value::Array(items) => {
                Value::Array(items.into_iter().map(|v| walk(v, defs, depth)).collect())
            }
            other => other,
        }
    }
    walk(schema, &defs, 0)
}

/// Make an output schema flat at the top: a top-level `anyOf`/`oneOf` of object
/// variants (e.g. "the evidence, or a run record when `wait: false`") becomes one object
/// whose properties are the union of the variants' and whose `required` is what every
/// variant requires; a property the variants type differently keeps an `anyOf` of its
/// own, below the top. A single-element top-level `allOf` (a conditional) is hoisted.
/// Clients that only understand flat object schemas then validate every variant.
pub(crate) fn flatten_top_level(schema: Value) -> Value {
    let Value::Object(mut root) = schema else {
        return schema;
    };
    if let Some(Value::Array(parts)) = root.get("allOf").cloned() {
        if parts.len() == 1
            && parts[0]
                .as_object()
                .is_some_and(|p| p.keys().all(|k| !root.contains_key(k)))
        {
            root.remove("allOf");
            root.extend(parts[0].as_object().cloned().unwrap_or_default());
        }
    }
    let variants = match root.remove("anyOf").or_else(|| root.remove("oneOf")) {
        Some(Value::Array(v)) if v.iter().all(|x| x.get("type") == Some(&json!("object"))) => v,
        Some(other) => {
            root.insert("anyOf".into(), other);
            return Value::Object(root);
        }
        None => return Value::Object(root),
    };
    let mut properties = Map::new();
    let mut required: Option<Vec<Value>> = None;
    let mut descriptions = Vec::new();
    for variant in &variants {
        if let Some(d) = variant.get("description").and_then(Value::as_str) {
            descriptions.push(d.to_string());
        }
        for (name, prop) in variant
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            match properties.get_mut(name) {
                None => {
                    properties.insert(name.clone(), prop.clone());
                }
                Some(existing) if existing == prop => {}
                Some(existing) => {
                    let mut options = existing
                        .get("anyOf")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_else(|| vec![existing.clone()]);
                    if !options.contains(prop) {
                        options.push(prop.clone());
                    }
                    *existing = json!({ "anyOf": options });
                }
            }
        }
        let these: Vec<Value> = variant
            .get("required")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        required = Some(match required {
            None => these,
            Some(so_far) => so_far.into_iter().filter(|r| these.contains(r)).collect(),
        });
    }
    root.insert("type".into(), json!("object"));
    root.insert("properties".into(), Value::Object(properties));
    root.insert(
        "required".into(),
        Value::Array(required.unwrap_or_default()),
    );
    if !descriptions.is_empty() && !root.contains_key("description") {
        root.insert(
            "description".into(),
            json!(format!("One of: {}", descriptions.join(" | "))),
        );
    }
    Value::Object(root)
}

/// The generated files of `ctmr-skill schema`: (relative path, pretty JSON):
/// `generated` (the schema documents derived from Rust types, by path) and, per tool,
/// its input and output schema and the `tools/list` listing. The same list is compared
/// with the checked-in copies by a test, so drift fails CI.
pub(crate) fn generated_files(
    manifest: &Manifest,
    generated: &[(String, Value)],
    documents: &[(String, Value)],
) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = generated
        .iter()
        .map(|(path, schema)| (path.clone(), pretty(schema)))
        .collect();
    let mut listing = Vec::new();
    for spec in tool_specs(manifest, documents) {
        files.push((
            format!("schemas/tools/{}.input.json", spec.name),
            pretty(&spec.input_schema),
        ));
        if let Some(output) = &spec.output_schema {
            files.push((
                format!("schemas/tools/{}.output.json", spec.name),
                pretty(output),
            ));
        }
        listing.push(tool_json(&spec));
    }
    files.push((
        "schemas/tools/tools_list.json".to_string(),
        pretty(&json!({ "tools": listing })),
    ));
    files
}

/// A tool as the MCP wire format spells it (camelCase keys).
pub(crate) fn tool_json(spec: &ToolSpec) -> Value {
    let mut tool = json!({
        "name": spec.name,
        "title": spec.title,
        "description": spec.description,
        "inputSchema": spec.input_schema,
        "annotations": {"title": spec.title, "readOnlyHint": spec.read_only},
    });
    if let Some(output) = &spec.output_schema {
        tool["outputSchema"] = output.clone();
    }
    tool
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("JSON values serialise");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_input_schema_is_flat_closed_and_object_rooted() {
        let manifest = crate::manifest::embedded().unwrap();
        for spec in tool_specs(&manifest, &[]) {
            let schema = &spec.input_schema;
            assert_eq!(schema["type"], "object", "{}", spec.name);
            assert_eq!(schema["$schema"], DIALECT);
            assert_eq!(schema["additionalProperties"], false);
            for key in ["oneOf", "anyOf", "allOf", "$ref"] {
                assert!(schema.get(key).is_none(), "{}: top-level {key}", spec.name);
            }
            assert!(!serde_json::to_string(schema).unwrap().contains("$ref"));
        }
    }

    #[test]
    fn top_level_variants_become_one_flat_object() {
        let schema = json!({"type": "object", "anyOf": [
            {"type": "object", "description": "evidence", "properties": {"status": {"type": "string"}, "run_id": {"type": "string"}}, "required": ["status", "run_id"]},
            {"type": "object", "description": "record", "properties": {"status": {"enum": ["running"]}, "run_id": {"type": "string"}, "pid": {"type": "integer"}}, "required": ["run_id", "pid"]}
        ]});
        let flat = flatten_top_level(schema);
        assert!(flat.get("anyOf").is_none());
        assert_eq!(flat["required"], json!(["run_id"]));
        assert_eq!(
            flat["properties"]["status"],
            json!({"anyOf": [{"type": "string"}, {"enum": ["running"]}]})
        );
        assert_eq!(flat["properties"]["pid"], json!({"type": "integer"}));
        assert_eq!(flat["description"], "One of: evidence | record");
    }

    #[test]
    fn local_references_are_inlined() {
        let schema = json!({
            "type": "object",
            "properties": {"a": {"$ref": "#/$defs/v", "description": "kept"}, "b": {"items": {"$ref": "#/$defs/v"}}},
            "$defs": {"v": {"enum": ["pass", "fail"]}}
        });
        assert_eq!(
            inline_refs(schema),
            json!({"type": "object", "properties": {
                "a": {"enum": ["pass", "fail"], "description": "kept"},
                "b": {"items": {"enum": ["pass", "fail"]}}}})
        );
    }

    #[test]
    fn run_script_declares_the_reference_flags() {
        let manifest = crate::manifest::embedded().unwrap();
        let schema = input_schema(manifest.tool("run_script").unwrap());
        let props = schema["properties"].as_object().unwrap();
        for name in [
            "script",
            "args",
            "input",
            "modality",
            "output_dir",
            "label_prompts",
            "structures",
            "device",
        ] {
            assert!(props.contains_key(name), "{name}");
        }
        assert_eq!(
            props["modality"]["enum"],
            json!(["CT_BODY", "MRI_BODY", "MRI_BRAIN"])
        );
        assert_eq!(props["timeout_seconds"]["maximum"], json!(86400));
        assert_eq!(props["patch_size"]["items"]["minimum"], json!(16));
        assert_eq!(props["input"]["maxLength"], json!(4096));
        assert_eq!(props["structures"]["items"]["maxLength"], json!(256));
        assert_eq!(props["structures"]["maxItems"], json!(512));
    }
}
