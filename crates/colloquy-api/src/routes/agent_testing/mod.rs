//! Agent tests and test folders (`/v1/convai/agent-testing/...`). Test bodies are checked by
//! `colloquy_core::agent_tests`; tests and folders share one listing.

mod folders;
mod tests;
mod view;

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

pub(crate) use view::{check_attached_tests, existing_tests};

/// The agent-testing routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(tests::list_tests))
        .routes(routes!(tests::create_test))
        .routes(routes!(tests::get_test, tests::update_test, tests::delete_test))
        .routes(routes!(tests::get_test_summaries))
        .routes(routes!(folders::create_folder))
        .routes(routes!(folders::get_folder, folders::update_folder, folders::delete_folder))
        .routes(routes!(folders::bulk_move))
}
