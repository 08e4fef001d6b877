//! Raising triage tickets about a conversation, by a reviewer (the API) or by the analysis (a
//! failed evaluation criterion, when the workspace's triage settings ask for it). A
//! conversation has at most one open ticket: raising another adds to it.

use colloquy_core::ids::{self, WorkspaceId};
use colloquy_core::time;
use colloquy_store::{ConversationRow, Store, StoreResult, TicketNoteRow, TicketRow};
use serde::Deserialize;
use serde_json::Value;

/// The name of the workspace's triage settings document (Colloquy's own, at
/// `/api/settings/triage`).
pub const TRIAGE_SETTINGS: &str = "triage";

/// The workspace's triage settings.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
pub struct TriageSettings {
    /// Open a ticket (or add to the conversation's open one) for every conversation whose
    /// analysis failed an evaluation criterion.
    #[serde(default)]
    pub auto_ticket_failed_evaluations: bool,
}

impl TriageSettings {
    /// The workspace's settings, the defaults when it never wrote them.
    pub async fn of(store: &dyn Store, workspace_id: &WorkspaceId) -> StoreResult<TriageSettings> {
        Ok(store
            .get_settings(workspace_id, TRIAGE_SETTINGS)
            .await?
            .and_then(|row| serde_json::from_str(&row.document).ok())
            .unwrap_or_default())
    }
}

/// The reference's priorities, least urgent first; a ticket's rank is its index plus one (0:
/// none).
pub const PRIORITIES: [&str; 4] = ["low", "medium", "high", "urgent"];

/// The sort rank of a priority.
pub fn priority_rank(priority: Option<&str>) -> i64 {
    priority
        .and_then(|p| PRIORITIES.iter().position(|known| *known == p))
        .map_or(0, |i| i64::try_from(i).unwrap_or(0) + 1)
}

/// A comment on one turn of the transcript, maybe pointing at a tool call of the conversation
/// (checked by the caller).
#[derive(Debug, Clone)]
pub struct TurnNote {
    /// Zero-based index into the transcript.
    pub turn_index: i64,
    /// What went wrong there.
    pub comment: String,
    /// The tool-call audit record it points at.
    pub tool_execution_id: Option<String>,
}

/// A finding about a conversation.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Who raises it.
    pub owner_user_id: String,
    /// `qa` (a reviewer) or `agent` (the analysis).
    pub source: &'static str,
    /// Headline; derived from the comments when missing.
    pub title: Option<String>,
    /// About the whole conversation.
    pub qa_comment: Option<String>,
    /// About single turns.
    pub turn_comments: Vec<TurnNote>,
    /// How urgent.
    pub priority: Option<String>,
}

/// The longest derived title, in characters.
const TITLE_CHARS: usize = 80;

/// A headline from the first line of `text`, cut at a word near [`TITLE_CHARS`].
pub fn derive_title(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default();
    if line.chars().count() <= TITLE_CHARS {
        return line.to_owned();
    }
    let cut: String = line.chars().take(TITLE_CHARS).collect();
    let at_word = cut.rfind(' ').filter(|at| *at > TITLE_CHARS / 2).unwrap_or(cut.len());
    format!("{}…", cut[..at_word].trim_end())
}

/// A new note on `ticket_id`.
pub fn note(ticket_id: &str, kind: &str, user_id: Option<&str>, position: usize) -> TicketNoteRow {
    TicketNoteRow {
        id: ids::new_id(ids::prefix::TICKET_NOTE),
        ticket_id: ticket_id.to_owned(),
        kind: kind.to_owned(),
        turn_index: None,
        text: None,
        tool_execution_id: None,
        user_id: user_id.map(str::to_owned),
        at_ms: time::now_ms(),
        position: i64::try_from(position).unwrap_or(i64::MAX),
    }
}

