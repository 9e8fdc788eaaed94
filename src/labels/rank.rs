//! The class names prepared once per table, and the closest-first ranking of classes
//! for a query that names none (or several) of them.
//!
//! Bounded by construction: a query is ranked by its first [`RANKED_CHARS`]
//! characters; each of its words is measured once against each distinct word of the
//! table (not once per class), by the bit-parallel distance of [`super::edit`]; the
//! whole query once against each class name. A resolution therefore costs at most
//! `32 words × vocabulary + classes` short measurements, whatever the caller sends.

use std::cmp::Reverse;
use std::collections::HashMap;

use super::edit::{Pattern, BIT_PARALLEL_MAX};
use super::resolve::tokens;
use super::{LabelClass, LabelTable};

/// Ranking reads at most this many characters of a query: more than the longest
/// class name (the upstream's is 46), so no real name is cut, and what [`Pattern`]
/// measures in one machine word.
const RANKED_CHARS: usize = BIT_PARALLEL_MAX;

/// A class name prepared for every query: lowercase; its words without the
/// `(deprecated)` marker, which is not part of a class's identity; those words sorted,
/// and joined by single spaces; and each word's place in the table's vocabulary.
#[derive(Debug, Clone)]
pub(super) struct NameKeys {
    pub(super) lower: String,
    pub(super) words: Vec<String>,
    pub(super) sorted: Vec<String>,
    pub(super) joined: String,
    word_ids: Vec<usize>,
}

/// Every class's [`NameKeys`] in the table's (ascending id) order, and the distinct
/// words of all names.
#[derive(Debug, Clone, Default)]
pub(super) struct NameIndex {
    pub(super) classes: Vec<NameKeys>,
    vocabulary: Vec<String>,
}

impl NameIndex {
    pub(super) fn new(table: &LabelTable) -> NameIndex {
        let mut ids: HashMap<String, usize> = HashMap::new();
        let mut vocabulary = Vec::new();
        let classes = table
            .iter()
            .map(|class| {
                let words = name_words(class);
                let word_ids = words
                    .iter()
                    .map(|w| {
                        *ids.entry(w.clone()).or_insert_with(|| {
                            vocabulary.push(w.clone());
                            vocabulary.len() - 1
                        })
                    })
                    .collect();
                let mut sorted = words.clone();
                sorted.sort();
                NameKeys {
                    lower: class.name.to_lowercase(),
                    sorted,
                    joined: words.join(" "),
                    words,
                    word_ids,
                }
            })
            .collect();
        NameIndex {
            classes,
            vocabulary,
        }
    }
}

fn name_words(class: &LabelClass) -> Vec<String> {
    let mut words = tokens(&class.name);
    if class.deprecated && words.last().map(String::as_str) == Some("deprecated") {
        words.pop();
    }
    words
}

/// A class with its prepared name.
pub(super) type Entry<'t> = (&'t LabelClass, &'t NameKeys);

/// Closest first; ties by id so the order is deterministic.
pub(super) fn rank(classes: &mut [Entry<'_>], query: &str, index: &NameIndex) {
    let head: String = query.chars().take(RANKED_CHARS).collect();
    let mut ranked = RankedQuery::new(&tokens(&head), &index.vocabulary);
    classes.sort_by_cached_key(|(c, name)| {
        let score = ranked.similarity(name);
        // Higher score first: order by the negated score's total order.
        (Reverse(OrderedScore(score)), c.id)
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

/// A query's words and their join, prepared once for measuring every class, with the
/// similarity of each query word to each vocabulary word kept once measured.
struct RankedQuery<'v> {
    words: Vec<Pattern>,
    whole: Pattern,
    vocabulary: &'v [String],
    /// `words.len() × vocabulary.len()`; NaN until measured.
    measured: Vec<f64>,
}

impl<'v> RankedQuery<'v> {
    fn new(words: &[String], vocabulary: &'v [String]) -> RankedQuery<'v> {
        RankedQuery {
            words: words.iter().map(|w| Pattern::new(w)).collect(),
            whole: Pattern::new(&words.join(" ")),
            vocabulary,
            measured: vec![f64::NAN; words.len() * vocabulary.len()],
        }
    }

    fn word_similarity(&mut self, word: usize, vocable: usize) -> f64 {
        let slot = &mut self.measured[word * self.vocabulary.len() + vocable];
        if slot.is_nan() {
            *slot = word_similarity(&self.words[word], &self.vocabulary[vocable]);
        }
        *slot
    }

    /// A similarity in [0, 1]: how well the query's words are covered by the
    /// name's (edit distance and shared prefix per word), how much of the name the
    /// query covers, and the edit similarity of the whole strings.
    fn similarity(&mut self, name: &NameKeys) -> f64 {
        if self.words.is_empty() || name.words.is_empty() {
            return 0.0;
        }
        let mut name_best = vec![0.0_f64; name.words.len()];
        let mut query_sum = 0.0;
        for word in 0..self.words.len() {
            let mut best = 0.0_f64;
            for (j, &vocable) in name.word_ids.iter().enumerate() {
                let s = self.word_similarity(word, vocable);
                best = best.max(s);
                name_best[j] = name_best[j].max(s);
            }
            query_sum += best;
        }
        let query_cover = query_sum / self.words.len() as f64;
        let name_cover = name_best.iter().sum::<f64>() / name.words.len() as f64;
        let whole = self.whole.similarity(&name.joined);
        0.5 * query_cover + 0.2 * name_cover + 0.3 * whole
    }
}

fn word_similarity(a: &Pattern, b: &str) -> f64 {
    let prefix = a
        .chars()
        .iter()
        .zip(b.chars())
        .take_while(|(x, y)| **x == *y)
        .count();
    let shorter = a.chars().len().min(b.chars().count()).max(1);
    0.5 * a.similarity(b) + 0.5 * (prefix as f64 / shorter as f64)
}
