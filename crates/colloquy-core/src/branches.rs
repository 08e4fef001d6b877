//! The rules of an agent's branches: how a deployment's traffic split is read and which branch
//! a new conversation lands on, and the version history walked for merges (common ancestors,
//! commits ahead and behind).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use ring::digest;

/// Millionths of the traffic: shares are kept as integers so they add up exactly.
pub const WHOLE: i64 = 1_000_000;

/// A share given as the reference gives it (`traffic_percentage`, a fraction: 0.5 is half)
/// in millionths, or `None` when it is not a share of the whole (negative, above 1, not finite).
pub fn share_ppm(fraction: f64) -> Option<i64> {
    if !fraction.is_finite() || !(0.0..=1.0).contains(&fraction) {
        return None;
    }
    // A fraction of at most 1 in millionths fits an i64 exactly.
    #[allow(clippy::cast_possible_truncation)]
    Some((fraction * WHOLE as f64).round() as i64)
}

/// Whether shares in millionths make up the whole traffic, allowing for the rounding of each.
pub fn is_whole(shares: &[i64]) -> bool {
    let sum: i64 = shares.iter().sum();
    let slack = i64::try_from(shares.len()).unwrap_or(i64::MAX);
    (sum - WHOLE).abs() <= slack
}

/// The branch a new conversation runs on: deterministic for a `user_id` (the same user always
/// lands on the same branch while the split holds), else drawn at random. `split` lists the
/// live branches with their shares; `None` when it is empty.
pub fn pick<'a>(split: &'a [(String, i64)], user_id: Option<&str>) -> Option<&'a str> {
    let total: i64 = split.iter().map(|(_, share)| share).sum();
    let total = u64::try_from(total).ok().filter(|t| *t > 0)?;
    let point = match user_id.filter(|u| !u.is_empty()) {
        Some(user) => {
            let hash = digest::digest(&digest::SHA256, user.as_bytes());
            let mut first = [0u8; 8];
            first.copy_from_slice(&hash.as_ref()[..8]);
            u64::from_be_bytes(first) % total
        }
        None => u64::from_be_bytes(crate::random::bytes::<8>()) % total,
    };
    let mut upto = 0u64;
    for (branch, share) in split {
        upto += u64::try_from(*share).unwrap_or(0);
        if point < upto {
            return Some(branch);
        }
    }
    split.last().map(|(branch, _)| branch.as_str())
}

/// An agent's versions as a graph: each version with the versions it was made from.
#[derive(Debug, Clone, Default)]
pub struct History {
    parents: BTreeMap<String, Vec<String>>,
}

impl History {
    /// Adds a version and its parents.
    pub fn add(&mut self, id: &str, parents: impl IntoIterator<Item = impl Into<String>>) {
        self.parents.insert(id.to_owned(), parents.into_iter().map(Into::into).collect());
    }

    /// `version` and every version it descends from.
    pub fn ancestors(&self, version: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut queue = VecDeque::from([version.to_owned()]);
        while let Some(next) = queue.pop_front() {
            if !seen.insert(next.clone()) {
                continue;
            }
            for parent in self.parents.get(&next).into_iter().flatten() {
                queue.push_back(parent.clone());
            }
        }
        seen
    }

    /// The best common ancestor of `a` and `b`: the common ancestor furthest from the first
    /// version (by generation: one more than its furthest parent's), so none of the others
    /// descends from it (the smallest id among equals, so the answer is stable). Linear in
    /// the history: a merge preview of an agent with hundreds of versions stays cheap.
    pub fn merge_base(&self, a: &str, b: &str) -> Option<String> {
        let of_b = self.ancestors(b);
        let mut generations = BTreeMap::new();
        self.ancestors(a)
            .into_iter()
            .filter(|v| of_b.contains(v))
            .map(|v| (self.generation(&v, &mut generations), v))
            .max_by(|(g1, v1), (g2, v2)| g1.cmp(g2).then_with(|| v2.cmp(v1)))
            .map(|(_, v)| v)
    }

    /// How many versions lie on the longest line from the first version to `version`, each
    /// version's figure kept in `known`.
    fn generation(&self, version: &str, known: &mut BTreeMap<String, usize>) -> usize {
        if let Some(g) = known.get(version) {
            return *g;
        }
        // Depth-first without recursion: a long history must not exhaust the stack. A version
        // already on the way (only a damaged history has cycles) counts as known.
        let mut stack = vec![version.to_owned()];
        let mut visiting = BTreeSet::new();
        while let Some(top) = stack.last().cloned() {
            visiting.insert(top.clone());
            let parents = self.parents.get(&top).map(Vec::as_slice).unwrap_or_default();
            let missing: Vec<String> = parents
                .iter()
                .filter(|p| !known.contains_key(*p) && !visiting.contains(*p))
                .cloned()
                .collect();
            if missing.is_empty() {
                let g = parents.iter().filter_map(|p| known.get(p)).max().map_or(0, |g| g + 1);
                known.insert(top, g);
                stack.pop();
            } else {
                stack.extend(missing);
            }
        }
        known.get(version).copied().unwrap_or_default()
    }

    /// Versions of `a` that `b` does not have, and versions of `b` that `a` does not have.
    pub fn ahead_behind(&self, a: &str, b: &str) -> (usize, usize) {
        let of_a = self.ancestors(a);
        let of_b = self.ancestors(b);
        (of_a.difference(&of_b).count(), of_b.difference(&of_a).count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_fractions_of_the_whole() {
        assert_eq!(share_ppm(0.5), Some(500_000));
        assert_eq!(share_ppm(1.5), None);
        assert!(is_whole(&[share_ppm(1.0 / 3.0).unwrap(); 3]));
        assert!(!is_whole(&[500_000, 400_000]));
    }

    #[test]
    fn a_user_always_lands_on_the_same_branch_and_others_spread() {
        let split = vec![("a".to_owned(), 500_000), ("b".to_owned(), 500_000)];
        let first = pick(&split, Some("user-1"));
        assert!((0..20).all(|_| pick(&split, Some("user-1")) == first));
        let landed: BTreeSet<&str> = (0..200).filter_map(|_| pick(&split, None)).collect();
        assert_eq!(landed.len(), 2);
        assert_eq!(pick(&[], None), None);
    }

    #[test]
    fn the_merge_base_is_the_nearest_common_ancestor() {
        let mut h = History::default();
        h.add("m1", Vec::<String>::new());
        h.add("m2", ["m1"]);
        h.add("b1", ["m2"]);
        h.add("m3", ["m2"]);
        h.add("b2", ["b1"]);
        assert_eq!(h.merge_base("m3", "b2").as_deref(), Some("m2"));
        assert_eq!(h.ahead_behind("b2", "m3"), (2, 1));
        h.add("m4", ["m3", "b2"]);
        assert_eq!(h.merge_base("m4", "b2").as_deref(), Some("b2"));
        h.add("x", ["y"]);
        h.add("y", ["x"]);
        assert_eq!(h.merge_base("x", "y").as_deref(), Some("x"), "a damaged history still ends");
    }
}
