//! Searching the workspace's transcripts: by words (`text-search`, the store's full-text
//! index, every filter of the reference) and by meaning (`smart-search`, the messages'
//! vectors where an embedding provider is configured). Without a provider, or when it fails,
//! `smart-search` answers from the full-text index instead, and says so in the
//! `x-colloquy-search-mode` header (`semantic` or `lexical`) and by filling
//! `chunk_highlights`, which the reference fills only for a search by words.

use axum::extract::RawQuery;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use colloquy_core::cursor::{Direction, PageSizeRule};
use colloquy_core::validation::Violation;
use colloquy_engine::knowledge::messages::{self, NearestError};
use colloquy_store::{MessageHit, MessageSearch};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query, empty_as_none};
use crate::paging::Pager;
use crate::state::AppState;

/// The search routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(text_search)).routes(routes!(smart_search))
}

/// A search page: 1 to 50, 20 unless asked.
const SEARCH_PAGE: PageSizeRule = PageSizeRule { min: 1, max: 50, default: 20 };
/// Words a query may hold.
const MAX_QUERY_WORDS: usize = 32;

/// `sort_by` of the text search.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SearchSort {
    #[default]
    SearchScore,
    CreatedAt,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SearchParams {
    /// The words to find (required).
    text_query: Option<String>,
    /// Only this agent's conversations.
    agent_id: Option<String>,
    /// In which one of these agents spoke (repeat the parameter; at most 50).
    #[serde(default)]
    visited_agent_ids: Vec<String>,
    /// In which an agent of one of these branches spoke (at most 50).
    #[serde(default)]
    visited_agent_branch_ids: Vec<String>,
    /// Whose main language is one of these (`en`, `fr`, ...).
    #[serde(default)]
    main_languages: Vec<String>,
    /// Text-only conversations, or only those with voice.
    text_only: Option<bool>,
    /// Started from this client (`source_info.source` of the initiation data: `python_sdk`,
    /// `js_sdk`, `widget`, ...).
    conversation_initiation_source: Option<String>,
    /// `success`, `failure` or `unknown`.
    call_successful: Option<String>,
    /// Started before this unix second.
    call_start_before_unix: Option<i64>,
    /// Started after this unix second.
    call_start_after_unix: Option<i64>,
    /// Only this end user's conversations.
    user_id: Option<String>,
    /// Only this branch's conversations.
    branch_id: Option<String>,
    /// Only this version's conversations.
    version_id: Option<String>,
    /// Lasting at least this many seconds.
    call_duration_min_secs: Option<i64>,
    /// Lasting at most this many seconds.
    call_duration_max_secs: Option<i64>,
    /// Not in these statuses (repeat the parameter).
    #[serde(default)]
    exclude_statuses: Vec<String>,
    /// Ended for one of these reasons (repeat the parameter).
    #[serde(default)]
    termination_reasons: Vec<String>,
    /// That called one of these tools (repeat the parameter).
    #[serde(default)]
    tool_names: Vec<String>,
    /// That called one of these tools successfully.
    #[serde(default)]
    tool_names_successful: Vec<String>,
    /// That called one of these tools and it failed.
    #[serde(default)]
    tool_names_errored: Vec<String>,
    /// That called one of these tools, by id (repeat the parameter).
    #[serde(default)]
    tool_ids: Vec<String>,
    /// That called one of these tools successfully, by id.
    #[serde(default)]
    tool_ids_successful: Vec<String>,
    /// That called one of these tools and it failed, by id.
    #[serde(default)]
    tool_ids_errored: Vec<String>,
    /// 1..=50, default 20.
    page_size: Option<i64>,
    /// `search_score` (default) or `created_at` (newest conversations first).
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(value_type = Option<String>)]
    sort_by: Option<SearchSort>,
    /// From the previous page.
    cursor: Option<String>,
}

/// The words of a required `text_query`: a 422 when it is missing or has none.
fn query_words(query: Option<&str>) -> ApiResult<Vec<String>> {
    let Some(query) = query else {
        return Err(ApiError::invalid(Violation::new(
            ["query", "text_query"],
            "missing",
            "Field required",
        )));
    };
    let words = words(query);
    if words.is_empty() {
        return Err(ApiError::invalid(Violation::new(
            ["query", "text_query"],
            "string_too_short",
            "text_query needs at least one word",
        )));
    }
    Ok(words)
}

/// Filters of the reference this server cannot apply: Colloquy keeps no ratings or feedback
/// comments, and its analyses, procedures and topics are not indexed for them. Refused rather
/// than ignored, so no one reads an unfiltered page as a filtered one.
const UNSUPPORTED_FILTERS: [&str; 8] = [
    "rating_min",
    "rating_max",
    "has_feedback_comment",
    "evaluation_params",
    "data_collection_params",
    "dynamic_variable_params",
    "triggered_procedure_ids",
    "topic_ids",
];

