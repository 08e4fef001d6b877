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
    #[error("unsupported file type ({0}); upload PDF, DOCX, HTML, Markdown or plain text (UTF-8)")]
    Unsupported(&'static str),
    /// It claims a type this server reads but cannot be read as one.
    #[error("the file is not a readable {0}: {1}")]
    Corrupt(&'static str, String),
    /// It was read but holds no words.
    #[error("the document holds no text")]
    NoText,
}

/// A document's text and the media type its file was read as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// The text, Markdown headings kept.
    pub text: String,
    /// `application/pdf`, the DOCX type, `text/plain`, `text/markdown` or `text/html`.
    pub mime_type: &'static str,
}

/// Reads an uploaded file. The type is decided by the bytes: binary formats by their magic
/// number, HTML by its markup; the file name only tells Markdown from plain text.
pub fn file(bytes: &[u8], filename: &str) -> Result<Extracted, ExtractError> {
    if bytes.is_empty() {
        return Err(ExtractError::Empty);
    }
    match binary_kind(bytes) {
        Some(PDF) => return nonempty(pdf(bytes)?, "application/pdf"),
        Some(ZIP) => return nonempty(docx(bytes)?, DOCX_TYPE),
        Some(kind) => return Err(ExtractError::Unsupported(kind)),
        None => {}
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
    nonempty(text, mime_type)
}

fn nonempty(text: String, mime_type: &'static str) -> Result<Extracted, ExtractError> {
    if text.trim().is_empty() {
        return Err(ExtractError::NoText);
    }
    Ok(Extracted { text, mime_type })
}

/// The media type of DOCX files.
pub const DOCX_TYPE: &str =
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document";

/// The text of a PDF, page by page. The reader panics on some malformed files; that is
/// caught here and reported as a corrupt file, like any other failure to read it.
fn pdf(bytes: &[u8]) -> Result<String, ExtractError> {
    let read = std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem(bytes));
    match read {
        Ok(Ok(text)) => Ok(text),
        Ok(Err(e)) => Err(ExtractError::Corrupt(PDF, e.to_string())),
        Err(_) => Err(ExtractError::Corrupt(PDF, "its structure could not be read".into())),
    }
}

/// The text of a DOCX file: its `word/document.xml` read with an XML parser, one paragraph
/// per line block, `Heading N` and `Title` paragraphs as Markdown headings.
fn docx(bytes: &[u8]) -> Result<String, ExtractError> {
    use std::io::Read as _;
    let corrupt = |e: &dyn std::fmt::Display| ExtractError::Corrupt(ZIP, e.to_string());
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| corrupt(&e))?;
    let Ok(mut document) = archive.by_name("word/document.xml") else {
        return Err(ExtractError::Unsupported("a ZIP archive that is not a DOCX document"));
    };
    let mut xml = String::new();
    document.read_to_string(&mut xml).map_err(|e| corrupt(&e))?;
    docx_text(&xml).map_err(|e| corrupt(&e))
}

/// The paragraphs of a WordprocessingML body.
fn docx_text(xml: &str) -> Result<String, quick_xml::Error> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let (mut out, mut paragraph, mut heading) = (String::new(), String::new(), 0usize);
    let mut in_text = false;
    loop {
        match reader.read_event()? {
            Event::Start(e) | Event::Empty(e) => match e.local_name().as_ref() {
                "t" => in_text = true,
                "tab" => paragraph.push('\t'),
                "br" | "cr" => paragraph.push('\n'),
                "pStyle" => {
                    let style = e
                        .attributes()
                        .flatten()
                        .find(|a| a.key.local_name().as_ref() == "val")
                        .map(|a| a.value.into_owned())
                        .unwrap_or_default();
                    heading = heading_level(&style);
                }
                _ => {}
            },
            Event::Text(t) if in_text => paragraph.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if in_text => {
                let entity = format!("&{};", r.into_inner());
                paragraph.push_str(&quick_xml::escape::unescape(&entity).unwrap_or_default());
            }
            Event::End(e) => match e.local_name().as_ref() {
                "t" => in_text = false,
                "p" => {
                    let text = paragraph.trim();
                    if !text.is_empty() {
                        if heading > 0 {
                            out.push_str(&"#".repeat(heading));
                            out.push(' ');
                        }
                        out.push_str(text);
                        out.push_str("\n\n");
                    }
                    paragraph.clear();
                    heading = 0;
                }
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out.trim_end().to_owned())
}

/// `Heading1`..`Heading6` (and `Title`) as Markdown heading levels; 0 for body text.
fn heading_level(style: &str) -> usize {
    if style.eq_ignore_ascii_case("title") {
        return 1;
    }
    let lower = style.to_ascii_lowercase();
    lower
        .strip_prefix("heading")
        .and_then(|n| n.trim().parse::<usize>().ok())
        .filter(|n| (1..=6).contains(n))
        .unwrap_or(0)
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

/// The targets of a page's links, resolved against `base` (its address), fragments dropped,
/// each once, in the order they appear; only `http` and `https` ones.
pub fn links(bytes: &[u8], base: &reqwest::Url) -> Vec<String> {
    use html2text::render::RichAnnotation;
    let lines = html2text::config::rich()
        .allow_width_overflow()
        .lines_from_read(bytes, TEXT_WIDTH)
        .unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    for line in &lines {
        for piece in line.tagged_strings() {
            for tag in &piece.tag {
                let RichAnnotation::Link(target) = tag else { continue };
                let Ok(mut url) = base.join(target) else { continue };
                url.set_fragment(None);
                let url = url.to_string();
                if url.starts_with("http") && !out.contains(&url) {
                    out.push(url);
                }
            }
        }
    }
    out
}

/// What a sitemap lists: its `<loc>` addresses, and whether they are sitemaps themselves (a
/// `<sitemapindex>`) rather than pages (a `<urlset>`). `None` when it is not a sitemap.
pub fn sitemap(bytes: &[u8]) -> Option<(bool, Vec<String>)> {
    use quick_xml::events::Event;
    let text = std::str::from_utf8(bytes).ok()?;
    let mut reader = quick_xml::Reader::from_str(text);
    let (mut root, mut in_loc, mut locs) = (None, false, Vec::new());
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => {
                let name = e.local_name().as_ref().to_owned();
                if root.is_none() {
                    root = Some(name.clone());
                }
                in_loc = name == "loc";
            }
            Event::Text(t) if in_loc => locs.push(t.xml10_content().trim().to_owned()),
            Event::End(_) => in_loc = false,
            Event::Eof => break,
            _ => {}
        }
    }
    match root.as_deref() {
        Some("sitemapindex") => Some((true, locs)),
        Some("urlset") => Some((false, locs)),
        _ => None,
    }
}

