//! Sanity checks: small assertions over dotted paths of an evidence document, in the
//! reference manifest's vocabulary (`{path: output.label_set_valid, eq: true}`).
//!
//! Ops: `eq`, `ne`, `gt`, `gte`, `lt`, `lte`, `matches` (regex), `length_eq`,
//! `length_gte`, `length_lte`, `contains` (substring or array element),
//! `contains_any_of`, `exists`. A check whose path is missing fails (except
//! `exists: false`), so a document that lacks a field can never pass by accident.

use serde::{Deserialize, Serialize};
use serde_json::Value;

const OPS: &[&str] = &[
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "matches",
    "length_eq",
    "length_gte",
    "length_lte",
    "contains",
    "contains_any_of",
    "exists",
];

/// One declared check.
#[derive(Debug, Clone, PartialEq)]
pub struct SanityCheck {
    pub path: String,
    pub op: String,
    pub expected: Value,
}

/// The outcome of one check, as recorded in the evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SanityResult {
    pub path: String,
    pub op: String,
    pub expected: Value,
    pub actual: Value,
    pub status: CheckStatus,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Passed,
    Failed,
}

impl SanityCheck {
    /// Parse the manifest's YAML mappings; an unknown op or a malformed entry is an error.
    pub fn parse_all(raw: &[serde_yaml::Value]) -> Result<Vec<SanityCheck>, String> {
        raw.iter().map(SanityCheck::parse).collect()
    }

    fn parse(raw: &serde_yaml::Value) -> Result<SanityCheck, String> {
        let map = raw.as_mapping().ok_or("a sanity check must be a mapping")?;
        let path = map
            .get("path")
            .and_then(|p| p.as_str())
            .ok_or("a sanity check needs a string `path`")?
            .to_string();
        let mut ops = map.iter().filter(|(k, _)| k.as_str() != Some("path"));
        let (op, expected) = ops
            .next()
            .ok_or(format!("sanity check on '{path}' has no op"))?;
        if ops.next().is_some() {
            return Err(format!("sanity check on '{path}' has more than one op"));
        }
        let op = op.as_str().unwrap_or_default().to_string();
        if !OPS.contains(&op.as_str()) {
            return Err(format!(
                "sanity check on '{path}': unknown op '{op}' (known: {})",
                OPS.join(", ")
            ));
        }
        let expected = serde_json::to_value(expected).map_err(|e| e.to_string())?;
        if op == "matches" {
            let pattern = expected
                .as_str()
                .ok_or(format!("'{path}': matches needs a string pattern"))?;
            regex_lite::Regex::new(pattern).map_err(|e| format!("'{path}': bad regex: {e}"))?;
        }
        Ok(SanityCheck { path, op, expected })
    }

    /// Evaluate against a document.
    pub fn evaluate(&self, doc: &Value) -> SanityResult {
        let actual = lookup(doc, &self.path);
        let (passed, reason) = match actual {
            None => (
                self.op == "exists" && self.expected == Value::Bool(false),
                "path is absent".to_string(),
            ),
            Some(actual) => self.compare(actual),
        };
        SanityResult {
            path: self.path.clone(),
            op: self.op.clone(),
            expected: self.expected.clone(),
            actual: actual.cloned().unwrap_or(Value::Null),
            status: if passed {
                CheckStatus::Passed
            } else {
                CheckStatus::Failed
            },
            reason,
        }
    }

    fn compare(&self, actual: &Value) -> (bool, String) {
        let expected = &self.expected;
        let ok = match self.op.as_str() {
            "eq" => json_eq(actual, expected),
            "ne" => !json_eq(actual, expected),
            "gt" | "gte" | "lt" | "lte" => match (actual.as_f64(), expected.as_f64()) {
                (Some(a), Some(e)) => match self.op.as_str() {
                    "gt" => a > e,
                    "gte" => a >= e,
                    "lt" => a < e,
                    _ => a <= e,
                },
                _ => return (false, "not a number".into()),
            },
            "matches" => match actual.as_str() {
                Some(s) => regex_lite::Regex::new(expected.as_str().unwrap_or_default())
                    .is_ok_and(|re| re.is_match(s)),
                None => return (false, "not a string".into()),
            },
            "length_eq" | "length_gte" | "length_lte" => {
                let len = match actual {
                    Value::Array(a) => a.len(),
                    Value::String(s) => s.chars().count(),
                    Value::Object(o) => o.len(),
                    _ => return (false, "has no length".into()),
                } as f64;
                let want = expected.as_f64().unwrap_or(f64::NAN);
                match self.op.as_str() {
                    "length_eq" => len == want,
                    "length_gte" => len >= want,
                    _ => len <= want,
                }
            }
            "contains" => contains(actual, expected),
            "contains_any_of" => expected
                .as_array()
                .is_some_and(|options| options.iter().any(|o| contains(actual, o))),
            "exists" => expected.as_bool() == Some(!actual.is_null()),
            _ => false,
        };
        let reason = if ok {
            format!("{} {} {}", self.path, self.op, expected)
        } else {
            format!("expected {} {}, found {}", self.op, expected, actual)
        };
        (ok, reason)
    }
}