/// Raises `finding` about `conversation`: a new ticket, or more on the conversation's open one
/// (its comment becomes a ticket comment, its turn comments are added, its priority raises the
/// ticket's when higher; its title is not used).
pub async fn raise(
    store: &dyn Store, workspace_id: &WorkspaceId, conversation: &ConversationRow, finding: Finding,
) -> StoreResult<TicketRow> {
    let now = time::now_secs();
    let existing = store.open_ticket_of(workspace_id, conversation.id.as_str()).await?;
    let (mut ticket, fresh) = match existing {
        Some(t) => (t, false),
        None => (new_ticket(workspace_id, conversation, &finding, now), true),
    };
    let owner = Some(finding.owner_user_id.as_str());
    let mut notes = Vec::new();
    if !fresh && let Some(comment) = &finding.qa_comment {
        let mut n = note(&ticket.id, "comment", owner, notes.len());
        n.text = Some(comment.clone());
        notes.push(n);
    }
    for turn in &finding.turn_comments {
        let mut n = note(&ticket.id, "turn_comment", owner, notes.len());
        n.turn_index = Some(turn.turn_index);
        n.text = Some(turn.comment.clone());
        n.tool_execution_id.clone_from(&turn.tool_execution_id);
        notes.push(n);
    }
    let rank = priority_rank(finding.priority.as_deref());
    if rank > ticket.priority_rank {
        if !fresh {
            let mut n = note(&ticket.id, "priority", owner, notes.len());
            n.text.clone_from(&finding.priority);
            notes.push(n);
        }
        ticket.priority.clone_from(&finding.priority);
        ticket.priority_rank = rank;
    }
    ticket.updated_at = now;
    let conversations = [conversation.id.to_string()];
    if fresh {
        store.insert_ticket(&ticket, &conversations, &notes).await?;
    } else {
        ticket.first_seen = ticket.first_seen.map(|s| s.min(conversation.started_at));
        ticket.last_seen = ticket.last_seen.map(|s| s.max(conversation.started_at));
        store.update_ticket(&ticket, &conversations, &notes).await?;
    }
    Ok(ticket)
}

/// A ticket about `conversation` from its first finding.
fn new_ticket(
    workspace_id: &WorkspaceId, conversation: &ConversationRow, finding: &Finding, now: i64,
) -> TicketRow {
    let title = finding.title.clone().or_else(|| {
        let comment = finding.qa_comment.as_deref();
        let turn = finding.turn_comments.first().map(|t| t.comment.as_str());
        comment.or(turn).map(derive_title).or_else(|| summary_title(conversation))
    });
    TicketRow {
        id: ids::new_id(ids::prefix::TICKET),
        workspace_id: workspace_id.clone(),
        agent_id: conversation.agent_id.to_string(),
        owner_user_id: finding.owner_user_id.clone(),
        source: finding.source.to_owned(),
        title,
        qa_comment: finding.qa_comment.clone(),
        status: "open".into(),
        priority: None,
        priority_rank: 0,
        assignee_user_id: None,
        merged_into_ticket_id: None,
        first_seen: Some(conversation.started_at),
        last_seen: Some(conversation.started_at),
        created_at: now,
        updated_at: now,
        sort_key: 0,
    }
}

/// The conversation's analysed title, if it has one.
fn summary_title(conversation: &ConversationRow) -> Option<String> {
    let analysis: Value = serde_json::from_str(conversation.analysis.as_deref()?).ok()?;
    analysis["call_summary_title"].as_str().filter(|t| !t.is_empty()).map(str::to_owned)
}

/// After an analysis: when the workspace asks for it and a criterion failed, a ticket from the
/// analysis naming the failed criteria and their rationales.
pub async fn after_analysis(
    store: &dyn Store, workspace_id: &WorkspaceId, conversation: &ConversationRow, analysis: &Value,
) -> StoreResult<()> {
    let failed: Vec<String> = analysis["evaluation_criteria_results"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, r)| r["result"] == "failure")
        .map(|(id, r)| format!("{id}: {}", r["rationale"].as_str().unwrap_or("failed")))
        .collect();
    if failed.is_empty()
        || !TriageSettings::of(store, workspace_id).await?.auto_ticket_failed_evaluations
    {
        return Ok(());
    }
    let finding = Finding {
        owner_user_id: "agent".into(),
        source: "agent",
        title: Some(format!("Failed evaluation: {}", failed[0].split(':').next().unwrap_or(""))),
        qa_comment: Some(format!("The analysis failed these criteria:\n{}", failed.join("\n"))),
        turn_comments: Vec::new(),
        priority: None,
    };
    raise(store, workspace_id, conversation, finding).await.map(|_| ())
}
