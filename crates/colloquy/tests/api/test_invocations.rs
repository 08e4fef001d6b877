//! Running tests: invocations queued as durable runs, executed by the server's worker, judged
//! (tool calls compared, LLM verdicts parsed strictly) and reported.

use std::time::Duration;

use serde_json::{Value, json};

use crate::fakes::with_llm;
use crate::fakes::{FakeLlm, call, is_analysis, text};
use crate::helpers::{
    Backend, ChildServer, TestApp, client, dual_db, invocation_done, invocation_summary,
    status_json,
};
use crate::tools::{create_tool, webhook};

fn script(req: &Value) -> crate::fakes::Reply {
    let msgs = req["messages"].as_array().unwrap();
    let system = msgs[0]["content"].as_str().unwrap_or_default();
    let last = msgs.last().unwrap();
    let content = last["content"].as_str().unwrap_or_default();
    if system.starts_with("You evaluate") {
        if content.contains("GARBLE") {
            return text("I think it went fine");
        }
        let ok = content.contains("Agent's reply: Hello, friend");
        return text(&format!(
            r#"{{"result": "{}", "rationale": "judged"}}"#,
            if ok { "success" } else { "failure" }
        ));
    }
    if system.starts_with("You check a value") {
        return text(if content.contains("Paris") { "yes" } else { "no" });
    }
    if last["role"] == "tool" {
        return text("Looked it up.");
    }
    match content {
        "weather in paris" => call("lookup", json!({"city": "Paris"})),
        "weather in rome" => call("lookup", json!({"city": "Rome"})),
        "say garble" => text("GARBLE"),
        "be rude" => text("Go away"),
        _ => text("Hello, friend"),
    }
}

/// The invocation once every run has finished.
async fn wait_done(app: &TestApp, id: &str) -> Value {
    invocation_done(&app.base, &app.admin_key, id, Duration::from_secs(20)).await
}

