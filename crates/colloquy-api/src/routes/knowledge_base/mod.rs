//! The knowledge base (`/v1/convai/knowledge-base...`): documents from text, URLs and files,
//! folders, their chunks and search. Documents are read into text and chunked by the engine's
//! `knowledge` module and `colloquy_core::chunking`; the store keeps them with a full-text
//! index that the conversation's retrieval stage searches.

mod crawl;
mod create;
mod documents;
mod list;
mod rag_index;
mod source;
mod view;

pub use source::file_router;

use axum::extract::DefaultBodyLimit;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

/// The knowledge-base routes.
pub fn router() -> OpenApiRouter<AppState> {
    // Uploads are capped while they stream, by COLLOQUY_KB_MAX_FILE_BYTES (`create::Form`),
    // not by the request body limit of JSON routes.
    let uploads = OpenApiRouter::new()
        .routes(routes!(create::add_to_knowledge_base, list::list_documents))
        .routes(routes!(create::create_file))
        .routes(routes!(documents::update_file))
        .layer(DefaultBodyLimit::disable());
    OpenApiRouter::new()
        .merge(uploads)
        .routes(routes!(create::create_text))
        .routes(routes!(create::create_url))
        .routes(routes!(create::create_folder))
        .routes(routes!(
            documents::get_document,
            documents::update_document,
            documents::delete_document
        ))
        .routes(routes!(documents::get_content))
        .routes(routes!(source::get_source_file_url))
        .routes(routes!(documents::refresh_document))
        .routes(routes!(documents::move_document))
        .routes(routes!(documents::bulk_move))
        .routes(routes!(documents::bulk_delete))
        .routes(routes!(documents::get_summaries))
        .routes(routes!(list::get_dependent_agents))
        .routes(routes!(list::get_bulk_dependent_agents))
        .routes(routes!(list::list_chunks))
        .routes(routes!(list::get_chunk))
        .routes(routes!(list::search))
        .routes(routes!(rag_index::compute_rag_indexes, rag_index::rag_index_overview))
        .routes(routes!(rag_index::compute_rag_index, rag_index::get_rag_indexes))
        .routes(routes!(rag_index::delete_rag_index))
        .routes(routes!(crawl::create_crawl, crawl::list_crawls))
        .routes(routes!(crawl::get_crawl))
        .routes(routes!(crawl::cancel_crawl))
        .routes(routes!(crawl::crawl_pages))
}
