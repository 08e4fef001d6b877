//! Agents (`/v1/convai/agents/...`): one file per group of operations. Validation, defaults and
//! PATCH merging are domain rules (`colloquy_core::agents`); this module maps HTTP to them.

mod crud;
mod extras;
mod list;
mod view;

use utoipa_axum::{router::OpenApiRouter, routes};

pub(crate) use crud::{content, patch_agent};
pub(crate) use view::{dependent, stored_doc};

use crate::state::AppState;

/// The agents routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(crud::create_agent))
        .routes(routes!(list::list_agents))
        .routes(routes!(list::get_agent_summaries))
        .routes(routes!(crud::get_agent, crud::update_agent, crud::delete_agent))
        .routes(routes!(crud::duplicate_agent))
        .routes(routes!(extras::get_agent_link))
        .routes(routes!(extras::get_agent_widget))
        .routes(routes!(extras::get_knowledge_base_size))
}
