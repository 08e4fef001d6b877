//! `GET /v1/convai/agents/{agent_id}/topics`: the agent's analysed conversations grouped into
//! topics (`colloquy_engine::topics`), with each topic's evaluation results. The reference runs
//! topic discovery once a day; Colloquy groups when asked, over whole UTC days as the
//! reference's runs cover: with no window, the last day that has an analysed conversation;
//! with one, every such day in it (`aggregated_run_count`). Colloquy scores no sentiment, so
//! `sentiment` is null and sorting by it or by frustration keeps the volume order.

use std::collections::BTreeMap;

use axum::extract::Path;
use colloquy_core::cursor::{Direction, PageSizeRule};
use colloquy_core::ids::AgentId;
use colloquy_core::time;
use colloquy_engine::topics::{self, Topic};
use colloquy_store::AnalysedConversation;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Ctx;
use crate::error::ApiResult;
use crate::extract::{Json, Query, empty_as_none};
use crate::paging::Pager;
use crate::state::AppState;

/// The topics route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(agent_topics))
}

/// Topics per page: 1 to 100, all of them (up to 100) unless asked.
const TOPICS_PAGE: PageSizeRule = PageSizeRule { min: 1, max: 100, default: 100 };
/// The most conversations one grouping reads, newest first.
const MAX_CONVERSATIONS: u32 = 5_000;
const DAY_SECS: i64 = 86_400;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum TopicSort {
    #[default]
    Conversations,
    Sentiment,
    SuccessRate,
    Frustration,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct TopicsParams {
    /// Topics per page, 1..=100.
    page_size: Option<i64>,
    /// `conversations` (default), `sentiment`, `success_rate` or `frustration`.
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(value_type = Option<String>)]
    sort_by: Option<TopicSort>,
    /// `desc` (default) or `asc`.
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(value_type = Option<String>)]
    sort_direction: Option<Direction>,
    /// Start of the window, floored to its UTC day.
    from_unix_secs: Option<i64>,
    /// End of the window.
    to_unix_secs: Option<i64>,
    /// Each topic's per-criterion results (default true).
    include_evaluation_criteria: Option<bool>,
    /// From the previous page.
    cursor: Option<String>,
}

/// A topic's evaluation results: per criterion, and the share of scored results that passed.
#[derive(Debug, Default)]
struct Scores {
    criteria: BTreeMap<String, [u32; 3]>,
}

impl Scores {
    fn add(&mut self, analysis: &Value) {
        let Some(results) = analysis["evaluation_criteria_results"].as_object() else { return };
        for (id, result) in results {
            let slot = match result["result"].as_str() {
                Some("success") => 0,
                Some("failure") => 1,
                _ => 2,
            };
            self.criteria.entry(id.clone()).or_default()[slot] += 1;
        }
    }

    fn success_rate(&self) -> Option<f64> {
        let (passed, scored) = self
            .criteria
            .values()
            .fold((0u32, 0u32), |(p, s), [ok, failed, _]| (p + ok, s + ok + failed));
        (scored > 0).then(|| f64::from(passed) / f64::from(scored))
    }

    fn view(&self) -> Vec<Value> {
        self.criteria
            .iter()
            .map(|(id, [ok, failed, unknown])| {
                json!({"criteria_id": id, "success_count": ok, "failure_count": failed, "unknown_count": unknown})
            })
            .collect()
    }
}

/// The title a conversation's analysis gives it, else its summary's first words.
fn title(analysis: &Value) -> String {
    if let Some(title) = analysis["call_summary_title"].as_str().filter(|t| !t.trim().is_empty()) {
        return title.trim().to_owned();
    }
    let summary = analysis["transcript_summary"].as_str().unwrap_or_default();
    summary.split_whitespace().take(8).collect::<Vec<_>>().join(" ")
}