/// Evaluate every check.
pub fn evaluate_all(checks: &[SanityCheck], doc: &Value) -> Vec<SanityResult> {
    checks.iter().map(|c| c.evaluate(doc)).collect()
}

/// Follow a dotted path (`output.geometry.shape_match`; numeric segments index arrays).
pub(crate) fn lookup<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |node, segment| match node {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// Equality where 3 == 3.0 (YAML and JSON disagree on integer-ness).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_number() && b.is_number() => x == y,
        _ => a == b,
    }
}

fn contains(haystack: &Value, needle: &Value) -> bool {
    match haystack {
        Value::String(s) => needle.as_str().is_some_and(|n| s.contains(n)),
        Value::Array(items) => items.iter().any(|i| json_eq(i, needle)),
        Value::Object(map) => needle.as_str().is_some_and(|n| map.contains_key(n)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(yaml: &str) -> SanityCheck {
        SanityCheck::parse(&serde_yaml::from_str(yaml).unwrap()).unwrap()
    }

    fn passes(yaml: &str, doc: &Value) -> bool {
        check(yaml).evaluate(doc).status == CheckStatus::Passed
    }

    #[test]
    fn every_op_passes_and_fails() {
        let doc = json!({"a": {"n": 3, "s": "CT_BODY", "list": [1, 3], "t": true, "nil": null}});
        let cases = [
            ("{path: a.n, eq: 3.0}", "{path: a.n, eq: 4}"),
            ("{path: a.n, ne: 4}", "{path: a.n, ne: 3}"),
            ("{path: a.n, gt: 2}", "{path: a.n, gt: 3}"),
            ("{path: a.n, gte: 3}", "{path: a.n, gte: 3.5}"),
            ("{path: a.n, lt: 4}", "{path: a.n, lt: 3}"),
            ("{path: a.n, lte: 3}", "{path: a.n, lte: 2}"),
            (
                "{path: a.s, matches: '^(CT_BODY|MRI_BODY)$'}",
                "{path: a.s, matches: '^MRI'}",
            ),
            (
                "{path: a.list, length_eq: 2}",
                "{path: a.list, length_eq: 3}",
            ),
            (
                "{path: a.list, length_gte: 2}",
                "{path: a.list, length_gte: 3}",
            ),
            (
                "{path: a.list, length_lte: 2}",
                "{path: a.list, length_lte: 1}",
            ),
            ("{path: a.list, contains: 3}", "{path: a.list, contains: 2}"),
            (
                "{path: a.s, contains: BODY}",
                "{path: a.s, contains: BRAIN}",
            ),
            (
                "{path: a.list, contains_any_of: [7, 1]}",
                "{path: a.list, contains_any_of: [7, 8]}",
            ),
            ("{path: a.t, exists: true}", "{path: a.nil, exists: true}"),
            ("{path: a.list.1, eq: 3}", "{path: a.list.5, eq: 3}"),
        ];
        for (pass, fail) in cases {
            assert!(passes(pass, &doc), "{pass} should pass");
            assert!(!passes(fail, &doc), "{fail} should fail");
        }
    }

    #[test]
    fn missing_paths_fail_and_say_so() {
        let result = check("{path: output.any_label_present, eq: true}").evaluate(&json!({}));
        assert_eq!(result.status, CheckStatus::Failed);
        assert_eq!(result.reason, "path is absent");
        assert!(passes("{path: nope, exists: false}", &json!({})));
    }

    #[test]
    fn malformed_checks_are_rejected() {
        for bad in [
            "{path: a, frobnicate: 1}",
            "{eq: 1}",
            "{path: a}",
            "{path: a, eq: 1, ne: 2}",
            "{path: a, matches: '('}",
        ] {
            assert!(
                SanityCheck::parse(&serde_yaml::from_str(bad).unwrap()).is_err(),
                "{bad}"
            );
        }
    }
}
