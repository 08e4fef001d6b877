//! An agent's conversations grouped into topics (`GET /v1/convai/agents/{id}/topics`), from
//! the titles their analyses gave them. With an embedding provider, titles whose vectors are
//! close share a topic (each title joins the nearest topic it is close enough to, or starts
//! one); without one, or when it fails, the title's keywords decide: the keyword most titles
//! share makes a topic of them, then the next, until the rest share none.

use std::collections::{BTreeMap, HashMap};

use crate::EngineDeps;
use crate::knowledge::{embeddings, messages};

/// How similar two titles' vectors must be to share a topic (cosine).
const SAME_TOPIC: f32 = 0.75;
/// Distinct titles embedded per request.
const TITLES_PER_REQUEST: usize = 64;
/// The label of the conversations whose titles have no keyword.
const OTHER: &str = "Other";

/// A group of conversations: the indexes of their titles.
#[derive(Debug, Clone, PartialEq)]
pub struct Topic {
    /// Stable for the same agent and grouping key, so pages and reruns agree.
    pub id: String,
    /// The commonest title of its conversations.
    pub label: String,
    /// What it covers: a few of its titles.
    pub description: String,
    /// Indexes into the titles given.
    pub members: Vec<usize>,
}

/// `titles` grouped, largest group first; by meaning where the server has an embedding
/// provider, else by keywords.
pub async fn group(deps: &EngineDeps, agent_id: &str, titles: &[String]) -> Vec<Topic> {
    if let Some(model) = messages::model(&deps.embeddings) {
        match by_meaning(deps, model, titles).await {
            Ok(groups) => return finish(agent_id, titles, groups),
            Err(e) => tracing::warn!(error = %e, "topics fall back to title keywords"),
        }
    }
    finish(agent_id, titles, by_keywords(titles))
}

/// Groups keyed by what made them (a keyword, or the first title of a group by meaning).
type Groups = Vec<(String, Vec<usize>)>;

async fn by_meaning(
    deps: &EngineDeps, model: &str, titles: &[String],
) -> Result<Groups, embeddings::EmbeddingsError> {
    let mut distinct: Vec<&String> = titles.iter().collect();
    distinct.sort();
    distinct.dedup();
    let mut vectors: HashMap<&String, Vec<f32>> = HashMap::with_capacity(distinct.len());
    for batch in distinct.chunks(TITLES_PER_REQUEST) {
        let texts: Vec<String> = batch.iter().map(|t| (*t).clone()).collect();
        let computed = deps.embeddings.embed(model, &texts).await?;
        for (title, vector) in batch.iter().zip(computed) {
            vectors.insert(title, embeddings::from_bytes(&embeddings::to_bytes(&vector)));
        }
    }
    let mut groups: Vec<(String, Vec<u8>, Vec<usize>)> = Vec::new();
    for (i, title) in titles.iter().enumerate() {
        let vector = &vectors[title];
        let nearest = groups
            .iter_mut()
            .map(|g| (embeddings::distance(vector, &g.1), g))
            .filter(|(d, _)| 1.0 - d >= SAME_TOPIC)
            .min_by(|a, b| a.0.total_cmp(&b.0));
        match nearest {
            Some((_, group)) => group.2.push(i),
            None => groups.push((title.clone(), embeddings::to_bytes(vector), vec![i])),
        }
    }
    Ok(groups.into_iter().map(|(key, _, members)| (key, members)).collect())
}

/// Words too common to name a topic.
const STOPWORDS: &[&str] = &[
    "about",
    "after",
    "and",
    "are",
    "but",
    "call",
    "can",
    "conversation",
    "customer",
    "for",
    "from",
    "has",
    "have",
    "her",
    "his",
    "how",
    "inquiry",
    "into",
    "its",
    "not",
    "question",
    "request",
    "the",
    "their",
    "this",
    "user",
    "was",
    "wants",
    "were",
    "what",
    "when",
    "with",
    "your",
];

