//! Argument validation against the manifest's declarations, before anything runs.
//!
//! Every refusal names the argument, the rule it broke and a fix, because the reader
//! is usually a model that will correct its call from this message alone.

use serde_json::{Map, Value};

use super::model::{ArgSpec, ArgType, ToolDecl, ValueSpec};

/// A refused argument.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("argument '{argument}': {rule}. Fix: {fix}")]
pub struct ArgError {
    pub argument: String,
    pub rule: String,
    pub fix: String,
}

impl ArgError {
    pub fn new(
        argument: impl Into<String>,
        rule: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        ArgError {
            argument: argument.into(),
            rule: rule.into(),
            fix: fix.into(),
        }
    }
}

/// Check `args` against the tool's declarations and fill in declared defaults.
pub fn validate(
    tool: &ToolDecl,
    args: &Map<String, Value>,
) -> Result<Map<String, Value>, ArgError> {
    for name in args.keys() {
        if tool.argument(name).is_none() {
            let known: Vec<&str> = tool.arguments.iter().map(|a| a.name.as_str()).collect();
            return Err(ArgError::new(
                name,
                format!("is not an argument of {}", tool.name),
                format!("use only: {}", known.join(", ")),
            ));
        }
    }
    let mut out = Map::new();
    for spec in &tool.arguments {
        match args.get(&spec.name) {
            None | Some(Value::Null) => {
                if spec.required {
                    return Err(ArgError::new(
                        &spec.name,
                        "is required",
                        format!("pass {}", describe(spec)),
                    ));
                }
                if let Some(default) = spec.default_json() {
                    out.insert(spec.name.clone(), default);
                }
            }
            Some(value) => {
                check_arg(spec, value)?;
                out.insert(spec.name.clone(), integral(spec, value.clone()));
            }
        }
    }
    Ok(out)
}

/// An integer argument written as `3.0` becomes `3`, so typed arguments deserialise
/// it as the integer the manifest accepted.
fn integral(spec: &ArgSpec, value: Value) -> Value {
    let as_integer = |v: Value| match v.as_f64() {
        Some(f) if !v.is_i64() && !v.is_u64() && f.fract() == 0.0 && f.abs() < 9e15 => {
            Value::from(f as i64)
        }
        _ => v,
    };
    match (spec.value.ty, value) {
        (ArgType::Integer, v) => as_integer(v),
        (ArgType::Array, Value::Array(items))
            if spec
                .items
                .as_ref()
                .is_some_and(|i| i.ty == ArgType::Integer) =>
        {
            Value::Array(items.into_iter().map(as_integer).collect())
        }
        (_, v) => v,
    }
}

fn check_arg(spec: &ArgSpec, value: &Value) -> Result<(), ArgError> {
    check_value(&spec.name, &spec.value, value, spec)?;
    if spec.value.ty == ArgType::Array {
        let items = value.as_array().map(Vec::as_slice).unwrap_or_default();
        if let Some(min) = spec.min_items {
            if items.len() < min {
                return Err(ArgError::new(
                    &spec.name,
                    format!("needs at least {min} items"),
                    describe(spec),
                ));
            }
        }
        if let Some(max) = spec.max_items {
            if items.len() > max {
                return Err(ArgError::new(
                    &spec.name,
                    format!("takes at most {max} items"),
                    describe(spec),
                ));
            }
        }
        if let Some(item_spec) = &spec.items {
            for (i, item) in items.iter().enumerate() {
                check_value(&format!("{}[{i}]", spec.name), item_spec, item, spec)?;
            }
        }
    }
    Ok(())
}

fn check_value(name: &str, spec: &ValueSpec, value: &Value, arg: &ArgSpec) -> Result<(), ArgError> {
    let type_ok = match spec.ty {
        ArgType::String => value.is_string(),
        ArgType::Integer => {
            value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        ArgType::Number => value.is_number(),
        ArgType::Boolean => value.is_boolean(),
        ArgType::Array => value.is_array(),
    };
    if !type_ok {
        return Err(ArgError::new(
            name,
            format!("must be {} (got {})", article(spec.ty), short(value)),
            describe(arg),
        ));
    }
    if let Some(s) = value.as_str() {
        check_length(name, spec, s, arg)?;
    }
    if let (Some(allowed), Some(s)) = (&spec.allowed, value.as_str()) {
        if !allowed.iter().any(|a| a == s) {
            return Err(ArgError::new(
                name,
                format!("must be one of {} (got '{}')", allowed.join(", "), clip(s)),
                format!("choose one of {}", allowed.join(", ")),
            ));
        }
    }
    if let Some(x) = value.as_f64() {
        if spec.minimum.is_some_and(|min| x < min) || spec.maximum.is_some_and(|max| x > max) {
            return Err(ArgError::new(
                name,
                format!(
                    "must be within [{}, {}] (got {x})",
                    bound(spec.minimum),
                    bound(spec.maximum)
                ),
                "choose a value within the bounds".to_string(),
            ));
        }
    }
    Ok(())
}

/// `min_length` and `max_length`, in characters as JSON Schema counts them.
fn check_length(name: &str, spec: &ValueSpec, s: &str, arg: &ArgSpec) -> Result<(), ArgError> {
    let chars = s.chars().count();
    if spec.min_length.is_some_and(|min| chars < min) {
        return Err(ArgError::new(name, "must not be empty", describe(arg)));
    }
    match spec.max_length {
        Some(max) if chars > max => Err(ArgError::new(
            name,
            format!("must be at most {max} characters long (got {chars})"),
            format!("pass at most {max} characters: {}", describe(arg)),
        )),
        _ => Ok(()),
    }
}

fn describe(arg: &ArgSpec) -> String {
    format!("{} ({})", arg.name, arg.description.trim())
}

fn article(ty: ArgType) -> &'static str {
    match ty {
        ArgType::String => "a string",
        ArgType::Integer => "an integer",
        ArgType::Number => "a number",
        ArgType::Boolean => "true or false",
        ArgType::Array => "an array",
    }
}

