//! Name resolution for agents: forgiving about case, word order and separators,
//! strict about meaning. A query resolves only when exactly one class fits at
//! the first stage that matches anything; otherwise the error lists the closest
//! real names with their ids so the agent can choose. It never returns a guess.

use std::fmt;

use serde::Serialize;

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

/// Lowercase words, split on anything not alphanumeric; the `(deprecated)`
/// marker is not part of a class's identity.
pub(super) fn tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

fn name_tokens(class: &LabelClass) -> Vec<String> {
    let mut t = tokens(&class.name);
    if class.deprecated && t.last().map(String::as_str) == Some("deprecated") {
        t.pop();
    }
    t
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

    fn matches(&self, kind: MatchKind, class: &LabelClass) -> bool {
        match kind {
            MatchKind::Id => false,
            MatchKind::Exact => class.name.to_lowercase() == self.lower,
            MatchKind::Normalised => {
                !self.tokens.is_empty() && sorted(name_tokens(class)) == self.sorted
            }
            MatchKind::Substring => {
                let name = name_tokens(class);
                !self.tokens.is_empty()
                    && (name.join(" ").contains(&self.joined)
                        || is_sub_multiset(&self.tokens, &name))
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
    for kind in [
        MatchKind::Exact,
        MatchKind::Normalised,
        MatchKind::Substring,
    ] {
        let hits: Vec<&LabelClass> = table.iter().filter(|c| prepared.matches(kind, c)).collect();
        match hits.as_slice() {
            [] => continue,
            [one] => return Ok(found(one, kind)),
            many => {
                let mut ranked: Vec<&LabelClass> = many.to_vec();
                rank(&mut ranked, trimmed);
                return Err(ResolveError {
                    query: query.to_string(),
                    kind: ResolveErrorKind::Ambiguous,
                    candidates: ranked.iter().map(|c| (c.id, c.name.clone())).collect(),
                });
            }
        }
    }

    let mut all: Vec<&LabelClass> = if tokens(trimmed).is_empty() {
        Vec::new()
    } else {
        table.iter().collect()
    };
    rank(&mut all, trimmed);
    Err(ResolveError {
        query: query.to_string(),
        kind: ResolveErrorKind::Unknown,
        candidates: all
            .iter()
            .take(UNKNOWN_CANDIDATES)
            .map(|c| (c.id, c.name.clone()))
            .collect(),
    })
}

/// Closest first; ties by id so the order is deterministic.
fn rank(classes: &mut [&LabelClass], query: &str) {
    let query_tokens = tokens(query);
    classes.sort_by_cached_key(|c| {
        let score = similarity(&query_tokens, &name_tokens(c));
        // Higher score first: order by the negated score's total order.
        (std::cmp::Reverse(OrderedScore(score)), c.id)
    });
}

/// `f64` ordered by `total_cmp`, for sort keys.
#[derive(PartialEq)]
struct OrderedScore(f64);

impl Eq for OrderedScore {}

impl PartialOrd for OrderedScore {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrderedScore {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// A similarity in [0, 1]: how well the query's words are covered by the
/// name's (edit distance and shared prefix per word), how much of the name the
/// query covers, and the edit similarity of the whole strings.
pub(super) fn similarity(query: &[String], name: &[String]) -> f64 {
    if query.is_empty() || name.is_empty() {
        return 0.0;
    }
    let best = |word: &String, others: &[String]| {
        others
            .iter()
            .map(|o| word_similarity(word, o))
            .fold(0.0_f64, f64::max)
    };
    let query_cover = query.iter().map(|w| best(w, name)).sum::<f64>() / query.len() as f64;
    let name_cover = name.iter().map(|w| best(w, query)).sum::<f64>() / name.len() as f64;
    let whole = edit_similarity(&query.join(" "), &name.join(" "));
    0.5 * query_cover + 0.2 * name_cover + 0.3 * whole
}

fn word_similarity(a: &str, b: &str) -> f64 {
    let prefix = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    let shorter = a.chars().count().min(b.chars().count()).max(1);
    0.5 * edit_similarity(a, b) + 0.5 * (prefix as f64 / shorter as f64)
}

fn edit_similarity(a: &str, b: &str) -> f64 {
    let longest = a.chars().count().max(b.chars().count());
    if longest == 0 {
        return 1.0;
    }
    1.0 - levenshtein(a, b) as f64 / longest as f64
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
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
    fn levenshtein_basics() {
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("hepar", "hepar"), 0);
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