/// A title's keywords: words of three letters or more, lower case, a plural's `s` dropped.
fn keywords(title: &str) -> Vec<String> {
    let mut words: Vec<String> = title
        .split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| w.chars().count() >= 3 && !STOPWORDS.contains(&w.as_str()))
        .map(|w| match w.strip_suffix('s') {
            Some(stem) if stem.len() >= 3 && !stem.ends_with('s') => stem.to_owned(),
            _ => w,
        })
        .collect();
    words.sort();
    words.dedup();
    words
}

fn by_keywords(titles: &[String]) -> Groups {
    let words: Vec<Vec<String>> = titles.iter().map(|t| keywords(t)).collect();
    let mut left: Vec<usize> = (0..titles.len()).collect();
    let mut groups = Groups::new();
    loop {
        let mut sharing: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for &i in &left {
            for w in &words[i] {
                sharing.entry(w).or_default().push(i);
            }
        }
        // The keyword most of the rest share (the first in order on a tie), if two share it.
        let Some((word, members)) = sharing
            .into_iter()
            .filter(|(_, m)| m.len() >= 2)
            .max_by(|a, b| a.1.len().cmp(&b.1.len()).then_with(|| b.0.cmp(a.0)))
        else {
            break;
        };
        left.retain(|i| !members.contains(i));
        groups.push((word.to_owned(), members));
    }
    let mut other = Vec::new();
    for i in left {
        match words[i].first() {
            Some(word) => groups.push((word.clone(), vec![i])),
            None => other.push(i),
        }
    }
    if !other.is_empty() {
        groups.push((OTHER.to_owned(), other));
    }
    groups
}

/// Labels, descriptions and ids for `groups`, largest first (the untitled ones last).
fn finish(agent_id: &str, titles: &[String], mut groups: Groups) -> Vec<Topic> {
    groups.sort_by(|a, b| {
        (a.0 == OTHER)
            .cmp(&(b.0 == OTHER))
            .then_with(|| b.1.len().cmp(&a.1.len()))
            .then_with(|| a.0.cmp(&b.0))
    });
    groups
        .into_iter()
        .map(|(key, members)| {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for &i in &members {
                *counts.entry(titles[i].as_str()).or_default() += 1;
            }
            let mut ranked: Vec<(&str, usize)> = counts.into_iter().collect();
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.len().cmp(&b.0.len())));
            let label = if key == OTHER { OTHER.to_owned() } else { ranked[0].0.to_owned() };
            let examples: Vec<&str> = ranked.iter().take(3).map(|(t, _)| *t).collect();
            let description = format!(
                "{} conversation{}: {}",
                members.len(),
                if members.len() == 1 { "" } else { "s" },
                examples.join("; ")
            );
            let id = format!("topic_{:016x}", fnv1a(&format!("{agent_id}\n{key}")));
            Topic { id, label, description, members }
        })
        .collect()
}

/// FNV-1a, 64 bits: a stable id from the grouping key (not a security boundary).
fn fnv1a(text: &str) -> u64 {
    text.bytes()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn titles(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| (*t).to_owned()).collect()
    }

    #[test]
    fn titles_sharing_a_keyword_make_a_topic() {
        let t = titles(&[
            "Refund for a broken order",
            "Opening hours",
            "Refunds after cancellation",
            "Order refund status",
            "Store opening hours on Sunday",
            "Hello",
            "!!",
        ]);
        let topics = finish("agent_1", &t, by_keywords(&t));
        let shown: Vec<(&str, Vec<usize>)> =
            topics.iter().map(|t| (t.label.as_str(), t.members.clone())).collect();
        assert_eq!(
            shown,
            [
                ("Order refund status", vec![0, 2, 3]),
                ("Opening hours", vec![1, 4]),
                ("Hello", vec![5]),
                ("Other", vec![6]),
            ]
        );
        assert!(topics[0].description.starts_with("3 conversations: "));
        assert_eq!(topics, finish("agent_1", &t, by_keywords(&t)), "the same every time");
        assert_ne!(topics[0].id, finish("agent_2", &t, by_keywords(&t))[0].id);
    }
}
