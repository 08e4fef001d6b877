//! The stylesheet and the playground's scripts (its page, its voice, the microphone's audio
//! worklet), compiled into the binary.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

const FILES: [(&str, &str, &str); 4] = [
    ("dashboard.css", "text/css; charset=utf-8", include_str!("../assets/dashboard.css")),
    ("playground.js", "text/javascript; charset=utf-8", include_str!("../assets/playground.js")),
    ("voice.js", "text/javascript; charset=utf-8", include_str!("../assets/voice.js")),
    (
        "capture-worklet.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/capture-worklet.js"),
    ),
];

/// `GET /assets/{file}`.
pub async fn serve(Path(file): Path<String>) -> Response {
    match FILES.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => (
            [(header::CONTENT_TYPE, *content_type), (header::CACHE_CONTROL, "public, max-age=300")],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
