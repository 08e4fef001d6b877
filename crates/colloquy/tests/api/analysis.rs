//! Post-call analysis: a finished conversation is analysed by a job (summary, title, evaluation
//! criteria, collected data) through a forced tool call, the result is checked before it is
//! kept, the post-call webhook carries it, and `analysis/run`, `analysis/evaluations/run`,
//! `summary` and `/api/conversations/{id}/analysis` serve it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use colloquy_core::protocol::InitiationData;
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::fakes::{FakeLlm, Reply, Webhook, call, is_analysis, text, with_llm};
use crate::helpers::{Backend, TestApp, dual_db, poll};
use crate::ws;

/// The analysis a deterministic judge gives: the agent greeted (it said "Hello"), no refund
/// was offered, the city is the one the user named.
fn judge(req: &Value) -> Value {
    let asked = req["messages"][1]["content"].as_str().unwrap_or_default();
    let city =
        ["Oslo", "Paris"].into_iter().find(|c| asked.contains(&format!("user: I live in {c}")));
    json!({
        "transcript_summary": "The user said where they live.",
        "call_summary_title": "Home city",
        "evaluation_criteria_results": {
            "greeted": {"result": if asked.contains("agent: Hello") { "success" } else { "failure" }, "rationale": "It said hello."},
            "refund": {"result": "failure", "rationale": "No refund was offered."},
        },
        "data_collection_results": {"city": {"value": city, "rationale": "The user named it."}},
    })
}

fn agent_body() -> Value {
    json!({
        "name": "Concierge",
        "conversation_config": {"agent": {"first_message": "", "prompt": {"llm": "gpt-4o"}}},
        "platform_settings": {
            "evaluation": {"criteria": [
                {"id": "greeted", "name": "Greeting", "conversation_goal_prompt": "The agent greets the user"},
                {"id": "refund", "name": "Refund", "conversation_goal_prompt": "The agent offers a refund"},
            ]},
            "data_collection": {
                "city": {"type": "string", "description": "The city the user lives in", "enum": ["Oslo", "Paris"]},
                "order": {"type": "integer", "dynamic_variable": "order_id"},
            },
        },
    })
}

async fn create_agent(app: &TestApp, body: &Value) -> String {
    let (s, agent) = app.post("/v1/convai/agents/create", &app.admin_key, body).await;
    assert_eq!(s, 200, "{agent}");
    agent["agent_id"].as_str().unwrap().to_owned()
}

/// One live conversation: the user says `said`, the agent answers, the client hangs up.
async fn talk(app: &TestApp, agent_id: &str, said: &str) -> String {
    let data = InitiationData {
        dynamic_variables: Some(Map::from_iter([("order_id".to_owned(), json!(4711))])),
        ..Default::default()
    };
    let (mut socket, id) =
        ws::open(&ws::url(&app.base, &format!("agent_id={agent_id}")), data).await;
    ws::turn(&mut socket, said).await;
    socket.close(None).await.unwrap();
    id
}

/// Waits for the analysis job to end, and answers its status.
async fn analysed(app: &TestApp, id: &str) -> Value {
    poll(Duration::from_secs(15), Duration::from_millis(50), async || {
        let (s, status) =
            app.get(&format!("/api/conversations/{id}/analysis"), &app.admin_key).await;
        (s == 200
            && ["succeeded", "failed"].contains(&status["status"].as_str().unwrap_or_default()))
        .then_some(status)
    })
    .await
    .expect("the analysis ends")
}

