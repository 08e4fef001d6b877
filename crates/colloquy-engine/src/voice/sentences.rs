//! The agent's text cut into sentences as it streams, so each is synthesized as soon as it is
//! complete and the first audio goes out before the LLM has finished; and the timing of each
//! character in the audio made of it (`alignment`).

use colloquy_core::protocol::Alignment;

/// A piece of text longer than this is cut at its last comma or space even without a
/// sentence end, so a run-on answer does not hold its audio back.
const LONGEST_PIECE: usize = 240;

/// Streamed text, cut into sentences.
#[derive(Debug, Default)]
pub struct Sentences {
    pending: String,
}

impl Sentences {
    /// Adds streamed text; returns the sentences it completed.
    pub fn push(&mut self, text: &str) -> Vec<String> {
        self.pending.push_str(text);
        let mut done = Vec::new();
        while let Some(end) = sentence_end(&self.pending) {
            let rest = self.pending.split_off(end);
            let sentence = std::mem::replace(&mut self.pending, rest);
            let sentence = sentence.trim();
            if !sentence.is_empty() {
                done.push(sentence.to_owned());
            }
        }
        done
    }

    /// What is left once the text has ended.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.pending);
        let rest = rest.trim();
        (!rest.is_empty()).then(|| rest.to_owned())
    }
}

/// Where the first complete sentence of `text` ends (a byte offset past its whitespace).
fn sentence_end(text: &str) -> Option<usize> {
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let next = chars.peek().map(|(_, n)| *n);
        let ends = match c {
            '\n' => true,
            '.' | '!' | '?' | '…' | '。' | '！' | '？' => {
                next.is_some_and(char::is_whitespace)
            }
            _ => false,
        };
        if ends && i > 0 {
            return Some(i + c.len_utf8());
        }
    }
    if text.len() > LONGEST_PIECE {
        let cut = text[..LONGEST_PIECE].rfind([',', ' ']).filter(|i| *i > 0)?;
        return Some(cut + 1);
    }
    None
}

/// The characters of `text` spread evenly over `duration_ms`, starting at `offset_ms`: what
/// `alignment` says when the synthesizer gives no timing of its own.
pub fn even_alignment(text: &str, offset_ms: u64, duration_ms: u64) -> Alignment {
    let chars: Vec<String> = text.chars().map(String::from).collect();
    let n = chars.len().max(1) as u64;
    let starts =
        (0..chars.len() as u64).map(|i| offset_ms + i * duration_ms / n).collect::<Vec<_>>();
    let durations =
        (0..chars.len() as u64).map(|i| (i + 1) * duration_ms / n - i * duration_ms / n).collect();
    Alignment { chars, char_start_times_ms: starts, char_durations_ms: durations }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_come_out_as_soon_as_they_end() {
        let mut s = Sentences::default();
        assert!(s.push("Hello there").is_empty());
        assert_eq!(s.push("! How are"), vec!["Hello there!"]);
        assert_eq!(s.push(" you? I am 3.5 m"), vec!["How are you?"]);
        assert!(s.push("eters tall").is_empty());
        assert_eq!(s.finish().as_deref(), Some("I am 3.5 meters tall"));
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn a_run_on_answer_is_cut_at_a_comma_or_space() {
        let mut s = Sentences::default();
        let pieces = s.push(&"word, ".repeat(60));
        assert!(!pieces.is_empty());
        assert!(pieces.iter().all(|p| p.len() <= LONGEST_PIECE));
    }

    #[test]
    fn alignment_is_monotonic_and_covers_the_duration() {
        let a = even_alignment("héllo", 1000, 503);
        assert_eq!(a.chars, vec!["h", "é", "l", "l", "o"]);
        assert_eq!(a.char_start_times_ms[0], 1000);
        assert!(a.char_start_times_ms.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(a.char_durations_ms.iter().sum::<u64>(), 503);
    }
}
