//! `transfer_to_agent` in live conversations: the conversation moves to the target agent (its
//! prompt and tools) keeping its id, history and variables; the transcript, `visited_agents`
//! and the audit log show the hand-over; a target that needs a variable nobody gave ends the
//! conversation with `missing_dynamic_variable_transfer`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::fakes::{FakeLlm, Webhook, call, is_analysis, text, with_llm};
use crate::helpers::{Backend, TestApp, dual_db, ended_conversation};
use crate::tools::create_tool;
use crate::ws::{self, next, next_of, open, say, turn};

async fn agent(app: &TestApp, body: Value) -> String {
    let (s, b) = app.post("/v1/convai/agents/create", &app.admin_key, &body).await;
    assert_eq!(s, 200, "{b}");
    b["agent_id"].as_str().unwrap().to_owned()
}

/// The reception desk hands billing questions to billing (which answers at once), greetings
/// to a greeter (which opens with its first message), and audits to an agent that needs an
/// `account` variable.
fn script(req: &Value) -> crate::fakes::Reply {
    if is_analysis(req) {
        return text("{}");
    }
    let msgs = req["messages"].as_array().unwrap();
    let system = msgs[0]["content"].as_str().unwrap_or_default();
    let last = msgs.last().unwrap();
    if system.contains("A customer with a billing question") {
        return text("billing please");
    }
    if system.starts_with("You are reception") {
        return match last["content"].as_str().unwrap_or_default() {
            "billing please" => {
                call("transfer_to_agent", json!({"agent_number": 0, "reason": "billing"}))
            }
            "say hello" => call("transfer_to_agent", json!({"agent_number": 1})),
            "audit me" => call("transfer_to_agent", json!({"agent_number": 2})),
            other => text(&format!("Reception heard {other}")),
        };
    }
    if system.starts_with("You are billing for Ada") {
        if last["role"] == "tool" {
            return text(&format!("Your invoice: {}", last["content"].as_str().unwrap()));
        }
        return match last["content"].as_str().unwrap_or_default() {
            "my invoice" => call("get_invoice", json!({})),
            _ => text("Billing here, Ada."),
        };
    }
    text(&format!("unexpected system prompt {system:?}"))
}