async fn a_finished_conversation_is_analysed_and_delivered_with_its_analysis(backend: Backend) {
    let llm = FakeLlm::openai(|req: &Value| {
        if is_analysis(req) { call("record_analysis", judge(req)) } else { text("Hello, noted.") }
    })
    .await;
    let tweak = with_llm(&llm);
    let app = TestApp::spawn_with(backend, tweak).await;
    let key = &app.admin_key;
    let receiver = Webhook::start(200, "{}", Duration::ZERO).await;
    let (_, hook) = app
        .post(
            "/v1/workspace/webhooks",
            key,
            &json!({"settings": {"auth_type": "hmac", "name": "CRM", "webhook_url": format!("{}/in", receiver.base)}}),
        )
        .await;
    let settings = json!({"webhooks": {"post_call_webhook_id": hook["webhook_id"]}});
    assert_eq!(app.send(Method::PATCH, "/v1/convai/settings", key, &settings).await.0, 200);
    let agent_id = create_agent(&app, &agent_body()).await;
    let id = talk(&app, &agent_id, "I live in Oslo").await;

    let status = analysed(&app, &id).await;
    assert_eq!(status["status"], "succeeded", "{status}");
    assert_eq!(status["attempts"], 1);
    let (_, conversation) = app.get(&format!("/v1/convai/conversations/{id}"), key).await;
    let analysis = &conversation["analysis"];
    assert_eq!(analysis["transcript_summary"], "The user said where they live.");
    assert_eq!(analysis["call_summary_title"], "Home city");
    assert_eq!(analysis["evaluation_criteria_results"]["greeted"]["result"], "success");
    assert_eq!(analysis["evaluation_criteria_results"]["refund"]["criteria_id"], "refund");
    assert_eq!(analysis["call_successful"], "failure", "one criterion failed");
    assert_eq!(analysis["data_collection_results"]["city"]["value"], "Oslo");
    assert_eq!(analysis["data_collection_results"]["city"]["json_schema"]["type"], "string");
    assert_eq!(analysis["data_collection_results"]["order"]["value"], 4711, "from the variable");

    // Asked once, through a forced call whose schema leaves nothing out.
    let asked: Vec<Value> = llm.requests().into_iter().filter(is_analysis).collect();
    assert_eq!(asked.len(), 1);
    let schema = &asked[0]["tools"][0]["function"]["parameters"];
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(
        schema["properties"]["evaluation_criteria_results"]["required"],
        json!(["greeted", "refund"])
    );
    assert_eq!(
        schema["properties"]["data_collection_results"]["properties"]["city"]["properties"]["value"]
            ["enum"],
        json!(["Oslo", "Paris", null])
    );
    assert!(
        asked[0]["messages"][1]["content"].as_str().unwrap().contains("The agent offers a refund")
    );

    // The webhook waited for the analysis, and carries it.
    let delivered = poll(Duration::from_secs(10), Duration::from_millis(50), async || {
        receiver.received().first().cloned()
    })
    .await
    .expect("the post-call webhook is sent after the analysis");
    let event: Value = serde_json::from_str(&delivered.body).unwrap();
    assert_eq!(event["data"]["analysis"], *analysis);

    // The list shows the short forms, and filters on the analysed outcome.
    let (_, list) = app.get("/v1/convai/conversations?call_successful=failure", key).await;
    let item = &list["conversations"][0];
    assert_eq!(item["conversation_id"], id.as_str(), "{list}");
    assert_eq!(item["call_summary_title"], "Home city");
    assert_eq!(item["transcript_summary"], "The user said where they live.");
    assert_eq!(item["evaluation_criteria_results"]["greeted"]["result"], "success");
    assert_eq!(item["data_collection_results"]["city"], "Oslo");

    // The summary: the gist and the plain messages.
    let (s, summary) = app.get(&format!("/v1/convai/conversations/{id}/summary"), key).await;
    assert_eq!(s, 200, "{summary}");
    assert_eq!(summary["call_summary_title"], "Home city");
    assert_eq!(summary["call_successful"], "failure");
    assert_eq!(summary["message_count"], 2);
    assert_eq!(summary["messages"][0], json!({"role": "user", "message": "I live in Oslo"}));
    let (_, short) =
        app.get(&format!("/v1/convai/conversations/{id}/summary?max_messages=1"), key).await;
    assert_eq!(
        (short["messages_omitted"].clone(), short["messages"].clone()),
        (json!(true), Value::Null)
    );
    let (s, _) =
        app.get(&format!("/v1/convai/conversations/{id}/summary?max_messages=0"), key).await;
    assert_eq!(s, 422);
}
dual_db!(a_finished_conversation_is_analysed_and_delivered_with_its_analysis);

