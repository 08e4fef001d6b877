//! How a knowledge-base document is cut into the chunks retrieval ranks (issue [J]).
//!
//! A chunk never spans two sections: a Markdown heading (`#` to `######`) starts a new one, and
//! every chunk of a section begins with that section's heading path, so a chunk read alone
//! still says what it is about (and a lexical search for a heading's words finds its body).
//! Inside a section, sentences are packed whole up to [`MAX_CHARS`]; the next chunk repeats
//! the last sentences of the one before, up to [`OVERLAP_CHARS`], so a fact that straddles a
//! cut is still found whole in one chunk. A sentence longer than a chunk is cut at word
//! boundaries. The cutting is the same for every embedding model: chunks are read from the
//! moment a document exists, whether or not a vector index is ever computed.

/// The most characters a chunk holds, heading path included.
pub const MAX_CHARS: usize = 1000;
/// At most this many characters of whole sentences are repeated from the previous chunk.
pub const OVERLAP_CHARS: usize = 200;
/// A heading path longer than this is cut, so it never crowds out the text it heads.
const MAX_HEADING_CHARS: usize = 200;

/// One chunk of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Position in the document, from 0.
    pub index: usize,
    /// The chunk's text: its section's heading path, then its sentences.
    pub text: String,
}

/// The chunks of `text`, in document order; none for a text without words.
pub fn chunk(text: &str) -> Vec<Chunk> {
    let mut out = Vec::new();
    for section in sections(text) {
        let heading = truncate(&section.heading.join(" > "), MAX_HEADING_CHARS);
        let prefix = if heading.is_empty() { String::new() } else { format!("{heading}\n") };
        let room = MAX_CHARS - prefix.chars().count();
        for body in pack(&sentences(&section.body, room), room) {
            out.push(Chunk { index: out.len(), text: format!("{prefix}{body}") });
        }
    }
    out
}

/// A heading path and the text under it.
struct Section {
    heading: Vec<String>,
    body: String,
}

/// Splits `text` at its Markdown headings; each section carries the path of headings above it.
fn sections(text: &str) -> Vec<Section> {
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut out = vec![Section { heading: Vec::new(), body: String::new() }];
    for line in text.lines() {
        if let Some((level, title)) = heading(line) {
            path.retain(|(l, _)| *l < level);
            path.push((level, title.to_owned()));
            let heading = path.iter().map(|(_, t)| t.clone()).collect();
            out.push(Section { heading, body: String::new() });
        } else if let Some(current) = out.last_mut() {
            current.body.push_str(line);
            current.body.push('\n');
        }
    }
    out.retain(|s| s.body.split_whitespace().next().is_some());
    out
}

/// `(level, title)` of an ATX heading line (`## Title`).
fn heading(line: &str) -> Option<(usize, &str)> {
    let trimmed = line.trim_start();
    let level = trimmed.chars().take_while(|c| *c == '#').count();
    let rest = &trimmed[level..];
    let title = rest.trim().trim_end_matches('#').trim();
    ((1..=6).contains(&level) && rest.starts_with([' ', '\t']) && !title.is_empty())
        .then_some((level, title))
}

/// The sentences of `body`, whitespace collapsed, each at most `room` characters (a longer one
/// is cut at word boundaries). A sentence ends at `.`, `!` or `?` before whitespace, and at a
/// paragraph or list-item break.
fn sentences(body: &str, room: usize) -> Vec<String> {
    let mut out = Vec::new();
    for paragraph in body.split("\n\n").flat_map(|p| p.split("\n- ")).flat_map(|p| p.split("\n* "))
    {
        let words: Vec<&str> = paragraph.split_whitespace().collect();
        let mut sentence = String::new();
        for (i, word) in words.iter().enumerate() {
            push_word(&mut sentence, word, room, &mut out);
            let ends = word.ends_with(['.', '!', '?']) || i + 1 == words.len();
            if ends && !sentence.is_empty() {
                out.push(std::mem::take(&mut sentence));
            }
        }
    }
    out
}

/// Adds `word` to `sentence`, first moving `sentence` to `out` when the word would not fit in
/// `room`; a word longer than `room` is itself cut into pieces that fit.
fn push_word(sentence: &mut String, word: &str, room: usize, out: &mut Vec<String>) {
    let len = sentence.chars().count();
    let extra = word.chars().count() + usize::from(len > 0);
    if len > 0 && len + extra > room {
        out.push(std::mem::take(sentence));
    }
    if word.chars().count() > room {
        let chars: Vec<char> = word.chars().collect();
        let mut pieces = chars.chunks(room).map(|c| c.iter().collect::<String>()).peekable();
        while let Some(piece) = pieces.next() {
            if pieces.peek().is_some() {
                out.push(piece);
            } else {
                *sentence = piece;
            }
        }
        return;
    }
    if !sentence.is_empty() {
        sentence.push(' ');
    }
    sentence.push_str(word);
}

