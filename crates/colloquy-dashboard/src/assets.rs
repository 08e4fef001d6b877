//! The stylesheet, the icon and the playground's scripts (its page, its voice, the
//! microphone's audio worklet), compiled into the binary.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

const FILES: [(&str, &str, &str); 5] = [
    ("dashboard.css", "text/css; charset=utf-8", include_str!("../assets/dashboard.css")),
    ("favicon.svg", "image/svg+xml", include_str!("../assets/favicon.svg")),
    ("playground.js", "text/javascript; charset=utf-8", include_str!("../assets/playground.js")),
    ("voice.js", "text/javascript; charset=utf-8", include_str!("../assets/voice.js")),
    (
        "capture-worklet.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/capture-worklet.js"),
    ),
];

/// `GET /favicon.ico`, which every browser asks for whatever the page says: the icon.
pub async fn favicon() -> Response {
    asset("favicon.svg")
}

/// `GET /assets/{file}`.
pub async fn serve(Path(file): Path<String>) -> Response {
    asset(&file)
}

fn asset(file: &str) -> Response {
    match FILES.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => (
            [(header::CONTENT_TYPE, *content_type), (header::CACHE_CONTROL, "public, max-age=300")],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

#[cfg(test)]
mod tests {
    /// Rules later in the stylesheet win: the editors' monospace font must come after the
    /// rule that gives form controls the page's font, and disabled buttons must look it.
    #[test]
    fn editors_keep_their_monospace_font_and_disabled_buttons_look_disabled() {
        let css = include_str!("../assets/dashboard.css");
        let inherit = css.find("font: inherit").expect("form controls inherit the font");
        let mono = css.rfind("textarea { font-family: ui-monospace").expect("a monospace rule");
        assert!(mono > inherit, "the monospace rule is overridden by `font: inherit`");
        assert!(css.contains("button:disabled"), "no style for disabled buttons");
    }
}