async fn an_answer_that_breaks_the_contract_fails_the_analysis_with_its_cause(backend: Backend) {
    // The judge leaves a criterion out and answers a city the item does not allow.
    let llm = FakeLlm::openai(|req: &Value| {
        if is_analysis(req) {
            call("record_analysis", json!({
                "transcript_summary": "x", "call_summary_title": "x",
                "evaluation_criteria_results": {"greeted": {"result": "success", "rationale": "ok"}},
                "data_collection_results": {"city": {"value": "Rome", "rationale": "?"}},
            }))
        } else {
            text("Hello.")
        }
    })
    .await;
    let app = TestApp::spawn_with(backend, with_llm(&llm)).await;
    let agent_id = create_agent(&app, &agent_body()).await;
    let id = talk(&app, &agent_id, "I live in Rome").await;

    let status = analysed(&app, &id).await;
    assert_eq!(status["status"], "failed", "{status}");
    let error = status["error"].as_str().unwrap();
    assert!(error.contains("not valid") && error.contains("refund"), "{error}");
    assert_eq!(status["analysis"], Value::Null, "nothing half-written");
    assert_eq!(llm.requests().iter().filter(|r| is_analysis(r)).count(), 2, "asked again once");
    let asked_again = llm.requests().into_iter().filter(is_analysis).nth(1).unwrap();
    assert!(asked_again["messages"][2]["content"].as_str().unwrap().contains("not valid"));
    let (_, conversation) =
        app.get(&format!("/v1/convai/conversations/{id}"), &app.admin_key).await;
    assert_eq!(conversation["analysis"]["transcript_summary"], "");
    assert_eq!(conversation["analysis"]["evaluation_criteria_results"], json!({}));
}
dual_db!(an_answer_that_breaks_the_contract_fails_the_analysis_with_its_cause);

async fn an_unreachable_llm_is_tried_again_later(backend: Backend) {
    let llm = FakeLlm::openai(
        |req: &Value| {
            if is_analysis(req) { Reply::Status(503) } else { text("Hello.") }
        },
    )
    .await;
    let app = TestApp::spawn_with(backend, with_llm(&llm)).await;
    let agent_id = create_agent(&app, &agent_body()).await;
    let id = talk(&app, &agent_id, "I live in Oslo").await;
    let status = poll(Duration::from_secs(15), Duration::from_millis(50), async || {
        let (_, status) =
            app.get(&format!("/api/conversations/{id}/analysis"), &app.admin_key).await;
        (status["status"] == "waiting_retry").then_some(status)
    })
    .await
    .expect("the failed try waits for its next");
    assert!(status["error"].as_str().unwrap().contains("503"), "{status}");
    let next = status["next_try_at_unix_secs"].as_i64().unwrap();
    let now = colloquy_core::time::now_secs();
    assert!((now + 5..=now + 11).contains(&next), "first retry about 10 s later: {next} vs {now}");
}
dual_db!(an_unreachable_llm_is_tried_again_later);

