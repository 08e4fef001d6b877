//! Agents (`/v1/convai/agents/...`): one file per group of operations. Validation, defaults and
//! PATCH merging are domain rules (`colloquy_core::agents`); this module maps HTTP to them.

mod branches;
mod crud;
mod deployments;
mod drafts;
mod extras;
mod list;
mod media;
mod merges;
mod procedures;
mod versions;
mod view;

use utoipa_axum::{router::OpenApiRouter, routes};

use crud::check_tools;
pub(crate) use crud::{content, patch_agent, patch_agent_edited};
pub(crate) use versions::{CommitError, at, commit, given};
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
        .routes(routes!(branches::list_branches, branches::create_branch))
        .routes(routes!(branches::get_branch, branches::update_branch))
        .routes(routes!(versions::get_version))
        .routes(routes!(merges::merge_preview))
        .routes(routes!(merges::merge))
        .routes(routes!(merges::rebase_preview))
        .routes(routes!(merges::rebase))
        .routes(routes!(drafts::create_draft, drafts::delete_draft))
        .routes(routes!(deployments::list_deployments, deployments::create_deployment))
        .routes(routes!(procedures::list_procedures, procedures::create_procedure))
        .routes(routes!(procedures::compile_procedures))
        .routes(routes!(procedures::get_procedure, procedures::remove_procedure))
        .routes(routes!(procedures::get_draft, procedures::update_draft, procedures::delete_draft))
        .merge(media_router())
}

/// The media uploads, with room for their files, and where the files are served.
fn media_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(media::post_agent_avatar))
        .routes(routes!(media::post_agent_hold_audio, media::delete_agent_hold_audio))
        .route("/media/agents/{agent_id}/{kind}/{id}", axum::routing::get(media::get_media))
        .layer(media::body_limit())
}
