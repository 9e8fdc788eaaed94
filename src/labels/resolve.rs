//! Name resolution for agents: forgiving about case, word order and separators,
//! strict about meaning. A query resolves only when exactly one class fits at
//! the first stage that matches anything; otherwise the error lists the closest
//! real names with their ids so the agent can choose. It never returns a guess.

use std::fmt;

use serde::Serialize;

use super::rank::{rank, Entry, NameKeys};
use super::{LabelClass, LabelTable};

/// How a query matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchKind {
    /// The query was a defined id, e.g. "14".
    Id,
    /// The full name, ignoring case.
    Exact,
    /// The same words, in any order, with any separators ("kidney_left").
    Normalised,
    /// The only class whose name contains the query, or all of its words.
    Substring,
}

/// A resolved query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolution {
    pub id: u32,
    pub name: String,
    /// Deprecated classes resolve, but callers should say so.
    pub deprecated: bool,
    pub matched_by: MatchKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolveErrorKind {
    Unknown,
    Ambiguous,
}

/// A query that names no class, or several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolveError {
    pub query: String,
    pub kind: ResolveErrorKind,
    /// Unknown: the closest names (up to 5). Ambiguous: every match, closest first.
    pub candidates: Vec<(u32, String)>,
}

/// How many candidates an unknown query lists, and an ambiguous one displays.
const UNKNOWN_CANDIDATES: usize = 5;
const DISPLAYED_MATCHES: usize = 10;

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, limit: usize| -> fmt::Result {
            let shown: Vec<String> = self
                .candidates
                .iter()
                .take(limit)
                .map(|(id, name)| format!("{name} ({id})"))
                .collect();
            write!(f, "{}", shown.join(", "))?;
            if self.candidates.len() > limit {
                write!(f, ", and {} more", self.candidates.len() - limit)?;
            }
            Ok(())
        };
        match self.kind {
            ResolveErrorKind::Unknown if self.query.trim().parse::<u32>().is_ok() => write!(
                f,
                "no class has id {}; pass a defined class id or a class name",
                self.query.trim()
            ),
            ResolveErrorKind::Unknown if self.candidates.is_empty() => write!(
                f,
                "no class named '{}'; pass a class name or id",
                self.query
            ),
            ResolveErrorKind::Unknown => {
                write!(f, "no class named '{}'; closest: ", self.query)?;
                list(f, UNKNOWN_CANDIDATES)?;
                write!(f, "; pass one of these names or its id")
            }
            ResolveErrorKind::Ambiguous => {
                write!(
                    f,
                    "'{}' matches {} classes: ",
                    self.query,
                    self.candidates.len()
                )?;
                list(f, DISPLAYED_MATCHES)?;
                write!(f, "; pass the full name or the id")
            }
        }
    }
}

impl std::error::Error for ResolveError {}

impl ResolveError {
    /// The candidates the message lists (at most ten), for replies that carry them as
    /// data: an ambiguous word can match hundreds of classes.
    pub(crate) fn shown_candidates(&self) -> &[(u32, String)] {
        &self.candidates[..self.candidates.len().min(DISPLAYED_MATCHES)]
    }
}

/// Lowercase words, split on anything not alphanumeric; the `(deprecated)`
/// marker is not part of a class's identity.
pub(super) fn tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

fn sorted(mut t: Vec<String>) -> Vec<String> {
    t.sort();
    t
}

/// Every query token appears in the name, counting repeats.
fn is_sub_multiset(query: &[String], name: &[String]) -> bool {
    let mut remaining: Vec<&String> = name.iter().collect();
    query
        .iter()
        .all(|q| match remaining.iter().position(|n| *n == q) {
            Some(i) => {
                remaining.swap_remove(i);
                true
            }
            None => false,
        })
}

/// A query prepared once for every stage.
struct Query {
    lower: String,
    tokens: Vec<String>,
    sorted: Vec<String>,
    joined: String,
}

impl Query {
    fn new(text: &str) -> Query {
        let mut tokens = tokens(text);
        // Names are compared without the `(deprecated)` marker; so are queries,
        // wherever they put the word (unless it is all they say).
        if tokens.iter().any(|t| t != "deprecated") {
            tokens.retain(|t| t != "deprecated");
        }
        Query {
            lower: text.to_lowercase(),
            sorted: sorted(tokens.clone()),
            joined: tokens.join(" "),
            tokens,
        }
    }

