//! `GET /v1/convai/test-invocations`: the workspace's invocations, newest first, with the
//! reference's page numbering (`meta`).

use colloquy_core::cursor::Direction;
use colloquy_core::ids::{AgentId, TestId};
use colloquy_store::InvocationFilter;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use super::view;
use crate::auth::Ctx;
use crate::error::ApiResult;
use crate::extract::{Json, Query};
use crate::paging::{PageSizeRule, Pager};
use crate::routes::access::created_by;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListParams {
    /// Only this agent's invocations.
    agent_id: Option<String>,
    /// Only on this branch.
    branch_id: Option<String>,
    /// Only those that ran this test.
    test_id: Option<String>,
    /// Only started by this user; `@me` is the cx.
    created_by_user_id: Option<String>,
    /// Substring of the name or of a test's name.
    search: Option<String>,
    /// Created at or after this unix second.
    start_time: Option<i64>,
    /// Created at or before this unix second.
    end_time: Option<i64>,
    /// Only those that judged this version.
    version_id: Option<String>,
    /// 1..=100, default 30.
    page_size: Option<i64>,
    /// From the previous page.
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/convai/test-invocations", params(ListParams), security(("api_key" = ["tests:read"])))]
pub(super) async fn list_invocations(
    cx: Ctx, Query(params): Query<ListParams>,
) -> ApiResult<Json<Value>> {
    let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let filter = InvocationFilter {
        agent_id: nonempty(params.agent_id).map(AgentId::from),
        branch_id: nonempty(params.branch_id),
        version_id: nonempty(params.version_id),
        test_id: nonempty(params.test_id).map(TestId::from),
        created_by: created_by(&cx, params.created_by_user_id.as_deref(), None),
        search: nonempty(params.search).map(|s| s.to_lowercase()),
        start: params.start_time,
        end: params.end_time,
    };
    let pager = Pager::new(
        PageSizeRule::STANDARD,
        params.page_size,
        params.cursor.as_deref(),
        "created_at",
        Direction::Desc,
        &[&format!("{filter:?}")],
    )?;
    let after = pager.after::<i64>()?;
    let total = cx.app.store.count_invocations(&cx.workspace_id, &filter, None).await?;
    let before = match &after {
        Some(position) => {
            cx.app
                .store
                .count_invocations(&cx.workspace_id, &filter, Some(position.clone()))
                .await?
        }
        None => 0,
    };
    let rows =
        cx.app.store.list_invocations(&cx.workspace_id, &filter, after, pager.fetch()).await?;
    let page = pager.page(rows, |inv| (inv.created_at, inv.id.as_str()));
    let mut results = Vec::with_capacity(page.items.len());
    for inv in &page.items {
        results.push(view::summary(&cx, inv).await?);
    }
    let limit = i64::from(pager.limit());
    Ok(Json(json!({
        "meta": {"total": total, "page": before / limit + 1, "page_size": limit},
        "results": results,
        "next_cursor": page.next_cursor,
        "has_more": page.has_more,
    })))
}
