//! The text of a document: read from an uploaded file (its type decided by its content, not
//! by its name) or from a web page, with headings kept as Markdown `#` lines so the chunker
//! (`colloquy_core::chunking`) cuts at them.

/// Why a file gave no text.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExtractError {
    /// It has no bytes.
    #[error("the file is empty")]
    Empty,
    /// Its content is of a type this server does not read.
    #[error("unsupported file type ({0}); upload plain text, Markdown or HTML (UTF-8)")]
    Unsupported(&'static str),
    /// It was read but holds no words.
    #[error("the document holds no text")]
    NoText,
}

/// A document's text and the media type its file was read as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// The text, Markdown headings kept.
    pub text: String,
    /// `text/plain`, `text/markdown` or `text/html`.
    pub mime_type: &'static str,
}

/// Reads an uploaded file. The type is decided by the bytes: binary formats by their magic
/// number, HTML by its markup; the file name only tells Markdown from plain text.
pub fn file(bytes: &[u8], filename: &str) -> Result<Extracted, ExtractError> {
    if bytes.is_empty() {
        return Err(ExtractError::Empty);
    }
    if let Some(kind) = binary_kind(bytes) {
        return Err(ExtractError::Unsupported(kind));
    }
    let Ok(text) = std::str::from_utf8(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)) else {
        return Err(ExtractError::Unsupported("binary data"));
    };
    let (text, mime_type) = if looks_like_html(text) {
        (html(text.as_bytes()), "text/html")
    } else if is_markdown_name(filename) {
        (text.to_owned(), "text/markdown")
    } else {
        (text.to_owned(), "text/plain")
    };
    if text.trim().is_empty() {
        return Err(ExtractError::NoText);
    }
    Ok(Extracted { text, mime_type })
}

/// The text of an HTML page: scripts, styles and the head dropped, headings as `#` lines,
/// links as their text.
pub fn html(bytes: &[u8]) -> String {
    let text = html2text::config::plain()
        .link_footnotes(false)
        .allow_width_overflow()
        .string_from_read(bytes, TEXT_WIDTH)
        .unwrap_or_default();
    // Empty lines between paragraphs stay; runs of them do not.
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.lines().map(str::trim_end) {
        blank = if line.is_empty() { blank + 1 } else { 0 };
        if blank < 2 {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.trim().to_owned()
}

/// Lines are not wrapped: a paragraph stays one line, as the chunker reads sentences.
const TEXT_WIDTH: usize = 100_000;

/// The binary formats recognised by their first bytes.
fn binary_kind(bytes: &[u8]) -> Option<&'static str> {
    const KINDS: [(&[u8], &str); 7] = [
        (b"%PDF-", "PDF"),
        (b"PK\x03\x04", "a ZIP archive such as DOCX"),
        (b"\xD0\xCF\x11\xE0", "an OLE document such as DOC"),
        (b"\x89PNG", "PNG image"),
        (b"\xFF\xD8\xFF", "JPEG image"),
        (b"GIF8", "GIF image"),
        (b"\x1F\x8B", "gzip data"),
    ];
    KINDS.iter().find(|(magic, _)| bytes.starts_with(magic)).map(|(_, kind)| *kind)
}

/// Whether text is an HTML document rather than text that mentions a tag.
fn looks_like_html(text: &str) -> bool {
    let head: String = text.trim_start().chars().take(256).collect::<String>().to_lowercase();
    head.starts_with("<!doctype html") || head.starts_with("<html") || head.contains("<body")
}

fn is_markdown_name(filename: &str) -> bool {
    let lower = filename.to_lowercase();
    lower.ends_with(".md") || lower.ends_with(".markdown")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_keeps_headings_and_text_and_drops_scripts() {
        let page = b"<!doctype html><html><head><title>T</title><style>p{}</style></head>\
            <body><h1>Refunds</h1><p>Refunds take <a href='/x'>five days</a>.</p>\
            <script>var secret = 1;</script></body></html>";
        let text = file(page, "page.txt").unwrap();
        assert_eq!(text.mime_type, "text/html");
        assert!(text.text.contains("# Refunds"), "{}", text.text);
        assert!(text.text.contains("Refunds take [five days]."), "{}", text.text);
        assert!(!text.text.contains("secret"));
    }

    #[test]
    fn type_is_decided_by_content() {
        assert_eq!(file(b"%PDF-1.7 ...", "a.txt"), Err(ExtractError::Unsupported("PDF")));
        assert_eq!(file(b"", "a.txt"), Err(ExtractError::Empty));
        assert_eq!(file(b"  \n ", "a.txt"), Err(ExtractError::NoText));
        assert_eq!(file(b"\xFF\xFE\x00", "a.txt"), Err(ExtractError::Unsupported("binary data")));
        assert_eq!(file(b"# Title\nBody", "notes.md").unwrap().mime_type, "text/markdown");
        assert_eq!(file(b"just text", "notes.html").unwrap().mime_type, "text/plain");
    }
}
