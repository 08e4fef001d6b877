//! Workflows (`workflow`) walked in live conversations and agent tests: start → subagent →
//! (an `llm` edge the LLM takes) → tool node → (its result) → standalone agent, whose own
//! workflow ends the call; every turn's node in the transcript, every call in the audit log.
//! Graphs a conversation could not walk are refused at save with the path of the problem.

use std::time::Duration;

use serde_json::{Value, json};

use crate::fakes::{FakeLlm, Reply, Webhook, call, is_analysis, text, with_llm};
use crate::helpers::{Backend, TestApp, dual_db, ended_conversation, invocation_done};
use crate::tools::create_tool;
use crate::ws::{self, next_of, open, turn};

fn script(req: &Value) -> Reply {
    if is_analysis(req) {
        return text("{}");
    }
    if req["tool_choice"]["function"]["name"] == "get_order" {
        return call("get_order", json!({"order_id": "A-17"}));
    }
    let msgs = req["messages"].as_array().unwrap();
    let system = msgs[0]["content"].as_str().unwrap_or_default();
    let last = msgs.last().unwrap()["content"].as_str().unwrap_or_default();
    if system.contains("Ask for the order number.") {
        let offered: Vec<&str> = req["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["function"]["name"].as_str())
            .collect();
        assert_eq!(offered, ["go_to_lookup"], "the subagent's llm edge is a tool");
        return if last.contains("A-17") {
            call("go_to_lookup", json!({}))
        } else {
            text("What is your order number?")
        };
    }
    if system.starts_with("You are refunds.") {
        return if last == "confirm" {
            call("go_to_done", json!({}))
        } else {
            text("Refunds here: A-17 qualifies.")
        };
    }
    text(&format!("unexpected prompt {system:?}"))
}

fn desk_workflow(refunds: &str) -> Value {
    json!({
        "nodes": {
            "start_node": {"type": "start", "edge_order": ["start_to_intake"]},
            "intake": {"type": "override_agent", "label": "Intake", "additional_prompt": "Ask for the order number.", "edge_order": ["to_lookup"]},
            "lookup": {"type": "tool", "tools": [{"tool_id": "TOOL"}], "edge_order": ["found", "missing"]},
            "refunds": {"type": "standalone_agent", "agent_id": refunds, "transfer_message": "Passing you to refunds."},
            "end": {"type": "end"}
        },
        "edges": {
            "start_to_intake": {"source": "start_node", "target": "intake", "forward_condition": {"type": "unconditional"}},
            "to_lookup": {"source": "intake", "target": "lookup", "forward_condition": {"type": "llm", "condition": "The user gave an order number"}},
            "found": {"source": "lookup", "target": "refunds", "forward_condition": {"type": "result", "successful": true}},
            "missing": {"source": "lookup", "target": "end", "forward_condition": {"type": "result", "successful": false}}
        }
    })
}

async fn create_agent(app: &TestApp, body: Value) -> String {
    let (s, b) = app.post("/v1/convai/agents/create", &app.admin_key, &body).await;
    assert_eq!(s, 200, "{b}");
    b["agent_id"].as_str().unwrap().to_owned()
}

async fn a_workflow_walks_from_start_to_end(backend: Backend) {
    let llm = FakeLlm::openai(script).await;
    let app = TestApp::spawn_with(backend, with_llm(&llm)).await;
    let key = &app.admin_key;
    let hook = Webhook::start(200, r#"{"status":"delivered"}"#, Duration::ZERO).await;
    let tool = create_tool(&app, key, json!({"tool_config": {"type": "webhook", "name": "get_order", "description": "Order",
        "api_schema": {"url": format!("{}/orders/{{order_id}}", hook.base), "method": "GET",
            "path_params_schema": {"order_id": {"type": "string", "description": "Order number"}}}}})).await;
    let refunds = create_agent(&app, json!({"name": "Refunds",
        "conversation_config": {"agent": {"prompt": {"prompt": "You are refunds.", "llm": "gpt-4o"}}},
        "workflow": {"nodes": {"start_node": {"type": "start"}, "done": {"type": "end"}},
            "edges": {"to_done": {"source": "start_node", "target": "done", "forward_condition": {"type": "llm", "condition": "The refund is confirmed"}}}}})).await;
    let workflow =
        serde_json::from_str::<Value>(&desk_workflow(&refunds).to_string().replace("TOOL", &tool))
            .unwrap();
    let desk = create_agent(&app, json!({"name": "Desk",
        "conversation_config": {"agent": {"first_message": "Hi, desk here.", "prompt": {"prompt": "You are the desk.", "llm": "gpt-4o"}}},
        "workflow": workflow})).await;

    let url = ws::url(&app.base, &format!("agent_id={desk}"));
    let (mut socket, conversation_id) = open(&url, Default::default()).await;
    let greeting = next_of(&mut socket, "agent_response").await;
    assert_eq!(greeting["agent_response_event"]["agent_response"], "Hi, desk here.");
    let said = |events: &[Value]| {
        events.last().unwrap()["agent_response_event"]["agent_response"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(said(&turn(&mut socket, "I need a refund").await), "What is your order number?");
    let events = turn(&mut socket, "It is A-17").await;
    assert_eq!(said(&events), "Passing you to refunds. Refunds here: A-17 qualifies.");
    let tools: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "agent_tool_response")
        .filter_map(|e| e["agent_tool_response"]["tool_name"].as_str())
        .collect();
    assert_eq!(tools, ["go_to_lookup", "get_order"]);
    assert_eq!(hook.received()[0].uri, "/orders/A-17", "the tool node called its tool");
    let events = turn(&mut socket, "confirm").await;
    assert!(
        events.iter().any(|e| e["agent_tool_response"]["tool_name"] == "go_to_done"),
        "{events:?}"
    );
    assert_eq!(events.last().unwrap()["close"], 1000, "the end node ends the call: {events:?}");

    let got = ended_conversation(&app, &conversation_id).await;
    assert_eq!(got["metadata"]["termination_reason"], "the workflow reached an end node");
    let nodes: Vec<(String, String)> = got["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["role"] == "agent")
        .map(|t| {
            (
                t["agent_metadata"]["agent_id"].as_str().unwrap().to_owned(),
                t["agent_metadata"]["workflow_node_id"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect();
    let at = |agent: &str, node: &str| (agent.to_owned(), node.to_owned());
    assert_eq!(
        nodes,
        [
            at(&desk, "start_node"),
            at(&desk, "intake"),
            at(&desk, "refunds"),
            at(&refunds, "start_node"),
            at(&refunds, "done")
        ]
    );
    let (_, calls) = app.get(&format!("/api/tool-calls?executionId={conversation_id}"), key).await;
    let names: Vec<&str> =
        calls.as_array().unwrap().iter().filter_map(|c| c["toolName"].as_str()).collect();
    assert_eq!(names, ["go_to_lookup", "get_order", "go_to_done"]);

    // An agent test asserts the move to the tool node.
    let (s, test) = app.post("/v1/convai/agent-testing/create", key, &json!({"type": "tool", "name": "moves to lookup",
        "chat_history": [{"role": "agent", "message": "What is your order number?", "time_in_call_secs": 0}, {"role": "user", "message": "It is A-17", "time_in_call_secs": 1}],
        "tool_call_parameters": {"workflow_node_transition": {"type": "node_id", "agent_id": desk, "target_node_id": "lookup"}}})).await;
    assert_eq!(s, 200, "{test}");
    let (s, wrong) = app.post("/v1/convai/agent-testing/create", key, &json!({"type": "tool", "name": "moves to end",
        "chat_history": [{"role": "user", "message": "hello", "time_in_call_secs": 1}],
        "tool_call_parameters": {"workflow_node_transition": {"type": "node_id", "agent_id": desk, "target_node_id": "lookup"}}})).await;
    assert_eq!(s, 200, "{wrong}");
    let (s, inv) = app
        .post(
            &format!("/v1/convai/agents/{desk}/run-tests"),
            key,
            &json!({"tests": [{"test_id": test["id"]}, {"test_id": wrong["id"]}]}),
        )
        .await;
    assert_eq!(s, 200, "{inv}");
    let done =
        invocation_done(&app.base, key, inv["id"].as_str().unwrap(), Duration::from_secs(20)).await;
    let status = |name: &str| {
        done["test_runs"].as_array().unwrap().iter().find(|r| r["test_name"] == name).unwrap()["status"].clone()
    };
    assert_eq!(status("moves to lookup"), "passed", "{done}");
    assert_eq!(status("moves to end"), "failed", "{done}");
}
dual_db!(a_workflow_walks_from_start_to_end);

async fn graphs_that_cannot_be_walked_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.admin_key;
    let good = desk_workflow("agent_x");
    let mut cases = Vec::new();
    let mut dangling = good.clone();
    dangling["edges"]["found"]["target"] = json!("nowhere");
    cases.push((dangling, json!(["body", "workflow", "edges", "found", "target"])));
    let mut phone = good.clone();
    phone["nodes"]["refunds"] = json!({"type": "phone_number", "transfer_destination": {"type": "phone", "phone_number": "+15550100"}});
    cases.push((phone, json!(["body", "workflow", "nodes", "refunds", "type"])));
    let mut cut = good.clone();
    cut["edges"].as_object_mut().unwrap().remove("missing");
    cut["nodes"]["lookup"]["edge_order"] = json!(["found"]);
    cases.push((cut, json!(["body", "workflow", "nodes", "end"])));
    for (workflow, loc) in cases {
        let (s, b) = app
            .post(
                "/v1/convai/agents/create",
                key,
                &json!({"conversation_config": {}, "workflow": workflow}),
            )
            .await;
        assert_eq!(s, 422, "{b}");
        assert!(b["detail"].as_array().unwrap().iter().any(|d| d["loc"] == loc), "{loc}: {b}");
    }
    let (_, list) = app.get("/v1/convai/agents", key).await;
    assert_eq!(list["agents"], json!([]), "nothing stored");
    let agent = create_agent(&app, json!({"conversation_config": {}, "workflow": good})).await;
    let (s, b) = app.send(reqwest::Method::PATCH, &format!("/v1/convai/agents/{agent}"), key,
        &json!({"workflow": {"edges": {"back": {"source": "intake", "target": "start_node", "forward_condition": {"type": "unconditional"}}}}})).await;
    assert_eq!(s, 422, "a loop no condition leaves: {b}");
    let (_, got) = app.get(&format!("/v1/convai/agents/{agent}"), key).await;
    assert!(got["workflow"]["edges"].get("back").is_none(), "the stored agent is intact");
}
dual_db!(graphs_that_cannot_be_walked_are_refused);