/// Packs `sentences` (each at most `room` characters) into chunk bodies of at most `room`,
/// each after the first starting with the previous body's last sentences, up to
/// [`OVERLAP_CHARS`] and only while a new sentence still fits beside them.
fn pack(sentences: &[String], room: usize) -> Vec<String> {
    let mut bodies = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut fresh = 0;
    for sentence in sentences {
        if fresh > 0 && joined_len(&current) + 1 + sentence.chars().count() > room {
            bodies.push(current.join(" "));
            current = overlap(&current, room - sentence.chars().count());
            fresh = 0;
        }
        current.push(sentence);
        fresh += 1;
    }
    if fresh > 0 {
        bodies.push(current.join(" "));
    }
    bodies
}

/// The longest tail of `previous` within [`OVERLAP_CHARS`] and leaving `fits` characters free
/// (a space included) for what follows.
fn overlap<'a>(previous: &[&'a str], fits: usize) -> Vec<&'a str> {
    let limit = OVERLAP_CHARS.min(fits.saturating_sub(1));
    let mut tail = Vec::new();
    for sentence in previous.iter().rev() {
        let mut candidate = vec![*sentence];
        candidate.extend(tail.iter().copied());
        if joined_len(&candidate) > limit {
            break;
        }
        tail = candidate;
    }
    tail
}

fn joined_len(parts: &[&str]) -> usize {
    parts.iter().map(|p| p.chars().count()).sum::<usize>() + parts.len().saturating_sub(1)
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn headings_start_sections_and_head_their_chunks() {
        let doc = "Intro line.\n\n# Billing\nInvoices go out monthly.\n\n## Refunds\nRefunds take 5 days.\n# Support\nCall us.";
        let chunks = chunk(doc);
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Intro line.",
                "Billing\nInvoices go out monthly.",
                "Billing > Refunds\nRefunds take 5 days.",
                "Support\nCall us."
            ]
        );
        assert_eq!(chunks.iter().map(|c| c.index).collect::<Vec<_>>(), [0, 1, 2, 3]);
    }

    #[test]
    fn long_sections_overlap_by_whole_sentences() {
        let sentences: Vec<String> =
            (0..60).map(|i| format!("Sentence number {i} says something useful.")).collect();
        let chunks = chunk(&sentences.join(" "));
        assert!(chunks.len() > 1);
        for pair in chunks.windows(2) {
            let last_of_first = pair[0].text.rsplit(". ").next().unwrap();
            assert!(pair[1].text.contains(last_of_first), "{pair:?}");
        }
    }

    #[test]
    fn empty_and_blank_texts_have_no_chunks() {
        assert!(chunk("").is_empty());
        assert!(chunk("  \n\n \t").is_empty());
        assert!(chunk("# Only a heading").is_empty());
    }

    #[test]
    fn a_word_longer_than_a_chunk_is_cut() {
        let chunks = chunk(&"x".repeat(2500));
        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|c| c.text.chars().count() <= MAX_CHARS));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn chunks_fit_and_cover_every_word(
            words in proptest::collection::vec("[a-zé]{1,12}[.!?]?|#{1,3} [a-z]{1,8}\n|\n\n|[a-z]{900,1100}", 0..400)
        ) {
            let text = words.join(" ");
            let chunks = chunk(&text);
            let mut tokens = std::collections::HashSet::new();
            for c in &chunks {
                prop_assert!(c.text.chars().count() <= MAX_CHARS, "{} chars", c.text.chars().count());
                prop_assert!(!c.text.trim().is_empty());
                tokens.extend(c.text.split_whitespace().map(|t| t.chars().take(MAX_CHARS / 2).collect::<String>()));
            }
            for line in text.lines().filter(|l| heading(l).is_none()) {
                for word in line.split_whitespace() {
                    let piece: String = word.chars().take(MAX_CHARS / 2).collect();
                    prop_assert!(tokens.contains(&piece), "{word} missing");
                }
            }
            prop_assert_eq!(chunk(&text), chunks);
        }
    }
}