fn refuse_unsupported(raw: Option<&str>) -> ApiResult<()> {
    let given = raw.into_iter().flat_map(|q| q.split('&')).filter_map(|p| p.split('=').next());
    for name in given {
        if let Some(name) = UNSUPPORTED_FILTERS.iter().find(|f| **f == name) {
            return Err(ApiError::invalid(Violation::new(
                ["query", name],
                "not_supported",
                format!("This server cannot filter transcripts by {name}"),
            )));
        }
    }
    Ok(())
}

/// A list filter of at most 50 values, as the reference allows.
fn at_most_50(name: &str, values: Vec<String>) -> ApiResult<Vec<String>> {
    if values.len() > 50 {
        return Err(ApiError::invalid(Violation::new(
            ["query", name],
            "too_long",
            "List should have at most 50 items",
        )));
    }
    Ok(values)
}

/// The query's words: letters and digits, lower case.
fn words(query: &str) -> Vec<String> {
    query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .take(MAX_QUERY_WORDS)
        .collect()
}

/// `text` cut into runs that match one of `words` (a word, or a longer form of it: the
/// index stems) and runs that do not.
fn highlights(text: &str, words: &[String]) -> Vec<Value> {
    let mut segments: Vec<(String, bool)> = Vec::new();
    let mut push = |piece: &str, hit: bool| match segments.last_mut() {
        Some((last, was)) if *was == hit => last.push_str(piece),
        _ => segments.push((piece.to_owned(), hit)),
    };
    let mut rest = text;
    while !rest.is_empty() {
        let start = rest.find(char::is_alphanumeric).unwrap_or(rest.len());
        push(&rest[..start], false);
        rest = &rest[start..];
        let end = rest.find(|c: char| !c.is_alphanumeric()).unwrap_or(rest.len());
        if end > 0 {
            let word = rest[..end].to_lowercase();
            let hit =
                words.iter().any(|w| word == *w || (w.len() >= 3 && word.starts_with(w.as_str())));
            push(&rest[..end], hit);
        }
        rest = &rest[end..];
    }
    segments.into_iter().map(|(value, is_hit)| json!({"value": value, "is_hit": is_hit})).collect()
}

/// A result; `words` highlighted where the search was by words.
fn hit_view(hit: &MessageHit, words: Option<&[String]>) -> Value {
    json!({
        "conversation_id": hit.conversation_id,
        "agent_id": hit.agent_id,
        "agent_name": hit.agent_name,
        "transcript_index": hit.transcript_index,
        "chunk_text": hit.message,
        "chunk_highlights": words.map(|w| highlights(&hit.message, w)),
        "score": hit.score,
        "conversation_start_time_unix_secs": hit.started_at,
    })
}