async fn run_tests_judges_each_type_and_reports(backend: Backend) {
    let llm = FakeLlm::openai(script).await;
    let app = TestApp::spawn_with(backend, with_llm(&llm)).await;
    let key = &app.admin_key;
    let tool = create_tool(&app, key, webhook("lookup", "https://x.example")).await;
    let (_, agent) = app.post("/v1/convai/agents/create", key, &json!({"conversation_config": {"agent": {"prompt": {"llm": "gpt-4o", "tool_ids": [tool]}}}})).await;
    let agent_id = agent["agent_id"].as_str().unwrap().to_owned();
    let history = |m: &str| json!([{"role": "user", "message": m, "time_in_call_secs": 0}]);
    let mut ids = Vec::new();
    for body in [
        json!({"name": "greets", "success_condition": "friendly", "chat_history": history("hi")}),
        json!({"name": "rude fails", "success_condition": "friendly", "chat_history": history("be rude")}),
        json!({"name": "garbled verdict", "success_condition": "friendly", "chat_history": history("say garble")}),
        json!({"type": "tool", "name": "calls lookup for paris", "chat_history": history("weather in paris"),
            "tool_call_parameters": {"referenced_tool": {"id": tool, "type": "webhook"}, "parameters": [{"path": "city", "eval": {"type": "exact", "expected_value": "Paris"}}]}}),
        json!({"type": "tool", "name": "wrong city", "chat_history": history("weather in rome"),
            "tool_call_parameters": {"referenced_tool": {"id": tool, "type": "webhook"}, "parameters": [{"path": "city", "eval": {"type": "regex", "pattern": "^Par"}}]}}),
        json!({"type": "tool", "name": "no tool expected", "chat_history": history("hi"),
            "tool_call_parameters": {"referenced_tool": {"id": tool, "type": "webhook"}, "verify_absence": true}}),
        json!({"type": "tool", "name": "llm eval passes", "chat_history": history("weather in paris"),
            "tool_call_parameters": {"referenced_tool": {"id": tool, "type": "webhook"}, "parameters": [{"path": "city", "eval": {"type": "llm", "description": "a French city"}}]}}),
        json!({"type": "tool", "name": "llm eval fails", "chat_history": history("weather in rome"),
            "tool_call_parameters": {"referenced_tool": {"id": tool, "type": "webhook"}, "parameters": [{"path": "city", "eval": {"type": "llm", "description": "a French city"}}]}}),
        json!({"type": "tool", "name": "anything goes", "chat_history": history("weather in rome"),
            "tool_call_parameters": {"referenced_tool": {"id": tool, "type": "webhook"}, "parameters": [{"path": "city", "eval": {"type": "anything"}}]}}),
    ] {
        let (s, b) = app.post("/v1/convai/agent-testing/create", key, &body).await;
        assert_eq!(s, 200, "{b}");
        ids.push(b["id"].as_str().unwrap().to_owned());
    }
    let tests: Vec<Value> = ids.iter().map(|id| json!({"test_id": id})).collect();
    let (s, inv) = app
        .post(&format!("/v1/convai/agents/{agent_id}/run-tests"), key, &json!({"tests": tests}))
        .await;
    assert_eq!(s, 200, "{inv}");
    assert!(inv["id"].as_str().unwrap().starts_with("suite_"));
    assert_eq!(inv["test_runs"].as_array().unwrap().len(), 9);
    assert!(
        inv["test_runs"].as_array().unwrap().iter().all(|r| r["status"] == "pending"),
        "answered at once"
    );

    let done = wait_done(&app, inv["id"].as_str().unwrap()).await;
    let status = |name: &str| -> (String, Value) {
        let run =
            done["test_runs"].as_array().unwrap().iter().find(|r| r["test_name"] == name).unwrap();
        (run["status"].as_str().unwrap().to_owned(), run["condition_result"].clone())
    };
    assert_eq!(status("greets").0, "passed", "{:?}", status("greets"));
    assert_eq!(status("rude fails").0, "failed");
    let (s, cond) = status("garbled verdict");
    assert_eq!(s, "failed");
    assert!(
        cond["rationale"]["summary"].as_str().unwrap().contains("could not be parsed"),
        "{cond}"
    );
    assert_eq!(
        status("calls lookup for paris").0,
        "passed",
        "{:?}",
        status("calls lookup for paris")
    );
    assert_eq!(status("wrong city").0, "failed");
    assert_eq!(status("no tool expected").0, "passed");
    assert_eq!(status("llm eval passes").0, "passed", "{:?}", status("llm eval passes"));
    assert_eq!(status("llm eval fails").0, "failed");
    assert_eq!(status("anything goes").0, "passed");

    // The run's conversation is a test conversation with its tool calls audited.
    let run = done["test_runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["test_name"] == "calls lookup for paris")
        .unwrap();
    let (s, links) = app
        .get(&format!("/api/test-invocations/{}/conversations", done["id"].as_str().unwrap()), key)
        .await;
    assert_eq!(s, 200, "{links}");
    let conv = links["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["test_run_id"] == run["test_run_id"])
        .and_then(|l| l["conversation_id"].as_str())
        .unwrap();
    let (_, calls) = app.get(&format!("/api/tool-calls?executionId={conv}"), key).await;
    assert_eq!(calls[0]["toolName"], "lookup");
    let (_, live) = app.get("/v1/convai/conversations", key).await;
    assert_eq!(live["conversations"], json!([]), "test conversations are hidden by default");
    let (_, tests_only) = app.get("/v1/convai/conversations?source=test", key).await;
    assert_eq!(tests_only["conversations"].as_array().unwrap().len(), 9);

    let (_, list) = app.get(&format!("/v1/convai/test-invocations?agent_id={agent_id}"), key).await;
    let summary = &list["results"][0];
    assert_eq!(summary["test_run_count"], 9);
    assert_eq!(summary["passed_count"], 5);
    assert_eq!(summary["failed_count"], 4);
    assert_eq!(summary["pending_count"], 0);

    // Bad requests change nothing.
    let (s, b) = app
        .post(
            &format!("/v1/convai/agents/{agent_id}/run-tests"),
            key,
            &json!({"tests": [{"test_id": "test_missing"}]}),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(
        app.post(&format!("/v1/convai/agents/{agent_id}/run-tests"), key, &json!({"tests": []}))
            .await
            .0,
        422
    );
    assert_eq!(
        app.post(
            &format!("/v1/convai/agents/{agent_id}/run-tests"),
            key,
            &json!({"tests": tests, "repeat_count": 51})
        )
        .await
        .0,
        422
    );
    assert_eq!(
        app.post("/v1/convai/agents/agent_nope/run-tests", key, &json!({"tests": tests})).await.0,
        404
    );
    let theirs = app.key("globex", "g@globex.test", "admin").await;
    assert_eq!(
        app.get(&format!("/v1/convai/test-invocations/{}", inv["id"].as_str().unwrap()), &theirs)
            .await
            .0,
        404
    );

    // repeat_count runs each test that many times.
    let (_, rep) = app
        .post(
            &format!("/v1/convai/agents/{agent_id}/run-tests"),
            key,
            &json!({"tests": [{"test_id": ids[0]}], "repeat_count": 3}),
        )
        .await;
    let done = wait_done(&app, rep["id"].as_str().unwrap()).await;
    assert_eq!(done["test_runs"].as_array().unwrap().len(), 3);
    assert!(done["test_runs"].as_array().unwrap().iter().all(|r| r["status"] == "passed"));
}
dual_db!(run_tests_judges_each_type_and_reports);

#[tokio::test]
async fn rename_cancel_and_resubmit() {
    let llm = FakeLlm::openai(|req: &Value| {
        let msgs = req["messages"].as_array().unwrap();
        let system = msgs[0]["content"].as_str().unwrap_or_default().to_owned();
        if system.starts_with("You evaluate") {
            let ok = msgs.last().unwrap()["content"]
                .as_str()
                .unwrap_or_default()
                .contains("Agent's reply: Hello, friend");
            return text(&format!(
                r#"{{"result": "{}", "rationale": "judged"}}"#,
                if ok { "success" } else { "failure" }
            ));
        }
        if system == "slow" {
            return crate::fakes::Reply::After(Duration::from_secs(3), Box::new(text("late")));
        }
        if system == "chatty" {
            return crate::fakes::Reply::After(Duration::from_millis(300), Box::new(text("go on")));
        }
        if system.starts_with("You are simulating") {
            return text("tell me more");
        }
        if system == "friendly" { text("Hello, friend") } else { text("meh") }
    })
    .await;
    let app = TestApp::spawn_with(crate::helpers::Backend::Sqlite, with_llm(&llm)).await;
    let key = &app.admin_key;
    let (_, agent) = app.post("/v1/convai/agents/create", key, &json!({"conversation_config": {"agent": {"prompt": {"prompt": "slow", "llm": "gpt-4o"}}}})).await;
    let agent_id = agent["agent_id"].as_str().unwrap().to_owned();
    let (_, t) = app
        .post(
            "/v1/convai/agent-testing/create",
            key,
            &json!({"name": "greets", "success_condition": "friendly",
        "chat_history": [{"role": "user", "message": "hi", "time_in_call_secs": 0}]}),
        )
        .await;
    let test_id = t["id"].as_str().unwrap().to_owned();
    let tests: Vec<Value> = (0..6).map(|_| json!({"test_id": test_id})).collect();
    let (_, inv) = app
        .post(
            &format!("/v1/convai/agents/{agent_id}/run-tests"),
            key,
            &json!({"tests": tests, "name": "nightly"}),
        )
        .await;
    let id = inv["id"].as_str().unwrap().to_owned();

    let (s, renamed) = app
        .send(
            reqwest::Method::PATCH,
            &format!("/v1/convai/test-invocations/{id}"),
            key,
            &json!({"name": "nightly run"}),
        )
        .await;
    assert_eq!(s, 200, "{renamed}");
    let (_, list) = app.get("/v1/convai/test-invocations", key).await;
    assert_eq!(list["results"][0]["title"], "nightly run");

    let (s, _) =
        app.post(&format!("/v1/convai/test-invocations/{id}/cancel"), key, &json!({})).await;
    assert_eq!(s, 200);
    let done = wait_done(&app, &id).await;
    for run in done["test_runs"].as_array().unwrap() {
        assert_eq!(run["status"], "failed");
        assert_eq!(run["condition_result"]["rationale"]["summary"], "Cancelled before it finished");
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (_, still) = app.get(&format!("/v1/convai/test-invocations/{id}"), key).await;
    assert!(
        still["test_runs"].as_array().unwrap().iter().all(
            |r| r["condition_result"]["rationale"]["summary"] == "Cancelled before it finished"
        ),
        "late results are dropped"
    );
    let (_, list) = app.get("/v1/convai/test-invocations", key).await;
    let summary = &list["results"][0];
    assert_eq!(summary["failed_count"], 6, "cancelled runs are failed on the wire: {summary}");
    assert_eq!(summary["pending_count"], 0, "{summary}");
    assert_eq!(list["meta"]["total"], 1, "{list}");
    assert_eq!(list["meta"]["page"], 1, "{list}");

    // Resubmit two runs with a configuration that passes.
    let run_ids: Vec<Value> = done["test_runs"]
        .as_array()
        .unwrap()
        .iter()
        .take(2)
        .map(|r| r["test_run_id"].clone())
        .collect();
    let override_config = json!({"conversation_config": {"agent": {"prompt": {"prompt": "friendly"}}}, "platform_settings": {}});
    let (s, b) = app.post(&format!("/v1/convai/test-invocations/{id}/resubmit"), key, &json!({"test_run_ids": run_ids, "agent_id": agent_id, "agent_config_override": override_config})).await;
    assert_eq!(s, 200, "{b}");
    let done = wait_done(&app, &id).await;
    let passed =
        done["test_runs"].as_array().unwrap().iter().filter(|r| r["status"] == "passed").count();
    assert_eq!(passed, 2);
    let (s, _) = app
        .post(
            &format!("/v1/convai/test-invocations/{id}/resubmit"),
            key,
            &json!({"test_run_ids": ["run_nope"], "agent_id": agent_id}),
        )
        .await;
    assert_eq!(s, 422);
    assert_eq!(
        app.post("/v1/convai/test-invocations/suite_nope/cancel", key, &json!({})).await.0,
        404
    );

    // A running simulation stops at its next turn once cancelled.
    let (_, chatty) = app.post("/v1/convai/agents/create", key, &json!({"conversation_config": {"agent": {"prompt": {"prompt": "chatty", "llm": "gpt-4o"}}}})).await;
    let (_, sim) = app
        .post(
            "/v1/convai/agent-testing/create",
            key,
            &json!({"type": "simulation", "name": "long talk", "success_conditions": ["talks"],
                "simulation_scenario": "keep talking", "simulation_max_turns": 40}),
        )
        .await;
    let (_, inv) = app
        .post(
            &format!("/v1/convai/agents/{}/run-tests", chatty["agent_id"].as_str().unwrap()),
            key,
            &json!({"tests": [{"test_id": sim["id"]}]}),
        )
        .await;
    let sim_id = inv["id"].as_str().unwrap().to_owned();
    let user_turns = || {
        llm.requests()
            .iter()
            .filter(|r| {
                r["messages"][0]["content"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("You are simulating"))
            })
            .count()
    };
    let before = user_turns();
    for _ in 0..100 {
        if user_turns() > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (s, _) =
        app.post(&format!("/v1/convai/test-invocations/{sim_id}/cancel"), key, &json!({})).await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stopped_at = user_turns();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(user_turns(), stopped_at, "the simulation stopped");
    assert!(stopped_at - before < 20, "it stopped early: {}", stopped_at - before);

    // Pages are numbered and the total counts every match.
    let (_, first) = app.get("/v1/convai/test-invocations?page_size=1", key).await;
    assert_eq!(first["meta"], json!({"total": 2, "page": 1, "page_size": 1}));
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) =
        app.get(&format!("/v1/convai/test-invocations?page_size=1&cursor={cursor}"), key).await;
    assert_eq!(second["meta"], json!({"total": 2, "page": 2, "page_size": 1}));
    assert_eq!(second["has_more"], false);
    assert_ne!(first["results"][0]["id"], second["results"][0]["id"]);
}

fn sim_script(req: &Value) -> crate::fakes::Reply {
    let msgs = req["messages"].as_array().unwrap();
    let system = msgs[0]["content"].as_str().unwrap_or_default().to_owned();
    if system.starts_with("You are simulating a user") {
        return if msgs.len() >= 5 {
            text("Thanks, bye [END]")
        } else {
            text("I need help with my order")
        };
    }
    if system.starts_with("You evaluate") {
        let prompt = msgs.last().unwrap()["content"].as_str().unwrap_or_default();
        let ok = prompt.contains("Criterion: helps") && prompt.contains("help with your order");
        return text(&format!(
            r#"{{"result": "{}", "rationale": "checked"}}"#,
            if ok { "success" } else { "failure" }
        ));
    }
    text("Sure, I can help with your order")
}

async fn simulations_as_tests_and_through_the_endpoints(backend: Backend) {
    let llm = FakeLlm::openai(sim_script).await;
    let app = TestApp::spawn_with(backend, with_llm(&llm)).await;
    let key = &app.admin_key;
    let (_, agent) = app.post("/v1/convai/agents/create", key, &json!({"conversation_config": {"agent": {"first_message": "Hi, how can I help?", "prompt": {"llm": "gpt-4o"}}},
        "platform_settings": {"evaluation": {"criteria": [{"id": "helps", "name": "Helps", "type": "prompt", "conversation_goal_prompt": "helps"}]}}})).await;
    let agent_id = agent["agent_id"].as_str().unwrap().to_owned();
    let mut ids = Vec::new();
    for (name, condition) in [("sim passes", "helps"), ("sim fails", "refunds")] {
        let (s, b) = app.post("/v1/convai/agent-testing/create", key, &json!({"type": "simulation", "name": name,
            "simulation_scenario": "A customer with an order problem", "success_conditions": [condition], "simulation_max_turns": 5,
            "simulated_user_model": "gpt-4o", "evaluation_model": "gpt-4o"})).await;
        assert_eq!(s, 200, "{b}");
        ids.push(b["id"].as_str().unwrap().to_owned());
    }
    let tests: Vec<Value> = ids.iter().map(|id| json!({"test_id": id})).collect();
    let (_, inv) = app
        .post(&format!("/v1/convai/agents/{agent_id}/run-tests"), key, &json!({"tests": tests}))
        .await;
    let done = wait_done(&app, inv["id"].as_str().unwrap()).await;
    let run = |n: &str| {
        done["test_runs"].as_array().unwrap().iter().find(|r| r["test_name"] == n).unwrap().clone()
    };
    assert_eq!(run("sim passes")["status"], "passed", "{}", run("sim passes"));
    assert_eq!(run("sim fails")["status"], "failed");
    let transcript = run("sim passes")["agent_responses"].as_array().unwrap().clone();
    assert!(transcript.len() >= 4, "a multi-turn conversation: {transcript:?}");
    assert_eq!(transcript[0]["message"], "Hi, how can I help?");

    let body = json!({"simulation_specification": {"simulated_user_config": {"prompt": {"prompt": "A customer", "llm": "gpt-4o"}}},
        "extra_evaluation_criteria": [{"id": "polite", "name": "Polite", "type": "prompt", "conversation_goal_prompt": "is polite"}]});
    let (s, sim) =
        app.post(&format!("/v1/convai/agents/{agent_id}/simulate-conversation"), key, &body).await;
    assert_eq!(s, 200, "{sim}");
    let conversation = sim["simulated_conversation"].as_array().unwrap();
    assert!(conversation.len() >= 3);
    assert_eq!(conversation[1]["role"], "user");
    assert_eq!(sim["analysis"]["evaluation_criteria_results"]["helps"]["result"], "success");
    assert_eq!(sim["analysis"]["evaluation_criteria_results"]["polite"]["result"], "failure");

    let r = app
        .client
        .post(app.url(&format!("/v1/convai/agents/{agent_id}/simulate-conversation/stream")))
        .header("xi-api-key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let text_body = r.text().await.unwrap();
    let lines: Vec<Value> = text_body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.len() >= 4);
    assert!(lines[0].is_array(), "turns first");
    let last = lines.last().unwrap();
    assert!(last["analysis"].is_object() && last["simulated_conversation"].is_array());
    assert_eq!(
        lines.len() - 1,
        last["simulated_conversation"].as_array().unwrap().len(),
        "every turn streamed once"
    );

    let (s, _) = app
        .post(&format!("/v1/convai/agents/{agent_id}/simulate-conversation"), key, &json!({}))
        .await;
    assert_eq!(s, 422);
    let (_, sims) = app.get("/v1/convai/conversations?source=simulation", key).await;
    assert_eq!(sims["conversations"].as_array().unwrap().len(), 2);
}
dual_db!(simulations_as_tests_and_through_the_endpoints);

#[tokio::test]
async fn llm_usage_estimates_from_the_price_table() {
    let app = TestApp::spawn(crate::helpers::Backend::Sqlite).await;
    let key = &app.admin_key;
    let (s, small) = app
        .post(
            "/v1/convai/llm-usage/calculate",
            key,
            &json!({"prompt_length": 400, "number_of_pages": 0, "rag_enabled": false}),
        )
        .await;
    assert_eq!(s, 200, "{small}");
    let price = |v: &Value, llm: &str| {
        v["llm_prices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["llm"] == llm)
            .unwrap()["price_per_message"]
            .as_f64()
            .unwrap()
    };
    let (_, big) = app
        .post(
            "/v1/convai/llm-usage/calculate",
            key,
            &json!({"prompt_length": 40000, "number_of_pages": 20, "rag_enabled": false}),
        )
        .await;
    assert!(price(&big, "gpt-4o") > price(&small, "gpt-4o"));
    assert!(price(&small, "gpt-4o") > price(&small, "gpt-4o-mini"));
    assert_eq!(
        app.post("/v1/convai/llm-usage/calculate", key, &json!({"prompt_length": 1})).await.0,
        422
    );

    let (_, agent) = app
        .post(
            "/v1/convai/agents/create",
            key,
            &json!({"conversation_config": {"agent": {"prompt": {"prompt": "x".repeat(4000)}}}}),
        )
        .await;
    let id = agent["agent_id"].as_str().unwrap();
    let (s, per_agent) =
        app.post(&format!("/v1/convai/agent/{id}/llm-usage/calculate"), key, &json!({})).await;
    assert_eq!(s, 200, "{per_agent}");
    assert!(
        price(&per_agent, "gpt-4o") > price(&small, "gpt-4o"),
        "the agent's own prompt length counts"
    );
    assert_eq!(
        app.post("/v1/convai/agent/agent_nope/llm-usage/calculate", key, &json!({})).await.0,
        404
    );
}

/// A node killed with -9 while it holds leases loses no run: once the leases expire a second
/// node runs them. One invocation of 1,000 runs (20 tests × 50 repeats) finishes with every run
/// judged exactly once.
#[tokio::test]
async fn a_killed_node_loses_no_run_of_a_thousand() {
    let stuck = FakeLlm::openai(|_| {
        crate::fakes::Reply::After(Duration::from_secs(120), Box::new(text("too late")))
    })
    .await;
    let llm = FakeLlm::openai(script).await;
    let dir = tempfile::tempdir().unwrap();
    let key = colloquy_core::keys::generate_token();
    let node = |llm: &FakeLlm, lease: &'static str| {
        let llm_url = format!("{}/v1", llm.base);
        let dir = dir.path().to_owned();
        let key = key.clone();
        async move {
            ChildServer::start(
                &dir,
                &[
                    ("COLLOQUY_BOOTSTRAP_API_KEY", key.as_str()),
                    ("OPENAI_BASE_URL", llm_url.as_str()),
                    ("OPENAI_API_KEY", "sk-fake"),
                    ("COLLOQUY_WEBHOOK_ALLOW", "127.0.0.1"),
                    ("COLLOQUY_JOB_LEASE_SECS", lease),
                    ("COLLOQUY_TEST_CONCURRENCY", "8"),
                ],
            )
            .await
        }
    };
    let first = node(&stuck, "2").await;
    let http = client();
    let post = |base: &str, path: &str, body: Value| {
        http.post(format!("{base}{path}")).header("xi-api-key", &key).json(&body).send()
    };
    let (s, agent) = status_json(
        post(
            &first.base,
            "/v1/convai/agents/create",
            json!({"conversation_config": {"agent": {"prompt": {"llm": "gpt-4o-mini"}}}}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{agent}");
    let agent_id = agent["agent_id"].as_str().unwrap().to_owned();
    let mut tests = Vec::new();
    for i in 0..20 {
        let body = json!({"name": format!("greets {i}"), "success_condition": "friendly",
            "chat_history": [{"role": "user", "message": "hi", "time_in_call_secs": 0}]});
        let (s, t) =
            status_json(post(&first.base, "/v1/convai/agent-testing/create", body).await.unwrap())
                .await;
        assert_eq!(s, 200, "{t}");
        tests.push(json!({"test_id": t["id"]}));
    }
    let (s, inv) = status_json(
        post(
            &first.base,
            &format!("/v1/convai/agents/{agent_id}/run-tests"),
            json!({"tests": tests, "repeat_count": 50}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{inv}");
    assert_eq!(inv["test_runs"].as_array().unwrap().len(), 1000);
    let id = inv["id"].as_str().unwrap().to_owned();
    for _ in 0..200 {
        if !stuck.requests().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!stuck.requests().is_empty(), "the first node started runs");
    first.kill9();

    let second = node(&llm, "300").await;
    let summary =
        invocation_summary(&second.base, &key, &agent_id, &id, Duration::from_secs(180)).await;
    assert_eq!(summary["id"], id.as_str());
    assert_eq!(summary["pending_count"], 0, "every run finished: {summary}");
    assert_eq!(summary["passed_count"], 1000, "{summary}");
    assert_eq!(summary["failed_count"], 0, "{summary}");
    let judged = llm
        .requests()
        .iter()
        .filter(|r| {
            r["messages"][0]["content"].as_str().is_some_and(|s| s.starts_with("You evaluate"))
        })
        .count();
    assert_eq!(judged, 1000, "each run judged exactly once");
}

/// A run that takes longer than its lease keeps it: the worker renews the lease while it runs,
/// so the run is worked once, not re-leased (by this node or another) each time the lease
/// would have run out.
#[tokio::test]
async fn a_run_longer_than_its_lease_keeps_it() {
    let llm = FakeLlm::openai(|req| {
        crate::fakes::Reply::After(Duration::from_millis(1500), Box::new(script(req)))
    })
    .await;
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        with_llm(&llm)(c);
        c.job_lease_secs = 1;
    })
    .await;
    let key = &app.admin_key;
    let (_, agent) = app
        .post(
            "/v1/convai/agents/create",
            key,
            &json!({"conversation_config": {"agent": {"prompt": {"llm": "gpt-4o"}}}}),
        )
        .await;
    let agent_id = agent["agent_id"].as_str().unwrap();
    let (s, test) = app
        .post(
            "/v1/convai/agent-testing/create",
            key,
            &json!({"name": "slow", "success_condition": "friendly",
                "chat_history": [{"role": "user", "message": "hi", "time_in_call_secs": 0}]}),
        )
        .await;
    assert_eq!(s, 200, "{test}");
    let (s, inv) = app
        .post(
            &format!("/v1/convai/agents/{agent_id}/run-tests"),
            key,
            &json!({"tests": [{"test_id": test["id"]}]}),
        )
        .await;
    assert_eq!(s, 200, "{inv}");
    let done =
        invocation_done(&app.base, key, inv["id"].as_str().unwrap(), Duration::from_secs(30)).await;
    assert_eq!(done["test_runs"][0]["status"], "passed", "{done}");
    // One answer and one verdict, each 1.5 s: 3 s of a run held under a 1 s lease (the test
    // conversation's analysis comes after).
    let worked = llm.requests().iter().filter(|r| !is_analysis(r)).count();
    assert_eq!(worked, 2, "the run was worked once");
}

fn agent_body() -> Value {
    json!({"conversation_config": {"agent": {"prompt": {"llm": "gpt-4o"}}}})
}

/// A node killed with -9 while it holds runs, restarted on the same database with the default
/// settings, takes them back within 30 s whatever their length.
#[tokio::test]
async fn a_restarted_node_retakes_its_runs_within_the_default_lease() {
    let stuck = FakeLlm::openai(|_| {
        crate::fakes::Reply::After(Duration::from_secs(600), Box::new(text("too late")))
    })
    .await;
    let llm = FakeLlm::openai(script).await;
    let dir = tempfile::tempdir().unwrap();
    let key = colloquy_core::keys::generate_token();
    let node = |llm: &FakeLlm| {
        let llm_url = format!("{}/v1", llm.base);
        let (dir, key) = (dir.path().to_owned(), key.clone());
        async move {
            ChildServer::start(
                &dir,
                &[
                    ("COLLOQUY_BOOTSTRAP_API_KEY", key.as_str()),
                    ("OPENAI_BASE_URL", llm_url.as_str()),
                    ("OPENAI_API_KEY", "sk-fake"),
                ],
            )
            .await
        }
    };
    let first = node(&stuck).await;
    let http = client();
    let post = |base: &str, path: &str, body: Value| {
        http.post(format!("{base}{path}")).header("xi-api-key", &key).json(&body).send()
    };
    let (_, agent) =
        status_json(post(&first.base, "/v1/convai/agents/create", agent_body()).await.unwrap())
            .await;
    let agent_id = agent["agent_id"].as_str().unwrap().to_owned();
    let body = json!({"name": "greets", "success_condition": "friendly",
        "chat_history": [{"role": "user", "message": "hi", "time_in_call_secs": 0}]});
    let (s, t) =
        status_json(post(&first.base, "/v1/convai/agent-testing/create", body).await.unwrap())
            .await;
    assert_eq!(s, 200, "{t}");
    let (s, inv) = status_json(
        post(
            &first.base,
            &format!("/v1/convai/agents/{agent_id}/run-tests"),
            json!({"tests": [{"test_id": t["id"]}], "repeat_count": 3}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{inv}");
    let id = inv["id"].as_str().unwrap().to_owned();
    for _ in 0..200 {
        if stuck.requests().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stuck.requests().len(), 3, "the first node holds every run");
    first.kill9();
    let killed = std::time::Instant::now();

    let second = node(&llm).await;
    let summary =
        invocation_summary(&second.base, &key, &agent_id, &id, Duration::from_secs(60)).await;
    assert_eq!(summary["passed_count"], 3, "{summary}");
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(30), "retaken {took:?} after the kill");
}
