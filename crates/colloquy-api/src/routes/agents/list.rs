//! The agents list and summaries by id.

use axum::response::IntoResponse;
use colloquy_core::agents::AgentSort;
use colloquy_core::cursor::Direction;
use colloquy_core::ids::AgentId;
use colloquy_core::validation::Violation;
use colloquy_store::{AgentFilter, AgentPage, AgentSummary, SummarySink};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::IntoParams;

use super::view;
use crate::auth::{Caller, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query, empty_as_none, json_text};
use crate::paging::{PageSizeRule, Pager};
use crate::routes::access::created_by;

/// About the size of one list item as JSON.
const SUMMARY_BYTES: usize = 400;

/// Most ids `summaries` accepts at once.
const MAX_SUMMARY_IDS: usize = 100;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListParams {
    /// 1..=100, default 30.
    page_size: Option<i64>,
    /// Case-insensitive substring of the name.
    search: Option<String>,
    /// Archived agents instead of active ones (default false).
    archived: Option<bool>,
    /// Only the caller's agents (deprecated; `created_by_user_id=@me` is the same).
    show_only_owned_agents: Option<bool>,
    /// Only agents created by this user; `@me` is the cx.
    created_by_user_id: Option<String>,
    /// Any of these tags (repeat the parameter).
    #[serde(default)]
    tags: Vec<String>,
    /// `asc` or `desc` (default).
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(value_type = Option<String>)]
    sort_direction: Option<Direction>,
    /// `name`, `created_at` (default), `updated_at` or `call_count_7d`.
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(value_type = Option<String>)]
    sort_by: Option<AgentSort>,
    /// From the previous page.
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/convai/agents", params(ListParams), security(("api_key" = ["agents:read"])))]
pub(super) async fn list_agents(
    cx: Ctx, Query(params): Query<ListParams>,
) -> ApiResult<impl IntoResponse> {
    let sort = params.sort_by.unwrap_or_default();
    let direction = params.sort_direction.unwrap_or_default();
    let mut tags: Vec<String> = params.tags.into_iter().filter(|t| !t.is_empty()).collect();
    tags.sort();
    tags.dedup();
    let filter = AgentFilter {
        search: params.search.as_deref().filter(|s| !s.is_empty()).map(str::to_lowercase),
        archived: params.archived.unwrap_or(false),
        created_by: created_by(
            &cx,
            params.created_by_user_id.as_deref(),
            params.show_only_owned_agents,
        ),
        tags,
    };
    let pager = Pager::new(
        PageSizeRule::STANDARD,
        params.page_size,
        params.cursor.as_deref(),
        sort.as_str(),
        direction,
        &[
            filter.search.as_deref().unwrap_or(""),
            if filter.archived { "1" } else { "0" },
            filter.created_by.as_deref().unwrap_or(""),
            &filter.tags.join("\u{0}"),
        ],
    )?;
    let page = AgentPage {
        sort,
        descending: direction == Direction::Desc,
        after: pager.after_value(sort == AgentSort::Name)?,
        limit: pager.fetch(),
    };
    let mut out = PageWriter::new(&cx, sort, pager.limit() as usize);
    cx.app.store.list_agents(&cx.workspace_id, &filter, &page, &mut out).await?;
    Ok(json_text(out.finish(&pager)?))
}

/// `GetAgentsPageResponseModel`, written as the store reads the page: its rows are borrowed
/// from the database only until the next one is read. The store is asked for one row more
/// than the page holds, which only says whether there is more.
struct PageWriter<'c> {
    items: view::SummaryWriter<'c>,
    body: Vec<u8>,
    limit: usize,
    written: usize,
    has_more: bool,
    sort: AgentSort,
    /// The last item's id and sort value, for the next page's cursor.
    last_id: String,
    last_name: String,
    last_number: i64,
    failed: Option<serde_json::Error>,
}

const PAGE_START: &[u8] = b"{\"agents\":[";