#[utoipa::path(get, path = "/v1/convai/conversations/messages/text-search", params(SearchParams), security(("api_key" = ["conversations:read"])))]
async fn text_search(
    cx: Ctx, RawQuery(raw): RawQuery, Query(params): Query<SearchParams>,
) -> ApiResult<Json<Value>> {
    refuse_unsupported(raw.as_deref())?;
    let words = query_words(params.text_query.as_deref())?;
    let sort = params.sort_by.unwrap_or_default();
    let given = |v: Option<String>| v.filter(|s| !s.is_empty());
    let lists = |v: Vec<String>| v.into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>();
    let tool_names = [
        lists(params.tool_names),
        lists(params.tool_names_successful),
        lists(params.tool_names_errored),
    ];
    let tool_ids =
        [lists(params.tool_ids), lists(params.tool_ids_successful), lists(params.tool_ids_errored)];
    let (exclude_statuses, termination_reasons) =
        (lists(params.exclude_statuses), lists(params.termination_reasons));
    let visited_agents = at_most_50("visited_agent_ids", lists(params.visited_agent_ids))?;
    let visited_branches =
        at_most_50("visited_agent_branch_ids", lists(params.visited_agent_branch_ids))?;
    let languages = lists(params.main_languages);
    let filters = format!(
        "{:?}",
        (
            (&words, &params.agent_id, &params.call_successful, params.call_start_before_unix),
            (params.call_start_after_unix, &params.user_id, &params.branch_id, sort),
            (&params.version_id, params.call_duration_min_secs, params.call_duration_max_secs),
            (&exclude_statuses, &termination_reasons, &tool_names, &tool_ids),
            (&visited_agents, &visited_branches, &languages, params.text_only),
            &params.conversation_initiation_source,
        )
    );
    // The cursor holds how many results the earlier pages showed.
    let pager = Pager::new(
        SEARCH_PAGE,
        params.page_size,
        params.cursor.as_deref(),
        "offset",
        Direction::Asc,
        &[&filters],
    )?;
    let offset = pager.after::<i64>()?.map_or(0, |(n, _)| n);
    let search = MessageSearch {
        words: words.clone(),
        agent_id: given(params.agent_id),
        call_successful: given(params.call_successful),
        before: params.call_start_before_unix,
        after: params.call_start_after_unix,
        user_id: given(params.user_id),
        branch_id: given(params.branch_id),
        version_id: given(params.version_id),
        min_duration: params.call_duration_min_secs,
        max_duration: params.call_duration_max_secs,
        exclude_statuses,
        termination_reasons,
        tool_names,
        tool_ids,
        visited_agents,
        visited_branches,
        languages,
        text_only: params.text_only,
        initiation_source: given(params.conversation_initiation_source),
        by_start: sort == SearchSort::CreatedAt,
        offset: u32::try_from(offset.max(0)).unwrap_or(u32::MAX),
        limit: pager.fetch(),
    };
    let hits = cx.app.store.search_messages(&cx.workspace_id, &search).await?;
    let has_more = hits.len() > pager.limit() as usize;
    let shown: Vec<Value> =
        hits.iter().take(pager.limit() as usize).map(|h| hit_view(h, Some(&words))).collect();
    let next_offset = offset + shown.len() as i64;
    let next_cursor = has_more.then(|| pager.next_cursor(json!(next_offset), ""));
    let page = offset / i64::from(pager.limit().max(1)) + 1;
    Ok(Json(json!({
        "meta": {"total": null, "page": page, "page_size": pager.limit()},
        "results": shown,
        "next_cursor": next_cursor,
        "has_more": has_more,
    })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SmartSearchParams {
    /// What to find, by meaning (required).
    text_query: Option<String>,
    /// Only this agent's conversations.
    agent_id: Option<String>,
    /// Only this branch's conversations (the Python SDK sends it).
    branch_id: Option<String>,
    /// 1..=50, default 20.
    page_size: Option<i64>,
    /// From the previous page.
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/convai/conversations/messages/smart-search", params(SmartSearchParams), security(("api_key" = ["conversations:read"])))]
async fn smart_search(cx: Ctx, Query(params): Query<SmartSearchParams>) -> ApiResult<Response> {
    let words = query_words(params.text_query.as_deref())?;
    let query = params.text_query.unwrap_or_default();
    let agent_id = params.agent_id.filter(|a| !a.is_empty());
    let branch_id = params.branch_id.filter(|b| !b.is_empty());
    let pager = Pager::new(
        SEARCH_PAGE,
        params.page_size,
        params.cursor.as_deref(),
        "offset",
        Direction::Asc,
        &[&format!("{:?}", (&query, &agent_id, &branch_id))],
    )?;
    let offset = pager.after::<i64>()?.map_or(0, |(n, _)| n.max(0));
    let skip = usize::try_from(offset).unwrap_or(usize::MAX);
    let mut search =
        MessageSearch { words: words.clone(), agent_id, branch_id, ..MessageSearch::default() };
    let keep = skip.saturating_add(pager.fetch() as usize);
    let (hits, semantic) =
        match messages::nearest(&cx.app.engine, &cx.workspace_id, &search, &query, keep).await {
            Ok(hits) => (hits.into_iter().skip(skip).collect::<Vec<_>>(), true),
            Err(NearestError::Store(e)) => return Err(e.into()),
            Err(e) => {
                if let NearestError::Provider(e) = e {
                    tracing::warn!(error = %e, "smart search falls back to words");
                }
                search.offset = u32::try_from(offset).unwrap_or(u32::MAX);
                search.limit = pager.fetch();
                (cx.app.store.search_messages(&cx.workspace_id, &search).await?, false)
            }
        };
    let has_more = hits.len() > pager.limit() as usize;
    let highlighted = (!semantic).then_some(words.as_slice());
    let shown: Vec<Value> =
        hits.iter().take(pager.limit() as usize).map(|h| hit_view(h, highlighted)).collect();
    let next_cursor = has_more.then(|| pager.next_cursor(json!(offset + shown.len() as i64), ""));
    let page = offset / i64::from(pager.limit().max(1)) + 1;
    let mut response = Json(json!({
        "meta": {"total": null, "page": page, "page_size": pager.limit()},
        "results": shown,
        "next_cursor": next_cursor,
        "has_more": has_more,
    }))
    .into_response();
    let mode = HeaderValue::from_static(if semantic { "semantic" } else { "lexical" });
    response.headers_mut().insert("x-colloquy-search-mode", mode);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highlights_mark_the_query_words() {
        let words = words("Refund order");
        let segments = highlights("I want a refund for my orders, please.", &words);
        let hits: Vec<&str> = segments
            .iter()
            .filter(|s| s["is_hit"] == true)
            .filter_map(|s| s["value"].as_str())
            .collect();
        assert_eq!(hits, ["refund", "orders"]);
        let whole: String = segments.iter().filter_map(|s| s["value"].as_str()).collect();
        assert_eq!(whole, "I want a refund for my orders, please.");
        assert!(super::words("  ,;  ").is_empty());
    }
}