/// Lines are not wrapped: a paragraph stays one line, as the chunker reads sentences.
const TEXT_WIDTH: usize = 100_000;

const PDF: &str = "PDF";
const ZIP: &str = "DOCX";

/// The binary formats recognised by their first bytes.
fn binary_kind(bytes: &[u8]) -> Option<&'static str> {
    const KINDS: [(&[u8], &str); 7] = [
        (b"%PDF-", PDF),
        (b"PK\x03\x04", ZIP),
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
    fn links_are_resolved_once_without_fragments() {
        let base = reqwest::Url::parse("http://site.test/docs/a.html").unwrap();
        let page = br#"<html><body><a href="b.html#x">B</a> <a href="/c">C</a>
            <a href="b.html">again</a> <a href="mailto:x@y.z">mail</a>
            <a href="https://other.test/">out</a></body></html>"#;
        assert_eq!(
            links(page, &base),
            ["http://site.test/docs/b.html", "http://site.test/c", "https://other.test/"]
        );
    }

    #[test]
    fn sitemaps_list_pages_or_sitemaps() {
        let urlset = br#"<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
            <url><loc> https://s.test/a </loc></url><url><loc>https://s.test/b</loc></url></urlset>"#;
        assert_eq!(
            sitemap(urlset),
            Some((false, vec!["https://s.test/a".into(), "https://s.test/b".into()]))
        );
        let index = br#"<sitemapindex><sitemap><loc>https://s.test/more.xml</loc></sitemap></sitemapindex>"#;
        assert_eq!(sitemap(index), Some((true, vec!["https://s.test/more.xml".into()])));
        assert_eq!(sitemap(b"<html><body>no</body></html>"), None);
    }

    #[test]
    fn docx_paragraphs_and_headings() {
        let xml = r#"<w:document xmlns:w="x"><w:body>
            <w:p><w:pPr><w:pStyle w:val="Heading2"/></w:pPr><w:r><w:t>Warranty</w:t></w:r></w:p>
            <w:p><w:r><w:t xml:space="preserve">Lasts </w:t></w:r><w:r><w:t>24 months &amp; more.</w:t></w:r></w:p>
            <w:p></w:p></w:body></w:document>"#;
        assert_eq!(docx_text(xml).unwrap(), "## Warranty\n\nLasts 24 months & more.");
    }

    #[test]
    fn type_is_decided_by_content() {
        assert!(matches!(file(b"%PDF-1.7 ...", "a.txt"), Err(ExtractError::Corrupt("PDF", _))));
        assert!(matches!(file(b"PK\x03\x04 not a zip", "a.docx"), Err(ExtractError::Corrupt(..))));
        assert_eq!(file(b"\x89PNG\r\n", "a.txt"), Err(ExtractError::Unsupported("PNG image")));
        assert_eq!(file(b"", "a.txt"), Err(ExtractError::Empty));
        assert_eq!(file(b"  \n ", "a.txt"), Err(ExtractError::NoText));
        assert_eq!(file(b"\xFF\xFE\x00", "a.txt"), Err(ExtractError::Unsupported("binary data")));
        assert_eq!(file(b"# Title\nBody", "notes.md").unwrap().mime_type, "text/markdown");
        assert_eq!(file(b"just text", "notes.html").unwrap().mime_type, "text/plain");
    }
}