/// The window `[start, end)` and the conversations in it.
async fn window(
    cx: &Ctx, agent_id: &str, from: Option<i64>, to: Option<i64>,
) -> ApiResult<(i64, i64, Vec<AnalysedConversation>)> {
    let store = &cx.app.store;
    let (start, end) = match (from, to) {
        (None, None) => {
            let last = store.last_analysed_start(&cx.workspace_id, agent_id).await?;
            let day = last.unwrap_or_else(time::now_secs).div_euclid(DAY_SECS) * DAY_SECS;
            (day, day + DAY_SECS)
        }
        (from, to) => {
            let end = to.unwrap_or_else(time::now_secs);
            let start = from.unwrap_or(end - 30 * DAY_SECS).div_euclid(DAY_SECS) * DAY_SECS;
            (start, end)
        }
    };
    let found = store
        .analysed_conversations(&cx.workspace_id, agent_id, start, end, MAX_CONVERSATIONS)
        .await?;
    Ok((start, end, found))
}

#[utoipa::path(get, path = "/v1/convai/agents/{agent_id}/topics", params(("agent_id" = String, Path), TopicsParams), security(("api_key" = ["conversations:read"])))]
async fn agent_topics(
    cx: Ctx, Path(agent_id): Path<String>, Query(params): Query<TopicsParams>,
) -> ApiResult<Json<Value>> {
    cx.agent(&AgentId::from(agent_id.clone())).await?;
    let sort = params.sort_by.unwrap_or_default();
    let direction = params.sort_direction.unwrap_or(Direction::Desc);
    let filters =
        format!("{:?}", (sort, direction, params.from_unix_secs, params.to_unix_secs, &agent_id));
    let pager = Pager::new(
        TOPICS_PAGE,
        params.page_size,
        params.cursor.as_deref(),
        "offset",
        Direction::Asc,
        &[&filters],
    )?;
    let offset = usize::try_from(pager.after::<i64>()?.map_or(0, |(n, _)| n)).unwrap_or(0);
    let (start, end, found) =
        window(&cx, &agent_id, params.from_unix_secs, params.to_unix_secs).await?;
    let analyses: Vec<Value> =
        found.iter().map(|c| serde_json::from_str(&c.analysis).unwrap_or(Value::Null)).collect();
    let titles: Vec<String> = analyses.iter().map(title).collect();
    let grouped = topics::group(&cx.app.engine, &agent_id, &titles).await;
    let mut ranked: Vec<(Topic, Scores)> = grouped
        .into_iter()
        .map(|topic| {
            let mut scores = Scores::default();
            for &i in &topic.members {
                scores.add(&analyses[i]);
            }
            (topic, scores)
        })
        .collect();
    if sort == TopicSort::SuccessRate {
        // Unscored topics last whichever the direction; the volume order otherwise stays.
        ranked.sort_by(|a, b| match (a.1.success_rate(), b.1.success_rate()) {
            (Some(x), Some(y)) if direction == Direction::Asc => x.total_cmp(&y),
            (Some(x), Some(y)) => y.total_cmp(&x),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
    } else if sort == TopicSort::Conversations && direction == Direction::Asc {
        ranked.reverse();
    }
    let include_criteria = params.include_evaluation_criteria.unwrap_or(true);
    let runs = {
        let mut days: Vec<i64> = found.iter().map(|c| c.started_at.div_euclid(DAY_SECS)).collect();
        days.dedup();
        days.len()
    };
    let has_more = ranked.len() > offset + pager.limit() as usize;
    let shown: Vec<Value> = ranked
        .iter()
        .skip(offset)
        .take(pager.limit() as usize)
        .map(|(topic, scores)| topic_view(topic, scores, include_criteria))
        .collect();
    let next_cursor = has_more.then(|| pager.next_cursor(json!(offset + shown.len()), ""));
    Ok(Json(json!({
        "topics": shown,
        "window_start_unix_secs": start,
        "window_end_unix_secs": end,
        "aggregated_run_count": runs,
        "has_more": has_more,
        "next_cursor": next_cursor,
    })))
}

fn topic_view(topic: &Topic, scores: &Scores, include_criteria: bool) -> Value {
    let mut metrics = json!({"conversation_count": topic.members.len(), "sentiment": null});
    if include_criteria {
        metrics["evaluation_criteria"] = json!(scores.view());
    }
    json!({
        "topic_id": topic.id,
        "label": topic.label,
        "description": topic.description,
        "conversation_count": topic.members.len(),
        "parent_topic_id": null,
        "x_2d": null,
        "y_2d": null,
        "metrics": metrics,
        "success_rate": scores.success_rate(),
    })
}