fn bound(b: Option<f64>) -> String {
    b.map(|x| x.to_string()).unwrap_or_else(|| "…".into())
}

fn short(value: &Value) -> String {
    clip(&value.to_string())
}

/// At most 60 characters of a client's text, for echoing it in a refusal.
fn clip(text: &str) -> String {
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run_script() -> ToolDecl {
        crate::manifest::embedded()
            .unwrap()
            .tool("run_script")
            .unwrap()
            .clone()
    }

    fn refuse(args: Value) -> ArgError {
        validate(&run_script(), args.as_object().unwrap()).unwrap_err()
    }

    #[test]
    fn defaults_are_filled_in() {
        let out = validate(
            &run_script(),
            json!({"input": "/x.nii.gz"}).as_object().unwrap(),
        )
        .unwrap();
        assert_eq!(out["modality"], "CT_BODY");
        assert_eq!(out["device"], "auto");
        assert_eq!(out["timeout_seconds"], json!(3600));
    }

    #[test]
    fn refusals_name_argument_rule_and_fix() {
        let e = refuse(json!({"modality": "CT"}));
        assert_eq!(e.argument, "modality");
        assert!(
            e.rule.contains("CT_BODY, MRI_BODY, MRI_BRAIN") && e.rule.contains("'CT'"),
            "{e}"
        );
        assert!(e.fix.starts_with("choose one of"));

        let e = refuse(json!({"label_prompts": [3, "fourteen"]}));
        assert_eq!(e.argument, "label_prompts[1]");
        assert!(e.rule.contains("an integer"), "{e}");

        let e = refuse(json!({"timeout_seconds": 0}));
        assert!(e.rule.contains("[1, 86400]"), "{e}");

        let e = refuse(json!({"patch_size": [64, 64]}));
        assert!(e.rule.contains("at least 3"), "{e}");

        let e = refuse(json!({"inptu": "/x"}));
        assert_eq!(e.argument, "inptu");
        assert!(e.fix.contains("input"), "{e}");

        let e = refuse(json!({"input": ""}));
        assert!(e.rule.contains("empty"), "{e}");
    }

    /// Issue 21 (6): every string and array a client sends has a stated cap, enforced
    /// here with the argument, the rule and the fix; a declaration without one is refused.
    #[test]
    fn strings_and_arrays_a_client_sends_are_capped() {
        let e = refuse(json!({"input": "x".repeat(5000)}));
        assert_eq!(e.argument, "input");
        assert!(
            e.rule.contains("at most 4096 characters long (got 5000)"),
            "{e}"
        );
        assert!(e.fix.starts_with("pass at most 4096 characters"), "{e}");
        let e = refuse(json!({"structures": vec!["liver"; 513]}));
        assert_eq!(e.argument, "structures");
        assert!(e.rule.contains("at most 512 items"), "{e}");
        let e = refuse(json!({"modality": "CT".repeat(100_000)}));
        assert!(
            e.to_string().len() < 400,
            "the refusal echoes a clipped value"
        );

        let manifest = crate::manifest::EMBEDDED_MANIFEST;
        let uncapped = manifest.replacen("          max_length: 64\n", "", 1);
        let e = crate::manifest::Manifest::parse(&uncapped).unwrap_err();
        assert!(
            e.to_string()
                .contains("'series_uid' is a string without max_length"),
            "{e}"
        );
    }

    #[test]
    fn required_arguments_are_enforced() {
        let manifest = crate::manifest::embedded().unwrap();
        let tool = manifest.tool("inspect_label_map").unwrap();
        let e = validate(tool, &Map::new()).unwrap_err();
        assert_eq!(e.argument, "mask");
        assert!(e.rule.contains("required"));
    }
}
