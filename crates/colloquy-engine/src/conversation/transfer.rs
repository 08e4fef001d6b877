//! A transfer to another agent (`transfer_to_agent`), carried out once the turn that asked for
//! it is recorded: the new agent's configuration (prompt, tools, knowledge base, MCP servers)
//! replaces the old one in the same conversation, which keeps its id, history, transcript and
//! dynamic variables, and the new agent speaks: its first message when the transfer asks for
//! it, else its answer to the conversation so far.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{Conversation, mcp_instructions};
use crate::agent::{AgentSnapshot, Pick};
use crate::error::EngineError;
use crate::llm::Role;
use crate::mcp::ResolveIn;
use crate::mcp::pool::McpPool;
use crate::tools::transfer::Transfer;
use crate::turn::{self, TurnEvent, TurnResult, input};

/// Transfers one turn may chain (an agent that hands over at once to another, ...).
pub(super) const MAX_CHAINED: usize = 3;

impl Conversation {
    /// Hands the conversation to the transfer's agent and lets it speak.
    pub(super) async fn hand_over(
        &mut self, transfer: Transfer, events: Option<&mpsc::UnboundedSender<TurnEvent>>,
    ) -> Result<TurnResult, EngineError> {
        if transfer.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(transfer.delay_ms)).await;
        }
        let agent = self.load_target(&transfer).await?;
        let missing = self.state.missing_for(&agent);
        if !missing.is_empty() {
            return Err(EngineError::MissingDynamicVariablesTransfer(missing));
        }
        self.state.switch_agent(agent, &self.runtime.deps.configs);
        self.state.next_node = transfer.node_id.clone();
        self.connect_mcp_servers().await;
        if transfer.first_message
            && let Some(first) = self.state.first_message()
        {
            if let Some(tx) = events {
                let _ = tx.send(TurnEvent::Delta(first.clone()));
            }
            input::seed(&mut self.state, Role::Assistant, &first);
            return Ok(TurnResult { text: first, end_call: false, end_reason: None });
        }
        turn::run(&mut self.state, &self.runtime, events).await
    }

    /// The agent taking over, as its deployment picks it, in the conversation's environment.
    async fn load_target(&self, transfer: &Transfer) -> Result<AgentSnapshot, EngineError> {
        let deps = &self.runtime.deps;
        let current = &self.state.agent;
        let failed = |e: &dyn std::fmt::Display| {
            EngineError::Transfer(transfer.agent_id.to_string(), e.to_string())
        };
        let pick = Pick::Live { user_id: self.record.user_id() };
        let mut agent = AgentSnapshot::load(deps, &current.workspace_id, &transfer.agent_id, pick)
            .await
            .map_err(|e| failed(&e))?;
        agent.set_environment(deps, &current.environment).await.map_err(|e| failed(&e))?;
        Ok(agent)
    }

    /// Closes the previous agent's MCP connections and opens the new agent's.
    async fn connect_mcp_servers(&mut self) {
        if let Some(pool) = self.runtime.mcp.take() {
            pool.close().await;
        }
        self.mcp_status.clear();
        if self.state.agent.mcp_servers.is_empty() {
            return;
        }
        let state = &mut self.state;
        let within = ResolveIn { environment: &state.agent.environment, vars: &state.vars };
        let opened = McpPool::open(
            self.runtime.deps.clone(),
            &state.agent.workspace_id,
            &state.agent.mcp_servers,
            within,
        )
        .await;
        state.agent.offer_mcp_tools(&opened);
        state.mcp_instructions = mcp_instructions(&state.agent, &opened.instructions);
        self.mcp_status = opened.status;
        self.runtime.mcp = Some(Arc::new(opened.pool));
    }
}
