//! Edit distance for name ranking, prepared once per query word and bounded in cost.
//!
//! A [`Pattern`] of at most 64 characters measures its Levenshtein distance to a text
//! with Myers' bit-parallel algorithm (Hyyrö's formulation for the global distance):
//! one pass over the text, a few word operations per character, whatever the
//! pattern's length. Ranking cuts queries to 64 characters before preparing them, so a
//! class name costs the same few dozen operations against any query, however long.
//! Longer patterns fall back to the textbook dynamic programme.

/// The longest pattern the bit-parallel distance handles: one machine word.
pub(super) const BIT_PARALLEL_MAX: usize = 64;

/// A query (or query word) prepared for many distance measurements.
pub(super) struct Pattern {
    chars: Vec<char>,
    /// Bit i set where `chars[i]` is that ASCII character.
    ascii: [u64; 128],
    /// The same for the pattern's other characters.
    other: Vec<(char, u64)>,
}

impl Pattern {
    pub(super) fn new(text: &str) -> Pattern {
        let chars: Vec<char> = text.chars().collect();
        let mut ascii = [0u64; 128];
        let mut other: Vec<(char, u64)> = Vec::new();
        for (i, &c) in chars.iter().enumerate().take(BIT_PARALLEL_MAX) {
            let bit = 1u64 << i;
            match usize::try_from(u32::from(c)).ok().filter(|&a| a < 128) {
                Some(a) => ascii[a] |= bit,
                None => match other.iter_mut().find(|(o, _)| *o == c) {
                    Some((_, mask)) => *mask |= bit,
                    None => other.push((c, bit)),
                },
            }
        }
        Pattern {
            chars,
            ascii,
            other,
        }
    }

    pub(super) fn chars(&self) -> &[char] {
        &self.chars
    }

    fn positions(&self, c: char) -> u64 {
        match usize::try_from(u32::from(c)).ok().filter(|&a| a < 128) {
            Some(a) => self.ascii[a],
            None => self
                .other
                .iter()
                .find(|(o, _)| *o == c)
                .map_or(0, |(_, mask)| *mask),
        }
    }

    /// The Levenshtein distance from the pattern to `text`.
    pub(super) fn distance(&self, text: &str) -> usize {
        let m = self.chars.len();
        if m == 0 {
            return text.chars().count();
        }
        if m > BIT_PARALLEL_MAX {
            return levenshtein(&self.chars, &text.chars().collect::<Vec<_>>());
        }
        let last = 1u64 << (m - 1);
        let (mut pv, mut mv, mut score) = (u64::MAX >> (64 - m), 0u64, m);
        for c in text.chars() {
            let eq = self.positions(c);
            let xv = eq | mv;
            let xh = ((eq & pv).wrapping_add(pv) ^ pv) | eq;
            let ph = mv | !(xh | pv);
            let mh = pv & xh;
            if ph & last != 0 {
                score += 1;
            } else if mh & last != 0 {
                score -= 1;
            }
            // The first row of the global distance grows by one per text character.
            let ph = (ph << 1) | 1;
            let mh = mh << 1;
            pv = mh | !(xv | ph);
            mv = ph & xv;
        }
        score
    }

    /// 1 − distance / the longer length: 1 for equal texts, 0 for nothing in common.
    pub(super) fn similarity(&self, text: &str) -> f64 {
        let longest = self.chars.len().max(text.chars().count());
        if longest == 0 {
            return 1.0;
        }
        1.0 - self.distance(text) as f64 / longest as f64
    }
}

/// The textbook dynamic programme, O(|a|·|b|): the fallback and the tests' reference.
pub(super) fn levenshtein(a: &[char], b: &[char]) -> usize {
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(a: &str, b: &str) -> usize {
        levenshtein(
            &a.chars().collect::<Vec<_>>(),
            &b.chars().collect::<Vec<_>>(),
        )
    }

    #[test]
    fn basics() {
        assert_eq!(Pattern::new("").distance("abc"), 3);
        assert_eq!(Pattern::new("abc").distance(""), 3);
        assert_eq!(Pattern::new("kitten").distance("sitting"), 3);
        assert_eq!(Pattern::new("hepar").distance("hepar"), 0);
        assert_eq!(Pattern::new("niño").distance("nino"), 1);
    }

    /// The bit-parallel distance equals the dynamic programme on pseudo-random texts
    /// over a small alphabet (many matches), at every length up to and past 64.
    #[test]
    fn bit_parallel_equals_the_dynamic_programme() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut text = |len: usize| -> String {
            (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    ['a', 'b', 'c', ' ', 'é'][(state % 5) as usize]
                })
                .collect()
        };
        for len in [1, 2, 5, 17, 63, 64, 65, 90] {
            for other in [0, 1, 8, 40, 64, 100] {
                let (a, b) = (text(len), text(other));
                assert_eq!(
                    Pattern::new(&a).distance(&b),
                    reference(&a, &b),
                    "{a:?} {b:?}"
                );
            }
        }
    }
}