async fn analysis_runs_on_demand_and_one_criterion_can_be_run_again(backend: Backend) {
    let refunded = Arc::new(AtomicBool::new(false));
    let seen = refunded.clone();
    let llm = FakeLlm::openai(move |req: &Value| {
        if !is_analysis(req) {
            return text("Hello.");
        }
        let mut answer = judge(req);
        let only_criteria = req["tools"][0]["function"]["parameters"]["required"] == json!(["evaluation_criteria_results"]);
        if seen.load(Ordering::SeqCst) {
            answer["evaluation_criteria_results"]["refund"]["result"] = json!("success");
            answer["transcript_summary"] = json!("changed");
        }
        if only_criteria {
            answer = json!({"evaluation_criteria_results": {"refund": answer["evaluation_criteria_results"]["refund"]}});
        }
        call("record_analysis", answer)
    })
    .await;
    let app = TestApp::spawn_with(backend, with_llm(&llm)).await;
    let key = &app.admin_key;
    let agent_id = create_agent(&app, &agent_body()).await;
    let id = talk(&app, &agent_id, "I live in Paris").await;
    assert_eq!(analysed(&app, &id).await["status"], "succeeded");

    let (s, ran) =
        app.post(&format!("/v1/convai/conversations/{id}/analysis/run"), key, &json!({})).await;
    assert_eq!(s, 200, "{ran}");
    assert_eq!(ran["conversation_id"], id.as_str());
    assert_eq!(ran["analysis"]["data_collection_results"]["city"]["value"], "Paris");
    assert_eq!(ran["analysis"]["call_successful"], "failure");

    refunded.store(true, Ordering::SeqCst);
    let path = format!("/v1/convai/conversations/{id}/analysis/evaluations/run");
    let (s, ran) = app.post(&path, key, &json!({"evaluation_id": "refund"})).await;
    assert_eq!(s, 200, "{ran}");
    let analysis = &ran["analysis"];
    assert_eq!(analysis["evaluation_criteria_results"]["refund"]["result"], "success");
    assert_eq!(analysis["evaluation_criteria_results"]["greeted"]["result"], "success", "kept");
    assert_eq!(analysis["transcript_summary"], "The user said where they live.", "kept");
    assert_eq!(analysis["call_successful"], "success", "every criterion now succeeds");
    let (_, list) = app.get("/v1/convai/conversations?call_successful=success", key).await;
    assert_eq!(list["conversations"][0]["conversation_id"], id.as_str(), "{list}");

    let (s, e) = app.post(&path, key, &json!({"evaluation_id": "nope"})).await;
    assert_eq!((s, e["detail"][0]["loc"].clone()), (422, json!(["body", "evaluation_id"])), "{e}");
    let (s, _) = app.post(&path, key, &json!({})).await;
    assert_eq!(s, 422, "evaluation_id is required");

    // Another workspace sees none of it.
    let other = app.key("ws_other", "eve@example.com", "admin").await;
    for path in [
        format!("/v1/convai/conversations/{id}/summary"),
        format!("/api/conversations/{id}/analysis"),
    ] {
        assert_eq!(app.get(&path, &other).await.0, 404, "{path}");
    }
    let (s, _) =
        app.post(&format!("/v1/convai/conversations/{id}/analysis/run"), &other, &json!({})).await;
    assert_eq!(s, 404);
    let (s, _) = app.post("/v1/convai/conversations/nope/analysis/run", key, &json!({})).await;
    assert_eq!(s, 404);
}
dual_db!(analysis_runs_on_demand_and_one_criterion_can_be_run_again);

/// A criterion with nothing to judge by, or an id used twice, is refused at save.
#[tokio::test]
async fn criteria_without_a_prompt_are_refused() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut body = agent_body();
    body["platform_settings"]["evaluation"]["criteria"][1]["conversation_goal_prompt"] =
        json!("  ");
    let (s, e) = app.post("/v1/convai/agents/create", &app.admin_key, &body).await;
    assert_eq!(s, 422, "{e}");
    assert_eq!(
        e["detail"][0]["loc"],
        json!([
            "body",
            "platform_settings",
            "evaluation",
            "criteria",
            1,
            "conversation_goal_prompt"
        ])
    );
    body["platform_settings"]["evaluation"]["criteria"][1] =
        json!({"id": "greeted", "name": "Again", "conversation_goal_prompt": "Twice"});
    let (s, e) = app.post("/v1/convai/agents/create", &app.admin_key, &body).await;
    assert_eq!((s, e["detail"][0]["loc"][5].clone()), (422, json!("id")), "{e}");
}