    fn matches(&self, kind: MatchKind, name: &NameKeys) -> bool {
        match kind {
            MatchKind::Id => false,
            MatchKind::Exact => name.lower == self.lower,
            MatchKind::Normalised => !self.tokens.is_empty() && name.sorted == self.sorted,
            MatchKind::Substring => {
                !self.tokens.is_empty()
                    && ((self.joined.len() <= name.joined.len()
                        && name.joined.contains(&self.joined))
                        || is_sub_multiset(&self.tokens, &name.words))
            }
        }
    }
}

pub(super) fn resolve(table: &LabelTable, query: &str) -> Result<Resolution, ResolveError> {
    let found = |class: &LabelClass, matched_by| Resolution {
        id: class.id,
        name: class.name.clone(),
        deprecated: class.deprecated,
        matched_by,
    };
    let trimmed = query.trim();
    if let Ok(id) = trimmed.parse::<u32>() {
        // A number is an id or nothing: "0" must not substring-match "vertebrae T10".
        return match table.get(id) {
            Some(class) => Ok(found(class, MatchKind::Id)),
            None => Err(ResolveError {
                query: query.to_string(),
                kind: ResolveErrorKind::Unknown,
                candidates: Vec::new(),
            }),
        };
    }

    let prepared = Query::new(trimmed);
    let index = table.name_index();
    let entries: Vec<Entry<'_>> = table.iter().zip(&index.classes).collect();
    let error = |kind, ranked: &[Entry<'_>], limit: usize| ResolveError {
        query: query.to_string(),
        kind,
        candidates: ranked
            .iter()
            .take(limit)
            .map(|(c, _)| (c.id, c.name.clone()))
            .collect(),
    };
    for kind in [
        MatchKind::Exact,
        MatchKind::Normalised,
        MatchKind::Substring,
    ] {
        let mut hits: Vec<Entry<'_>> = entries
            .iter()
            .filter(|(_, name)| prepared.matches(kind, name))
            .copied()
            .collect();
        match hits.as_slice() {
            [] => continue,
            [(one, _)] => return Ok(found(one, kind)),
            _ => {
                rank(&mut hits, trimmed, index);
                return Err(error(ResolveErrorKind::Ambiguous, &hits, usize::MAX));
            }
        }
    }

    let mut all = if prepared.tokens.is_empty() {
        Vec::new()
    } else {
        entries
    };
    rank(&mut all, trimmed, index);
    Err(error(ResolveErrorKind::Unknown, &all, UNKNOWN_CANDIDATES))
}

#[cfg(test)]
mod tests {
    use super::super::colour_for;
    use super::*;
    use std::collections::BTreeSet;

    fn candidate_ids(err: &ResolveError) -> BTreeSet<u32> {
        err.candidates.iter().map(|(id, _)| *id).collect()
    }

    fn table(names: &[(u32, &str)]) -> LabelTable {
        LabelTable::from_classes(
            names
                .iter()
                .map(|&(id, name)| LabelClass {
                    id,
                    name: name.into(),
                    deprecated: name.ends_with("(deprecated)"),
                    datasets: vec![],
                    modalities: vec![],
                    dataset_labels: vec![],
                    colour: colour_for(id),
                })
                .collect(),
        )
    }

    #[test]
    fn stages_in_order() {
        let t = table(&[
            (2, "kidney"),
            (5, "right kidney"),
            (14, "left kidney"),
            (116, "left kidney cyst"),
            (162, "uterus (deprecated)"),
        ]);
        assert_eq!(
            t.resolve_match("Kidney").unwrap().matched_by,
            MatchKind::Exact
        );
        let r = t.resolve_match("kidney-left").unwrap();
        assert_eq!((r.id, r.matched_by), (14, MatchKind::Normalised));
        let r = t.resolve_match("cyst").unwrap();
        assert_eq!((r.id, r.matched_by), (116, MatchKind::Substring));
        let r = t.resolve_match("uterus").unwrap();
        assert!(r.deprecated);
        assert_eq!(t.resolve_match("14").unwrap().matched_by, MatchKind::Id);
        let err = t.resolve("left").unwrap_err();
        assert_eq!(err.kind, ResolveErrorKind::Ambiguous);
        assert_eq!(candidate_ids(&err), BTreeSet::from([14, 116]));
        let err = t.resolve("  ").unwrap_err();
        assert_eq!(err.kind, ResolveErrorKind::Unknown);
        assert!(err.candidates.is_empty());
        assert!(t.resolve("999").is_err());
    }
}
