//! The LLMs a server can use with no account: the local model as the default provider, the
//! model list, and what a server with no LLM at all says.

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp};

async fn agent(app: &TestApp, llm: &str) -> String {
    let (s, agent) = app
        .post(
            "/v1/convai/agents/create",
            &app.admin_key,
            &json!({"conversation_config": {"agent": {"first_message": "Hello.", "prompt": {"prompt": "You are terse.", "llm": llm, "max_tokens": 16}}}}),
        )
        .await;
    assert_eq!(s, 200, "{agent}");
    agent["agent_id"].as_str().unwrap().to_owned()
}

fn simulation() -> Value {
    json!({"simulation_specification": {"simulated_user_config": {"first_message": "Is it raining?", "prompt": {"prompt": "A customer", "max_tokens": 16}}},
        "new_turns_limit": 2})
}

#[tokio::test]
async fn the_local_model_answers_when_no_provider_is_configured() {
    let models = tempfile::tempdir().unwrap();
    colloquy_engine::llm::embedded::tiny::write(&models.path().join("tiny.gguf")).unwrap();
    let dir = models.path().to_owned();
    let app = TestApp::spawn_with(Backend::Sqlite, move |c| c.models_dir = Some(dir)).await;
    let key = &app.admin_key;

    let (s, list) = app.get("/v1/convai/llm/list", key).await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["llms"][0]["llm"], "tiny", "{list}");
    assert_eq!(list["llms"][0]["supports_image_input"], false);
    assert_eq!(list["llms"].as_array().unwrap().len(), 1, "no provider to ask: {list}");
    assert_eq!(list["default_deprecation_config"]["warning_start_days"], 30);

    // Any model name goes to the local model, and its turns are free.
    let agent_id = agent(&app, "gpt-4o-mini").await;
    let (s, sim) = app
        .post(&format!("/v1/convai/agents/{agent_id}/simulate-conversation"), key, &simulation())
        .await;
    assert_eq!(s, 200, "{sim}");
    let turns = sim["simulated_conversation"].as_array().unwrap();
    let said: Vec<(&str, &str)> = turns
        .iter()
        .map(|t| (t["role"].as_str().unwrap(), t["message"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(said[0], ("agent", "Hello."), "{said:?}");
    assert_eq!(said[1], ("user", "Is it raining?"), "{said:?}");
    // The tiny model's greedy answer to this conversation (the engine's tests pin its words).
    assert_eq!(said[2].0, "agent", "{said:?}");
    assert!(!said[2].1.is_empty() && said[2].1.len() <= 64, "{said:?}");

    let (s, usage) = app
        .post(
            "/v1/convai/llm-usage/calculate",
            key,
            &json!({"prompt_length": 100, "number_of_pages": 0, "rag_enabled": false}),
        )
        .await;
    assert_eq!(s, 200, "{usage}");
    let local =
        usage["llm_prices"].as_array().unwrap().iter().find(|p| p["llm"] == "tiny").cloned();
    assert_eq!(
        local,
        Some(json!({"llm": "tiny", "price_per_minute": 0.0, "price_per_message": 0.0}))
    );

    let cookie = crate::dashboard::sign_in(&app, key).await;
    let (_, agents_page) = crate::dashboard::page(&app, &cookie, "/agents").await;
    assert!(!agents_page.contains("cannot answer yet"), "{agents_page}");

    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    // The conversation's analysis may still be running on the model.
    for gauge in ["running", "waiting"] {
        assert!(
            metrics.contains(&format!("\ncolloquy_local_llm_generations_{gauge} ")),
            "{metrics}"
        );
    }
}

#[tokio::test]
async fn a_server_with_no_llm_says_what_to_do() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (s, list) = app.get("/v1/convai/llm/list", &app.admin_key).await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["llms"], json!([]));

    let agent_id = agent(&app, "gpt-4o").await;
    let (_, sim) = app
        .post(
            &format!("/v1/convai/agents/{agent_id}/simulate-conversation"),
            &app.admin_key,
            &simulation(),
        )
        .await;
    assert!(sim.to_string().contains("colloquy models pull"), "{sim}");

    // Every dashboard page says so first.
    let cookie = crate::dashboard::sign_in(&app, &app.admin_key).await;
    for path in ["/agents", &format!("/agents/{agent_id}/playground")] {
        let (s, page) = crate::dashboard::page(&app, &cookie, path).await;
        assert_eq!(s, 200);
        let notice = page.find("cannot answer yet").expect(path);
        assert!(
            page[notice..]
                .starts_with("cannot answer yet: no LLM is configured: run `colloquy models pull`"),
            "{}",
            &page[notice..notice + 200]
        );
        assert!(notice < page.find("<h1").unwrap(), "before the page's own content");
    }
}
