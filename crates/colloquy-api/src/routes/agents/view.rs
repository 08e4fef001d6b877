//! The wire views of an agent: the full `GetAgentResponseModel`, the list's
//! `AgentSummaryResponseModel`, and `ResourceAccessInfo`.

use colloquy_core::agents::AgentDoc;
use colloquy_store::{AgentAtRow, AgentRow, AgentSummary, AgentSummaryRow};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::routes::access::{AccessInfo, access_info};

/// `GetAgentResponseModel.default_hold_audio_url`'s declared default.
const DEFAULT_HOLD_AUDIO_URL: &str =
    "https://eleven-public-cdn-common.elevenlabs.io/convai/ambient-audio-assets/elevator1.mp3";

/// The list item of an agent (`AgentSummaryResponseModel`), borrowed from its row: a page
/// serializes thirty of them, and building a JSON tree for each first was a sixth of a list
/// request's CPU. `A` is the access info, typed or already written (see [`SummaryWriter`]).
#[derive(Debug, Serialize)]
pub struct Summary<'a, A> {
    agent_id: &'a str,
    name: &'a str,
    voice_id: &'a str,
    /// Stored as JSON text by the store, so passed through as it is.
    #[serde(serialize_with = "tags_text")]
    tags: &'a str,
    created_at_unix_secs: i64,
    access_info: A,
    last_call_time_unix_secs: Option<i64>,
    archived: bool,
}

/// Writes the stored tags text as it is (an empty list if it is not JSON).
fn tags_text<S: Serializer>(text: &&str, serializer: S) -> Result<S::Ok, S::Error> {
    match serde_json::from_str::<&RawValue>(text) {
        Ok(raw) => raw.serialize(serializer),
        Err(_) => serializer.collect_seq(std::iter::empty::<&str>()),
    }
}

fn summary_with<'a, A>(row: &AgentSummary<'a>, access_info: A) -> Summary<'a, A> {
    Summary {
        agent_id: row.id,
        name: row.name,
        voice_id: row.voice_id,
        tags: row.tags,
        created_at_unix_secs: row.created_at,
        access_info,
        last_call_time_unix_secs: row.last_call_time,
        archived: row.archived,
    }
}

/// The list item of an agent.
pub fn summary<'a>(row: &AgentSummary<'a>, caller: &Caller) -> Summary<'a, AccessInfo<'a>> {
    let access = access_info(row.created_by, row.creator_name, row.creator_email, caller);
    summary_with(row, access)
}

/// Writes list items as a comma-separated run of JSON objects. A page's agents mostly share
/// one creator, so each creator's access info is written once and copied after that (it was
/// a third of the cost of writing an item).
pub struct SummaryWriter<'c> {
    caller: &'c Caller,
    /// The previous item's creator.
    creator: Option<Creator>,
    items: usize,
}

/// A creator and the access info of what they made, as JSON.
struct Creator {
    id: String,
    name: String,
    email: String,
    access_info: Box<RawValue>,
}

impl Creator {
    fn of(row: &AgentSummary<'_>, caller: &Caller) -> serde_json::Result<Creator> {
        let access = access_info(row.created_by, row.creator_name, row.creator_email, caller);
        Ok(Creator {
            id: row.created_by.to_owned(),
            name: row.creator_name.to_owned(),
            email: row.creator_email.to_owned(),
            access_info: serde_json::value::to_raw_value(&access)?,
        })
    }

    fn made(&self, row: &AgentSummary<'_>) -> bool {
        self.id == row.created_by
            && self.name == row.creator_name
            && self.email == row.creator_email
    }
}