async fn a_transfer_moves_the_conversation_to_the_target_agent(backend: Backend) {
    let llm = FakeLlm::openai(script).await;
    let app = TestApp::spawn_with(backend, with_llm(&llm)).await;
    let key = &app.admin_key;
    let hook = Webhook::start(200, r#"{"amount":42}"#, Duration::ZERO).await;
    let invoice = create_tool(
        &app,
        key,
        json!({"tool_config": {"type": "webhook", "name": "get_invoice", "description": "Invoice",
        "api_schema": {"url": format!("{}/invoice", hook.base), "method": "GET"}}}),
    )
    .await;
    let billing = agent(&app, json!({"name": "Billing", "conversation_config": {"agent": {
        "prompt": {"prompt": "You are billing for {{customer}}.", "llm": "gpt-4o", "tool_ids": [invoice]}}}})).await;
    let greeter = agent(
        &app,
        json!({"name": "Greeter", "conversation_config": {"agent": {
        "first_message": "Hello {{customer}}, greeter here.",
        "prompt": {"prompt": "You are the greeter.", "llm": "gpt-4o"}}}}),
    )
    .await;
    let auditor = agent(
        &app,
        json!({"name": "Auditor", "conversation_config": {"agent": {
        "prompt": {"prompt": "You audit account {{account}}.", "llm": "gpt-4o"}}}}),
    )
    .await;
    let transfers = json!([
        {"agent_id": billing, "condition": "billing questions", "transfer_message": "Transferring you to billing, {{customer}}."},
        {"agent_id": greeter, "condition": "greetings", "enable_transferred_agent_first_message": true},
        {"agent_id": auditor, "condition": "audits"},
    ]);
    let reception = agent(&app, json!({"name": "Reception", "conversation_config": {"agent": {
        "prompt": {"prompt": "You are reception.", "llm": "gpt-4o", "built_in_tools": {"transfer_to_agent": {
            "name": "transfer_to_agent", "description": "Transfer", "params": {"system_tool_type": "transfer_to_agent", "transfers": transfers}}}}}}})).await;
    let url = ws::url(&app.base, &format!("agent_id={reception}"));
    let data =
        || serde_json::from_value(json!({"dynamic_variables": {"customer": "Ada"}})).unwrap();

    let (mut socket, conversation_id) = open(&url, data()).await;
    let events = turn(&mut socket, "billing please").await;
    let answer = events.last().unwrap()["agent_response_event"]["agent_response"].as_str().unwrap();
    assert_eq!(answer, "Transferring you to billing, Ada. Billing here, Ada.");
    let tool = events.iter().find(|e| e["type"] == "agent_tool_response").unwrap();
    assert_eq!(tool["agent_tool_response"]["tool_name"], "transfer_to_agent");
    assert_eq!(tool["agent_tool_response"]["is_error"], false);

    // The next request carries billing's prompt and tools, and the whole history.
    let after = llm.requests().into_iter().rfind(|r| !is_analysis(r)).unwrap();
    assert_eq!(after["messages"][0]["content"], "You are billing for Ada.");
    assert!(after["messages"].as_array().unwrap().iter().any(|m| m["content"] == "billing please"));
    let offered: Vec<&str> = after["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    assert_eq!(offered, ["get_invoice"]);
    let events = turn(&mut socket, "my invoice").await;
    assert_eq!(
        events.last().unwrap()["agent_response_event"]["agent_response"],
        r#"Your invoice: {"amount":42}"#
    );
    assert_eq!(hook.received().len(), 1, "billing's own tool ran");
    drop(socket);

    let got = ended_conversation(&app, &conversation_id).await;
    assert_eq!(got["agent_id"], reception.as_str(), "the conversation stays the reception's");
    let visited: Vec<&str> = got["visited_agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["agent_id"].as_str())
        .collect();
    assert_eq!(visited, [reception.as_str(), billing.as_str()]);
    let agents: Vec<&str> = got["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["role"] == "agent")
        .filter_map(|t| t["agent_metadata"]["agent_id"].as_str())
        .collect();
    assert_eq!(agents, [reception.as_str(), billing.as_str(), billing.as_str()]);
    let handed = got["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tool_calls"].as_array().is_some_and(|c| !c.is_empty()))
        .unwrap();
    let result: Value =
        serde_json::from_str(handed["tool_results"][0]["result_value"].as_str().unwrap()).unwrap();
    assert_eq!(result["result_type"], "transfer_to_agent_success");
    assert_eq!(result["to_agent"], billing.as_str());
    let (_, calls) = app.get(&format!("/api/tool-calls?executionId={conversation_id}"), key).await;
    let names: Vec<&str> =
        calls.as_array().unwrap().iter().filter_map(|c| c["toolName"].as_str()).collect();
    assert_eq!(names, ["transfer_to_agent", "get_invoice"]);

    // A simulated conversation transfers the same way.
    let body = json!({"simulation_specification": {"simulated_user_config": {
        "prompt": {"prompt": "A customer with a billing question", "llm": "gpt-4o"}},
        "dynamic_variables": {"customer": "Ada"}}, "new_turns_limit": 2});
    let (s, sim) =
        app.post(&format!("/v1/convai/agents/{reception}/simulate-conversation"), key, &body).await;
    assert_eq!(s, 200, "{sim}");
    let spoke: Vec<&str> = sim["simulated_conversation"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["role"] == "agent")
        .filter_map(|t| t["agent_metadata"]["agent_id"].as_str())
        .collect();
    assert!(spoke.contains(&billing.as_str()), "billing took over in the simulation: {sim}");

    // A transfer that asks for the new agent's first message opens with it.
    let (mut socket, _) = open(&url, data()).await;
    let events = turn(&mut socket, "say hello").await;
    assert_eq!(
        events.last().unwrap()["agent_response_event"]["agent_response"],
        "Hello Ada, greeter here."
    );
    drop(socket);

    // A target needing a variable nobody gave ends the conversation with the contract's error.
    let (mut socket, _) = open(&url, data()).await;
    say(&mut socket, "audit me").await;
    let error = next_of(&mut socket, "error").await;
    assert_eq!(error["error_event"]["error_type"], "missing_dynamic_variable_transfer", "{error}");
    assert_eq!(error["error_event"]["code"], 1008);
    assert!(error["error_event"]["message"].as_str().unwrap().contains("account"), "{error}");
    loop {
        let v = next(&mut socket).await;
        if let Some(code) = v.get("close") {
            assert_eq!(code, 1008, "{v}");
            break;
        }
    }
}
dual_db!(a_transfer_moves_the_conversation_to_the_target_agent);