impl<'c> PageWriter<'c> {
    fn new(caller: &'c Caller, sort: AgentSort, limit: usize) -> PageWriter<'c> {
        let mut body = Vec::with_capacity(64 + SUMMARY_BYTES * limit);
        body.extend_from_slice(PAGE_START);
        PageWriter {
            items: view::SummaryWriter::new(caller),
            body,
            limit,
            written: 0,
            has_more: false,
            sort,
            last_id: String::new(),
            last_name: String::new(),
            last_number: 0,
            failed: None,
        }
    }

    fn finish(mut self, pager: &Pager) -> ApiResult<Vec<u8>> {
        if let Some(e) = self.failed {
            return Err(ApiError::Internal(e.into()));
        }
        let next_cursor = (self.has_more && self.written > 0).then(|| {
            let value = match self.sort {
                AgentSort::Name => json!(self.last_name),
                _ => json!(self.last_number),
            };
            pager.next_cursor(value, &self.last_id)
        });
        self.body.extend_from_slice(b"],\"next_cursor\":");
        serde_json::to_writer(&mut self.body, &next_cursor)?;
        self.body.extend_from_slice(if self.has_more {
            b",\"has_more\":true}"
        } else {
            b",\"has_more\":false}"
        });
        Ok(self.body)
    }
}

impl SummarySink for PageWriter<'_> {
    fn row(&mut self, row: &AgentSummary<'_>) {
        if self.failed.is_some() {
            return;
        }
        if self.written == self.limit {
            self.has_more = true;
            return;
        }
        if let Err(e) = self.items.write(&mut self.body, row) {
            self.failed = Some(e);
            return;
        }
        self.written += 1;
        self.last_id.clear();
        self.last_id.push_str(row.id);
        match self.sort {
            AgentSort::Name => {
                self.last_name.clear();
                self.last_name.push_str(row.name);
            }
            AgentSort::CreatedAt => self.last_number = row.created_at,
            AgentSort::UpdatedAt => self.last_number = row.updated_at,
            AgentSort::CallCount7d => self.last_number = row.call_count_7d,
        }
    }

    fn restart(&mut self) {
        self.body.truncate(PAGE_START.len());
        self.items.restart();
        self.written = 0;
        self.has_more = false;
        self.failed = None;
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct SummaryParams {
    /// Up to 100 agent ids (repeat the parameter).
    #[serde(default)]
    #[param(value_type = Vec<String>)]
    agent_ids: Vec<AgentId>,
}

#[utoipa::path(get, path = "/v1/convai/agents/summaries", params(SummaryParams), security(("api_key" = ["agents:read"])))]
pub(super) async fn get_agent_summaries(
    cx: Ctx, Query(params): Query<SummaryParams>,
) -> ApiResult<Json<Value>> {
    if params.agent_ids.is_empty() {
        return Err(ApiError::invalid(Violation::new(
            ["query", "agent_ids"],
            "missing",
            "Field required",
        )));
    }
    if params.agent_ids.len() > MAX_SUMMARY_IDS {
        return Err(ApiError::invalid(Violation::new(
            ["query", "agent_ids"],
            "too_long",
            format!(
                "List should have at most {MAX_SUMMARY_IDS} items after validation, not {}",
                params.agent_ids.len()
            ),
        )));
    }
    let rows = cx.app.store.get_agents(&cx.workspace_id, &params.agent_ids).await?;
    let mut out = Map::new();
    for id in &params.agent_ids {
        let entry = match rows.iter().find(|r| &r.id == id) {
            Some(row) => {
                json!({"status": "success", "data": view::summary(&row.as_summary(), &cx)})
            }
            None => json!({
                "status": "failure",
                "error_code": 404,
                "error_status": "agent_not_found",
                "error_message": format!("Agent {id} was not found."),
            }),
        };
        out.insert(id.to_string(), entry);
    }
    Ok(Json(Value::Object(out)))
}