impl<'c> SummaryWriter<'c> {
    /// Items as `caller` sees them.
    pub fn new(caller: &'c Caller) -> SummaryWriter<'c> {
        SummaryWriter { caller, creator: None, items: 0 }
    }

    /// Appends `row` to `out`, after a comma unless it is the first item.
    pub fn write(&mut self, out: &mut Vec<u8>, row: &AgentSummary<'_>) -> serde_json::Result<()> {
        let creator = match self.creator.take() {
            Some(known) if known.made(row) => known,
            _ => Creator::of(row, self.caller)?,
        };
        let access = &self.creator.insert(creator).access_info;
        if self.items > 0 {
            out.push(b',');
        }
        self.items += 1;
        serde_json::to_writer(out, &summary_with(row, access))
    }

    /// Forgets the items written: the next is a first item again.
    pub fn restart(&mut self) {
        self.items = 0;
    }
}

/// The full agent as JSON text. The stored document is spliced in as text, so a GET does not
/// re-parse it; the document never holds the computed keys written here (they are stripped
/// on every write), so no key appears twice.
pub fn full(at: &AgentAtRow, caller: &Caller) -> Result<Vec<u8>, ApiError> {
    let row = &at.row;
    let head = FullHead {
        agent_id: row.summary.id.as_str(),
        name: &row.summary.name,
        metadata: Metadata {
            created_at_unix_secs: row.summary.created_at,
            updated_at_unix_secs: row.summary.updated_at,
        },
        phone_numbers: [],
        whatsapp_accounts: [],
        access_info: access_info(
            &row.summary.created_by,
            &row.summary.creator_name,
            &row.summary.creator_email,
            caller,
        ),
        tags: &row.summary.tags,
        version_id: &row.version_id,
        branch_id: &at.branch_id,
        main_branch_id: &row.main_branch_id,
        default_hold_audio_url: DEFAULT_HOLD_AUDIO_URL,
    };
    // The head's keys, ids and URL are some 600 bytes; a body that outgrew its first buffer
    // was copied whole into a new one (1.5 % of a GET's CPU under load).
    let head_bytes = 640
        + row.summary.name.len()
        + row.summary.creator_name.len()
        + row.summary.creator_email.len()
        + row.summary.tags.len();
    let mut out = Vec::with_capacity(head_bytes + row.document.len());
    serde_json::to_writer(&mut out, &head)?;
    let doc = row.document.trim();
    if let Some(rest) = doc.strip_prefix('{').map(str::trim_start)
        && !rest.starts_with('}')
    {
        out.pop();
        out.push(b',');
        out.extend_from_slice(rest.as_bytes());
    }
    Ok(out)
}

/// The computed keys of `GetAgentResponseModel`, ahead of the stored document's.
#[derive(Serialize)]
struct FullHead<'a> {
    agent_id: &'a str,
    name: &'a str,
    metadata: Metadata,
    phone_numbers: [(); 0],
    whatsapp_accounts: [(); 0],
    access_info: AccessInfo<'a>,
    #[serde(serialize_with = "tags_text")]
    tags: &'a str,
    version_id: &'a str,
    branch_id: &'a str,
    main_branch_id: &'a str,
    default_hold_audio_url: &'static str,
}

#[derive(Serialize)]
struct Metadata {
    created_at_unix_secs: i64,
    updated_at_unix_secs: i64,
}

/// The stored agent as a body a PATCH can merge into.
pub(crate) fn stored_doc(row: &AgentRow) -> Result<AgentDoc, ApiError> {
    let document: Map<String, Value> = serde_json::from_str(&row.document).map_err(|e| {
        ApiError::Internal(anyhow::anyhow!("agent {} document: {e}", row.summary.id))
    })?;
    let tags = serde_json::from_str(&row.summary.tags).unwrap_or_default();
    Ok(AgentDoc {
        name: row.summary.name.clone(),
        tags,
        archived: row.summary.archived,
        voice_id: row.summary.voice_id.clone(),
        document,
    })
}

/// `DependentAvailableAgentIdentifier`: an agent that uses a tool or an MCP server, as the
/// caller (with `role`) sees it.
pub fn dependent(agent: &AgentSummaryRow, role: &str) -> Value {
    json!({
        "type": "available",
        "id": agent.id,
        "name": agent.name,
        "created_at_unix_secs": agent.created_at,
        "access_level": role,
        "referenced_resource_ids": [],
    })
}
