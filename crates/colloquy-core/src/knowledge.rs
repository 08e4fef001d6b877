//! The knowledge base's vocabulary (issue [J]): what a document is, how lists of them sort, and
//! the words a search looks for.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a knowledge-base entry is (`KnowledgeBaseDocumentType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocType {
    /// An uploaded file.
    File,
    /// A web page, fetched when added and on `refresh`.
    Url,
    /// Text given in the request.
    Text,
    /// A folder of documents and folders.
    Folder,
}

impl DocType {
    /// The wire name, also what is stored.
    pub fn as_str(self) -> &'static str {
        match self {
            DocType::File => "file",
            DocType::Url => "url",
            DocType::Text => "text",
            DocType::Folder => "folder",
        }
    }

    /// The name's type, if it names one.
    pub fn parse(name: &str) -> Option<DocType> {
        Some(match name {
            "file" => DocType::File,
            "url" => DocType::Url,
            "text" => DocType::Text,
            "folder" => DocType::Folder,
            _ => return None,
        })
    }
}

/// A stored type name that is not a [`DocType`] (a damaged row).
#[derive(Debug, thiserror::Error)]
#[error("unknown knowledge-base document type {0:?}")]
pub struct UnknownDocType(String);

impl TryFrom<String> for DocType {
    type Error = UnknownDocType;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        DocType::parse(&name).ok_or(UnknownDocType(name))
    }
}

impl fmt::Display for DocType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the documents list sorts by (`KnowledgeBaseSortBy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocSort {
    /// By name (byte order).
    Name,
    /// By creation time (the default).
    #[default]
    CreatedAt,
    /// By the time of the last change.
    UpdatedAt,
    /// By size in bytes.
    Size,
}

impl DocSort {
    /// The wire name, which cursors carry too.
    pub fn as_str(self) -> &'static str {
        match self {
            DocSort::Name => "name",
            DocSort::CreatedAt => "created_at",
            DocSort::UpdatedAt => "updated_at",
            DocSort::Size => "size",
        }
    }
}

/// Which agents `dependent-agents` lists (`KnowledgeBaseDependentType`): `direct` are agents
/// that name the document itself, `transitive` those that name a folder holding it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DependentType {
    /// Agents naming the document.
    Direct,
    /// Agents naming one of its folders.
    Transitive,
    /// Both (the default).
    #[default]
    All,
}

/// How an agent uses a document (`DocumentUsageModeEnum`): `prompt` places the whole text in
/// the system prompt; `auto` retrieves chunks of it when RAG is on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageMode {
    /// Always in the prompt.
    Prompt,
    /// Retrieved (the default).
    #[default]
    Auto,
}

/// The embedding models the reference names (`EmbeddingModelEnum`); chunks are the same for
/// each, and each maps to a provider model in the configuration.
pub const EMBEDDING_MODELS: [&str; 2] =
    ["e5_mistral_7b_instruct", "multilingual_e5_large_instruct"];

/// The most words a search looks for; the rest of a long question adds little to a ranking.
pub const MAX_SEARCH_TERMS: usize = 32;

/// English words too common to tell chunks apart. Each would match nearly every chunk, and a
/// full-text index ranks every chunk a query term matches, so leaving them in made a search of
/// a million chunks scan all of them (PostgreSQL's `english` configuration drops the same
/// kind of words on its own).
pub const STOPWORDS: [&str; 64] = [
    "a", "about", "after", "all", "also", "an", "and", "any", "are", "as", "at", "be", "been",
    "but", "by", "can", "could", "did", "do", "does", "for", "from", "had", "has", "have", "how",
    "i", "if", "in", "into", "is", "it", "its", "me", "my", "no", "not", "of", "on", "or", "our",
    "so", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "to",
    "was", "we", "were", "what", "when", "where", "which", "who", "will", "with", "you",
];

/// The words of `query` a lexical search looks for: lower-cased runs of letters and digits,
/// each once, in order, at most [`MAX_SEARCH_TERMS`], without [`STOPWORDS`] (unless the query
/// has nothing else). Nothing of the query's own syntax reaches the database's query language,
/// so any text is a valid search.
pub fn search_terms(query: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for word in query.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        let word = word.to_lowercase();
        if !terms.contains(&word) {
            terms.push(word);
        }
    }
    let content: Vec<String> =
        terms.iter().filter(|t| !STOPWORDS.contains(&t.as_str())).cloned().collect();
    let mut terms = if content.is_empty() { terms } else { content };
    terms.truncate(MAX_SEARCH_TERMS);
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_terms_are_the_words_once_without_syntax() {
        assert_eq!(
            search_terms("What's the REFUND policy? refund \"NEAR\" (a OR b)*"),
            ["s", "refund", "policy", "near", "b"]
        );
        assert_eq!(search_terms("what is it"), ["what", "is", "it"], "only stopwords: kept");
        assert!(search_terms(" ?!* ").is_empty());
        assert_eq!(search_terms(&"w ".repeat(5)), ["w"]);
    }

    #[test]
    fn search_terms_are_capped() {
        let long: String = (0..100).map(|i| format!("word{i} ")).collect();
        assert_eq!(search_terms(&long).len(), MAX_SEARCH_TERMS);
    }

    #[test]
    fn types_round_trip() {
        for t in [DocType::File, DocType::Url, DocType::Text, DocType::Folder] {
            assert_eq!(DocType::try_from(t.as_str().to_owned()).unwrap(), t);
        }
        assert!(DocType::try_from("pdf".to_owned()).is_err());
    }
}
