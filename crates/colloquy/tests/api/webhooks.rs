//! Workspace settings (`/v1/convai/settings`, `/settings/dashboard`), workspace webhooks
//! (`/v1/workspace/webhooks`) and the post-call deliveries they receive, with their log
//! (`/api/webhook-deliveries`).

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::fakes::{FakeLlm, Webhook, text, with_llm};
use crate::helpers::{Backend, TestApp, dual_db, poll};
use crate::ws;

async fn patch(app: &TestApp, path: &str, key: &str, body: Value) -> (u16, Value) {
    app.send(Method::PATCH, path, key, &body).await
}

async fn create_webhook(app: &TestApp, url: &str) -> (String, String) {
    let (s, created) = app
        .post(
            "/v1/workspace/webhooks",
            &app.admin_key,
            &json!({"settings": {"auth_type": "hmac", "name": "CRM", "webhook_url": url}}),
        )
        .await;
    assert_eq!(s, 200, "{created}");
    let id = created["webhook_id"].as_str().unwrap().to_owned();
    (id, created["webhook_secret"].as_str().unwrap().to_owned())
}

/// The first loc of a 422's detail.
fn loc(body: &Value) -> Value {
    body["detail"][0]["loc"].clone()
}

async fn settings_read_whole_and_patch_field_by_field(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.webhook_allow = "127.0.0.1".into()).await;
    let key = &app.admin_key;
    let defaults = json!({
        "conversation_initiation_client_data_webhook": null,
        "webhooks": {"post_call_webhook_id": null, "events": [], "transcript_format": "json", "send_audio": null},
        "can_use_mcp_servers": false,
        "rag_retention_period_days": 10,
        "conversation_embedding_retention_days": null,
        "default_livekit_stack": "standard"
    });
    assert_eq!(app.get("/v1/convai/settings", key).await, (200, defaults.clone()));

    let (s, patched) = patch(&app, "/v1/convai/settings", key, json!({})).await;
    assert_eq!((s, &patched), (200, &defaults), "an empty PATCH changes nothing");
    let (s, patched) = patch(
        &app,
        "/v1/convai/settings",
        key,
        json!({"rag_retention_period_days": 5, "webhooks": {"events": ["transcript", "audio"]},
            "conversation_initiation_client_data_webhook": {"url": "http://127.0.0.1:9/init",
                "request_headers": {"X-Team": "support"}}}),
    )
    .await;
    assert_eq!(s, 200, "{patched}");
    assert_eq!(patched["rag_retention_period_days"], 5);
    assert_eq!(
        patched["webhooks"],
        json!({"post_call_webhook_id": null, "events": ["transcript", "audio"], "transcript_format": "json", "send_audio": null})
    );
    // Fields the second PATCH leaves out keep what the first set; `webhooks` merges by key.
    let (s, again) = patch(
        &app,
        "/v1/convai/settings",
        key,
        json!({"can_use_mcp_servers": true, "webhooks": {"transcript_format": "opentelemetry"}}),
    )
    .await;
    assert_eq!(s, 200, "{again}");
    assert_eq!(again["rag_retention_period_days"], 5);
    assert_eq!(again["can_use_mcp_servers"], true);
    assert_eq!(again["webhooks"]["events"], json!(["transcript", "audio"]));
    assert_eq!(again["webhooks"]["transcript_format"], "opentelemetry");
    assert_eq!(
        again["conversation_initiation_client_data_webhook"]["request_headers"]["X-Team"],
        "support"
    );
    assert_eq!(app.get("/v1/convai/settings", key).await.1, again, "stored as answered");
    // An explicit null clears a nullable field.
    let (_, cleared) = patch(
        &app,
        "/v1/convai/settings",
        key,
        json!({"conversation_initiation_client_data_webhook": null}),
    )
    .await;
    assert_eq!(cleared["conversation_initiation_client_data_webhook"], Value::Null);

    // Bad input: a clear 422 where the reference puts it, and nothing changes.
    let bad = [
        (json!({"rag_retention_period_days": 0}), json!(["body", "rag_retention_period_days"])),
        (json!({"default_livekit_stack": "fancy"}), json!(["body", "default_livekit_stack"])),
        (json!({"webhooks": {"events": ["everything"]}}), json!(["body", "webhooks", "events", 0])),
        (
            json!({"webhooks": {"post_call_webhook_id": "webhook_nope"}}),
            json!(["body", "webhooks", "post_call_webhook_id"]),
        ),
        (
            json!({"conversation_initiation_client_data_webhook": {"url": "http://10.1.2.3/x", "request_headers": {}}}),
            json!(["body", "conversation_initiation_client_data_webhook", "url"]),
        ),
        (
            json!({"conversation_initiation_client_data_webhook": {"url": "https://example.com/x",
                "request_headers": {"Authorization": {"secret_id": "secret_missing"}}}}),
            json!([
                "body",
                "conversation_initiation_client_data_webhook",
                "request_headers",
                "Authorization"
            ]),
        ),
    ];
    for (body, at) in bad {
        let (s, err) = patch(&app, "/v1/convai/settings", key, body.clone()).await;
        assert_eq!((s, loc(&err)), (422, at), "{body}: {err}");
    }
    assert_eq!(app.get("/v1/convai/settings", key).await.1, cleared);

    // Dashboard settings: charts replaced as a whole, at most four.
    assert_eq!(app.get("/v1/convai/settings/dashboard", key).await, (200, json!({"charts": []})));
    let charts = json!([{"type": "call_success", "name": "Success"},
        {"type": "criteria", "name": "Solved", "criteria_id": "solved"}]);
    let (s, dash) =
        patch(&app, "/v1/convai/settings/dashboard", key, json!({"charts": charts})).await;
    assert_eq!((s, &dash["charts"]), (200, &charts), "{dash}");
    let five = json!({"charts": vec![json!({"type": "call_success", "name": "x"}); 5]});
    assert_eq!(patch(&app, "/v1/convai/settings/dashboard", key, five).await.0, 422);
    let missing = json!({"charts": [{"type": "criteria", "name": "no id"}]});
    assert_eq!(patch(&app, "/v1/convai/settings/dashboard", key, missing).await.0, 422);
    assert_eq!(app.get("/v1/convai/settings/dashboard", key).await.1["charts"], charts);

    // Only administrators change settings; each workspace has its own.
    let reader = app.key("default", "r@x.test", "agents:read conversations:read").await;
    assert_eq!(app.get("/v1/convai/settings", &reader).await.1, cleared);
    assert_eq!(patch(&app, "/v1/convai/settings", &reader, json!({})).await.0, 403);
    assert_eq!(patch(&app, "/v1/convai/settings/dashboard", &reader, json!({})).await.0, 403);
    let theirs = app.key("globex", "g@globex.test", "admin").await;
    assert_eq!(app.get("/v1/convai/settings", &theirs).await.1, defaults);
    assert_eq!(app.get("/v1/convai/settings/dashboard", &theirs).await.1, json!({"charts": []}));
}
dual_db!(settings_read_whole_and_patch_field_by_field);

async fn webhooks_are_created_listed_patched_and_deleted(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.webhook_allow = "127.0.0.1".into()).await;
    let key = &app.admin_key;
    assert_eq!(app.get("/v1/workspace/webhooks", key).await, (200, json!({"webhooks": []})));
    let (id, secret) = create_webhook(&app, "https://hooks.example.com/post-call").await;
    assert!(id.starts_with("webhook_"), "{id}");
    assert!(
        secret.starts_with("wsec_")
            && secret.len() == 69
            && secret[5..].bytes().all(|b| b.is_ascii_hexdigit()),
        "{secret}"
    );

    let (s, list) = app.get("/v1/workspace/webhooks", key).await;
    assert_eq!(s, 200);
    let created_at = list["webhooks"][0]["created_at_unix"].as_i64().unwrap();
    assert_eq!(
        list,
        json!({"webhooks": [{"name": "CRM", "webhook_id": id, "webhook_url": "https://hooks.example.com/post-call",
            "is_disabled": false, "is_auto_disabled": false, "created_at_unix": created_at, "auth_type": "hmac",
            "usage": null, "events": null, "most_recent_failure_error_code": null,
            "most_recent_failure_timestamp": null}]})
    );
    assert!(!list.to_string().contains(&secret[5..]), "the secret is shown once");

    // Bad input stores nothing.
    let bad = [
        (
            json!({"settings": {"auth_type": "hmac", "name": "x", "webhook_url": "http://10.1.2.3/x"}}),
            "webhook_url",
        ),
        (
            json!({"settings": {"auth_type": "hmac", "name": "x", "webhook_url": "ftp://example.com/x"}}),
            "webhook_url",
        ),
        (
            json!({"settings": {"auth_type": "hmac", "name": "x", "webhook_url": "https://169.254.169.254/x"}}),
            "webhook_url",
        ),
        (
            json!({"settings": {"auth_type": "hmac", "name": " ", "webhook_url": "https://example.com"}}),
            "name",
        ),
        (
            json!({"settings": {"auth_type": "oauth2", "name": "x", "webhook_url": "https://example.com"}}),
            "auth_type",
        ),
        (
            json!({"settings": {"auth_type": "hmac", "name": "x", "webhook_url": "https://example.com",
            "request_headers": {"ElevenLabs-Signature": "forged"}}}),
            "request_headers",
        ),
        (json!({"settings": {"auth_type": "hmac", "name": "x"}}), "webhook_url"),
    ];
    for (body, field) in bad {
        let (s, err) = app.post("/v1/workspace/webhooks", key, &body).await;
        assert_eq!(s, 422, "{body}: {err}");
        assert_eq!(err["detail"][0]["loc"][2], field, "{err}");
    }
    assert_eq!(
        app.get("/v1/workspace/webhooks", key).await.1["webhooks"].as_array().unwrap().len(),
        1
    );

    let path = format!("/v1/workspace/webhooks/{id}");
    let (s, ok) = patch(
        &app,
        &path,
        key,
        json!({"is_disabled": true, "name": "CRM (paused)", "retry_enabled": false,
            "request_headers": {"X-Team": "support", "X-Gone": null}, "events": ["agent_qa"]}),
    )
    .await;
    assert_eq!((s, ok), (200, json!({"status": "ok"})));
    assert_eq!(patch(&app, &path, key, json!({"name": "no flag"})).await.0, 422);
    assert_eq!(
        patch(
            &app,
            "/v1/workspace/webhooks/webhook_nope",
            key,
            json!({"is_disabled": false, "name": "x"})
        )
        .await
        .0,
        404
    );

    // In use by the workspace's settings: listed with its usage, and not deletable.
    let (s, _) =
        patch(&app, "/v1/convai/settings", key, json!({"webhooks": {"post_call_webhook_id": id}}))
            .await;
    assert_eq!(s, 200);
    let (_, list) = app.get("/v1/workspace/webhooks?include_usages=true", key).await;
    let hook = &list["webhooks"][0];
    assert_eq!(hook["name"], "CRM (paused)");
    assert_eq!(hook["is_disabled"], true);
    assert_eq!(hook["usage"], json!([{"usage_type": "ConvAI Settings"}]));
    assert_eq!(hook["events"], json!(["agent_qa"]));
    let (s, err) = app.send(Method::DELETE, &path, key, &json!({})).await;
    assert_eq!(s, 409, "{err}");

    // Another workspace neither sees nor touches it.
    let theirs = app.key("globex", "g@globex.test", "admin").await;
    assert_eq!(app.get("/v1/workspace/webhooks", &theirs).await.1, json!({"webhooks": []}));
    assert_eq!(
        patch(&app, &path, &theirs, json!({"is_disabled": false, "name": "x"})).await.0,
        404
    );
    assert_eq!(app.send(Method::DELETE, &path, &theirs, &json!({})).await.0, 404);
    let (s, _) = patch(
        &app,
        "/v1/convai/settings",
        &theirs,
        json!({"webhooks": {"post_call_webhook_id": id}}),
    )
    .await;
    assert_eq!(s, 422, "another workspace's webhook is not found");
    let reader = app.key("default", "r@x.test", "agents:read conversations:read").await;
    assert_eq!(app.get("/v1/workspace/webhooks", &reader).await.0, 403);

    // Released by the settings, it can go.
    patch(&app, "/v1/convai/settings", key, json!({"webhooks": {"post_call_webhook_id": null}}))
        .await;
    let (s, ok) = app.send(Method::DELETE, &path, key, &json!({})).await;
    assert_eq!((s, ok), (200, json!({"status": "ok"})));
    assert_eq!(app.get("/v1/workspace/webhooks", key).await.1, json!({"webhooks": []}));
    assert_eq!(app.send(Method::DELETE, &path, key, &json!({})).await.0, 404);
}
dual_db!(webhooks_are_created_listed_patched_and_deleted);

/// Checks an `ElevenLabs-Signature` value the way the official SDKs' `construct_event` does.
fn verify(header: &str, secret: &str, body: &str) -> bool {
    let Some((t, v0)) = header.split_once(',') else { return false };
    let (Some(t), Some(v0)) = (t.strip_prefix("t="), v0.strip_prefix("v0=")) else {
        return false;
    };
    let Ok(t) = t.parse::<i64>() else { return false };
    let fresh = colloquy_core::time::now_secs() - t < 30 * 60;
    fresh
        && colloquy_core::signature::sign(secret.as_bytes(), t, body.as_bytes()) == header
        && v0.len() == 64
}

async fn post_call_deliveries_are_signed_retried_logged_and_redelivered(backend: Backend) {
    let llm = FakeLlm::openai(|_: &Value| text("Your order ships tomorrow.")).await;
    let tweak = with_llm(&llm);
    let app = TestApp::spawn_with(backend, |c| {
        tweak(c);
        c.webhook_first_retry_secs = 1;
    })
    .await;
    let key = &app.admin_key;
    let receiver = Webhook::start(500, r#"{"error":"busy"}"#, Duration::ZERO).await;
    receiver.set_status_from(2, 200);
    let (webhook_id, secret) = create_webhook(&app, &format!("{}/post-call", receiver.base)).await;
    let (s, _) = patch(
        &app,
        "/v1/convai/settings",
        key,
        json!({"webhooks": {"post_call_webhook_id": webhook_id, "events": ["transcript"]}}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, agent) = app
        .post(
            "/v1/convai/agents/create",
            key,
            &json!({"name": "Orders", "conversation_config": {"agent": {"first_message": "", "prompt": {"llm": "gpt-4o"}}}}),
        )
        .await;
    assert_eq!(s, 200, "{agent}");
    let agent_id = agent["agent_id"].as_str().unwrap();

    let (mut socket, conversation_id) =
        ws::open(&ws::url(&app.base, &format!("agent_id={agent_id}")), Default::default()).await;
    ws::turn(&mut socket, "where is my order?").await;
    socket.close(None).await.unwrap();

    let first = poll(Duration::from_secs(10), Duration::from_millis(50), async || {
        receiver.received().first().cloned()
    })
    .await
    .expect("the receiver is called once the conversation ends");
    // Generous: on a loaded CI machine the retry (1 s, then 2 s) has been seen to take longer.
    let second = poll(Duration::from_secs(30), Duration::from_millis(100), async || {
        receiver.received().get(1).cloned()
    })
    .await
    .expect("the failed try is retried");

    for delivery in [&first, &second] {
        assert_eq!(delivery.method, "POST");
        assert_eq!(delivery.uri, "/post-call");
        let signature = delivery.headers["elevenlabs-signature"].to_str().unwrap();
        assert!(verify(signature, &secret, &delivery.body), "{signature} signs the body");
        assert!(!verify(signature, "wsec_other", &delivery.body));
        assert_eq!(delivery.headers["content-type"], "application/json");
    }
    assert_eq!(first.body, second.body, "every try sends the same event");
    let idempotency = first.headers["idempotency-key"].to_str().unwrap();
    assert_eq!(second.headers["idempotency-key"], idempotency);
    let event: Value = serde_json::from_str(&first.body).unwrap();
    assert_eq!(event["type"], "post_call_transcription");
    assert!(event["event_timestamp"].as_i64().unwrap() > 1_700_000_000);
    let (_, stored) = app.get(&format!("/v1/convai/conversations/{conversation_id}"), key).await;
    assert_eq!(event["data"], stored, "the data is the conversation as GET answers it");
    assert_eq!(event["data"]["transcript"][0]["message"], "where is my order?");
    assert_eq!(event["data"]["transcript"][1]["message"], "Your order ships tomorrow.");

    // The log: newest first, one entry per try (the second recorded once its answer is in).
    let log = format!("/api/webhook-deliveries?conversationId={conversation_id}");
    let entries = poll(Duration::from_secs(10), Duration::from_millis(50), async || {
        let (s, entries) = app.get(&log, key).await;
        assert_eq!(s, 200, "{entries}");
        let entries = entries["deliveries"].as_array().unwrap().clone();
        (entries.first().is_some_and(|e| e["status"] != "pending")).then_some(entries)
    })
    .await
    .expect("the second try is recorded");
    assert_eq!(entries.len(), 2, "{entries:?}");
    let (ok, failed) = (&entries[0], &entries[1]);
    assert_eq!((ok["attempt"].as_i64(), ok["status"].as_str()), (Some(2), Some("success")));
    assert_eq!(ok["response_code"], 200);
    assert_eq!((failed["attempt"].as_i64(), failed["status"].as_str()), (Some(1), Some("failed")));
    assert_eq!(failed["response_code"], 500);
    assert_eq!(failed["response_body"], r#"{"error":"busy"}"#);
    for entry in &entries {
        assert_eq!(entry["webhook_id"], webhook_id.as_str());
        assert_eq!(entry["event_type"], "post_call_transcription");
        assert_eq!(entry["delivery_id"], idempotency);
        assert!(entry["latency_ms"].as_i64().is_some());
    }
    let (_, only_failed) = app.get(&format!("{log}&status=failed"), key).await;
    assert_eq!(only_failed["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(app.get(&format!("{log}&status=lost"), key).await.0, 422);
    let (_, hooks) = app.get("/v1/workspace/webhooks", key).await;
    assert_eq!(hooks["webhooks"][0]["most_recent_failure_error_code"], 500);

    // Sent again on request, under the same idempotency key.
    let redeliver = format!("/api/webhook-deliveries/{}/redeliver", ok["id"].as_str().unwrap());
    let (s, answer) = app.post(&redeliver, key, &json!({})).await;
    assert_eq!((s, answer), (200, json!({"status": "ok"})));
    let third = poll(Duration::from_secs(10), Duration::from_millis(50), async || {
        receiver.received().get(2).cloned()
    })
    .await
    .expect("redelivered");
    assert_eq!(third.headers["idempotency-key"], idempotency);
    let (_, entries) = app.get(&log, key).await;
    let newest = &entries["deliveries"][0];
    assert_eq!((newest["attempt"].as_i64(), newest["status"].as_str()), (Some(3), Some("success")));

    // The log is the workspace's own.
    let theirs = app.key("globex", "g@globex.test", "admin").await;
    let (_, none) = app.get(&log, &theirs).await;
    assert_eq!(none["deliveries"], json!([]));
    assert_eq!(app.post(&redeliver, &theirs, &json!({})).await.0, 404);
}
dual_db!(post_call_deliveries_are_signed_retried_logged_and_redelivered);

async fn an_agent_override_picks_its_own_webhook(backend: Backend) {
    let llm = FakeLlm::openai(|_: &Value| text("Hello.")).await;
    let app = TestApp::spawn_with(backend, with_llm(&llm)).await;
    let key = &app.admin_key;
    let workspace_receiver = Webhook::start(200, "{}", Duration::ZERO).await;
    let agent_receiver = Webhook::start(200, "{}", Duration::ZERO).await;
    let (workspace_hook, _) = create_webhook(&app, &format!("{}/w", workspace_receiver.base)).await;
    let (agent_hook, _) = create_webhook(&app, &format!("{}/a", agent_receiver.base)).await;
    patch(
        &app,
        "/v1/convai/settings",
        key,
        json!({"webhooks": {"post_call_webhook_id": workspace_hook}}),
    )
    .await;
    let (s, agent) = app
        .post(
            "/v1/convai/agents/create",
            key,
            &json!({"conversation_config": {"agent": {"first_message": "", "prompt": {"llm": "gpt-4o"}}},
                "platform_settings": {"workspace_overrides": {"webhooks": {"post_call_webhook_id": agent_hook}}}}),
        )
        .await;
    assert_eq!(s, 200, "{agent}");
    let agent_id = agent["agent_id"].as_str().unwrap();
    let (mut socket, conversation_id) =
        ws::open(&ws::url(&app.base, &format!("agent_id={agent_id}")), Default::default()).await;
    ws::turn(&mut socket, "hi").await;
    socket.close(None).await.unwrap();
    let got = poll(Duration::from_secs(10), Duration::from_millis(50), async || {
        agent_receiver.received().first().cloned()
    })
    .await
    .expect("the agent's webhook is called");
    assert!(got.body.contains(&conversation_id));
    let (_, list) = app.get("/v1/workspace/webhooks?include_usages=true", key).await;
    let usage_of = |id: &str| {
        list["webhooks"].as_array().unwrap().iter().find(|w| w["webhook_id"] == id).unwrap()["usage"]
            .clone()
    };
    assert_eq!(usage_of(&agent_hook), json!([{"usage_type": "ConvAI Agent Settings"}]));
    assert_eq!(usage_of(&workspace_hook), json!([{"usage_type": "ConvAI Settings"}]));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(workspace_receiver.received().is_empty(), "the workspace's webhook is not called");
    let (s, _) = app
        .send(Method::DELETE, &format!("/v1/workspace/webhooks/{agent_hook}"), key, &json!({}))
        .await;
    assert_eq!(s, 409, "in use by the agent");
}
dual_db!(an_agent_override_picks_its_own_webhook);

/// The queue at the store: a taken delivery is held (no other worker gets it), taken over once
/// its hold runs out, finished only by its holder; ten failures in a row with no success for a
/// week disable the webhook, and re-enabling it starts the count again.
async fn deliveries_are_held_taken_over_and_disable_a_failing_webhook(backend: Backend) {
    use colloquy_store::{
        DeliveryStore, NewDelivery, TryOutcome, WebhookChange, WebhookRow, WebhookStore,
        WorkspaceStore,
    };

    let db = crate::helpers::TestDb::new(backend).await;
    let store = db.store().await;
    let ws = store.ensure_workspace("hooks").await.unwrap().id;
    let user = store.ensure_user(&ws, "u", "u@x.test").await.unwrap();
    let hook = WebhookRow {
        id: "webhook_1".into(),
        workspace_id: ws.clone(),
        name: "h".into(),
        url: "https://example.com".into(),
        auth_type: "hmac".into(),
        sealed_secret: "sealed".into(),
        request_headers: "{}".into(),
        events: "[]".into(),
        is_disabled: 0,
        is_auto_disabled: 0,
        retry_enabled: None,
        consecutive_failures: 0,
        last_success_at: None,
        last_failure_code: None,
        last_failure_at: None,
        created_by: user.id.clone(),
        created_at: 1,
        updated_at: 1,
    };
    store.insert_webhook(&hook).await.unwrap();
    let now = 1_000_000;
    let failed = TryOutcome {
        response_code: Some(503),
        latency_ms: 3,
        attempted: true,
        ..TryOutcome::default()
    };
    for i in 0..10 {
        let delivery = NewDelivery {
            workspace_id: ws.clone(),
            webhook_id: hook.id.clone(),
            conversation_id: Some(format!("c{i}")),
            event_type: "post_call_transcription".into(),
            payload: "{}".into(),
        };
        let id = store.queue_delivery(&delivery, now).await.unwrap();
        let due = store.take_due_delivery(now, 30).await.unwrap().expect("due");
        assert_eq!(due.id, id);
        assert!(store.take_due_delivery(now, 30).await.unwrap().is_none(), "held");
        if i == 0 {
            // Its holder died: another worker takes it once the hold is over, and the first
            // holder's late result is refused.
            let again = store.take_due_delivery(now + 31, 30).await.unwrap().expect("taken over");
            assert!(!store.finish_try(&due, &failed, now + 32, 10, 7 * 86_400).await.unwrap());
            assert!(store.finish_try(&again, &failed, now + 32, 10, 7 * 86_400).await.unwrap());
        } else {
            assert!(store.finish_try(&due, &failed, now + 1, 10, 7 * 86_400).await.unwrap());
        }
        let stored = store.get_webhook(&ws, &hook.id).await.unwrap();
        assert_eq!(stored.consecutive_failures, i + 1);
        assert_eq!(stored.is_auto_disabled, i64::from(i == 9), "after {} failures", i + 1);
    }
    let log = store
        .list_attempts(&ws, &colloquy_store::AttemptFilter::default(), None, 100)
        .await
        .unwrap();
    assert_eq!(log.len(), 10, "one entry per try");
    assert!(log.iter().all(|a| a.status == "failed" && a.response_code == Some(503)));

    let enable = WebhookChange { name: "h".into(), is_disabled: false, ..WebhookChange::default() };
    store.update_webhook(&ws, &hook.id, &enable, now + 2).await.unwrap();
    let stored = store.get_webhook(&ws, &hook.id).await.unwrap();
    assert_eq!((stored.is_auto_disabled, stored.consecutive_failures), (0, 0));
}
dual_db!(deliveries_are_held_taken_over_and_disable_a_failing_webhook);

/// A delivery waiting for its retry when its node is killed is sent by the restarted node,
/// under the same idempotency key, and its log shows both tries.
#[tokio::test]
async fn a_pending_delivery_survives_kill9() {
    use crate::helpers::{ChildServer, client, status_json};

    let llm = FakeLlm::openai(|_: &Value| text("Noted.")).await;
    let receiver = Webhook::start(503, "{}", Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let key = colloquy_core::keys::generate_token();
    let llm_url = format!("{}/v1", llm.base);
    let envs = [
        ("COLLOQUY_BOOTSTRAP_API_KEY", key.as_str()),
        ("COLLOQUY_WEBHOOK_ALLOW", "127.0.0.1"),
        ("COLLOQUY_WEBHOOK_FIRST_RETRY_SECS", "3"),
        ("OPENAI_BASE_URL", llm_url.as_str()),
        ("OPENAI_API_KEY", "sk-fake"),
    ];
    let server = ChildServer::start(dir.path(), &envs).await;
    let http = client();
    let call = async |method: Method, path: &str, body: Value| {
        let r = http
            .request(method, format!("{}{path}", server.base))
            .header("xi-api-key", &key)
            .json(&body)
            .send()
            .await
            .unwrap();
        status_json(r).await
    };
    let (_, hook) = call(
        Method::POST,
        "/v1/workspace/webhooks",
        json!({"settings": {"auth_type": "hmac", "name": "h", "webhook_url": format!("{}/in", receiver.base)}}),
    )
    .await;
    let hook_id = hook["webhook_id"].as_str().unwrap().to_owned();
    call(
        Method::PATCH,
        "/v1/convai/settings",
        json!({"webhooks": {"post_call_webhook_id": hook_id}}),
    )
    .await;
    let (_, agent) = call(
        Method::POST,
        "/v1/convai/agents/create",
        json!({"conversation_config": {"agent": {"first_message": "", "prompt": {"llm": "gpt-4o"}}}}),
    )
    .await;
    let agent_id = agent["agent_id"].as_str().unwrap().to_owned();
    let (mut socket, conversation_id) =
        ws::open(&ws::url(&server.base, &format!("agent_id={agent_id}")), Default::default()).await;
    ws::turn(&mut socket, "remember this").await;
    socket.close(None).await.unwrap();
    // Killed once the failed try is recorded: the delivery then waits for its retry, which is
    // what this test is about (a node killed mid-try leaves its delivery held until the hold
    // runs out, which is far longer than this test waits).
    let log = async |base: &str| {
        let r = http
            .get(format!("{base}/api/webhook-deliveries?conversationId={conversation_id}"))
            .header("xi-api-key", &key)
            .send()
            .await
            .unwrap();
        status_json(r).await.1
    };
    poll(Duration::from_secs(10), Duration::from_millis(50), async || {
        let log = log(&server.base).await;
        let entries = log["deliveries"].as_array().cloned().unwrap_or_default();
        entries.iter().any(|d| d["status"] == "failed").then_some(())
    })
    .await
    .expect("the first try fails and is recorded");
    server.kill9();

    receiver.set_status(200);
    let server = ChildServer::start(dir.path(), &envs).await;
    let retried = poll(Duration::from_secs(30), Duration::from_millis(100), async || {
        receiver.received().get(1).cloned()
    })
    .await
    .expect("the restarted node sends the pending delivery");
    let first = &receiver.received()[0];
    assert_eq!(retried.headers["idempotency-key"], first.headers["idempotency-key"]);
    assert!(retried.body.contains(&conversation_id));
    // The receiver has the request a moment before the node records its answer.
    let log = poll(Duration::from_secs(5), Duration::from_millis(50), async || {
        let log = log(&server.base).await;
        let settled = log["deliveries"].as_array()?.iter().all(|d| d["status"] != "pending");
        settled.then_some(log)
    })
    .await
    .expect("the retry's outcome is recorded");
    let statuses: Vec<(i64, &str)> = log["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["attempt"].as_i64().unwrap(), d["status"].as_str().unwrap()))
        .collect();
    assert_eq!(statuses, [(2, "success"), (1, "failed")], "{log}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 2, "sent once more, not again and again");
}

/// An agent that asks for it gets its client data from the conversation-initiation webhook
/// (laid over the client's, judged by the agent's override policy); a failing webhook leaves
/// the client's data, and every call is in the delivery log, not to be sent again.
async fn the_initiation_webhook_fills_the_client_data(backend: Backend) {
    let llm = FakeLlm::openai(|_: &Value| text("Noted.")).await;
    let app = TestApp::spawn_with(backend, with_llm(&llm)).await;
    let key = &app.admin_key;
    let answer = json!({
        "type": "conversation_initiation_client_data",
        "dynamic_variables": {"tier": "gold"},
        "conversation_config_override": {"agent": {"first_message": "Welcome back, {{name}} the {{tier}} member"}},
    });
    let receiver = Webhook::start(200, &answer.to_string(), Duration::ZERO).await;
    let hook =
        json!({"url": format!("{}/init", receiver.base), "request_headers": {"X-Token": "abc"}});
    let body = json!({"conversation_initiation_client_data_webhook": hook});
    assert_eq!(patch(&app, "/v1/convai/settings", key, body).await.0, 200);
    let (s, agent) = app
        .post(
            "/v1/convai/agents/create",
            key,
            &json!({
                "conversation_config": {"agent": {"first_message": "Hello", "prompt": {"llm": "gpt-4o"}}},
                "platform_settings": {"overrides": {
                    "enable_conversation_initiation_client_data_from_webhook": true,
                    "conversation_config_override": {"agent": {"first_message": true}},
                }},
            }),
        )
        .await;
    assert_eq!(s, 200, "{agent}");
    let agent_id = agent["agent_id"].as_str().unwrap();
    let start = async |user: &str| {
        let data = colloquy_core::protocol::InitiationData {
            user_id: Some(user.into()),
            dynamic_variables: Some(serde_json::Map::from_iter([("name".into(), json!("Ada"))])),
            ..Default::default()
        };
        let (mut socket, _) =
            ws::open(&ws::url(&app.base, &format!("agent_id={agent_id}")), data).await;
        let greeting = ws::next_of(&mut socket, "agent_response").await;
        socket.close(None).await.unwrap();
        greeting["agent_response_event"]["agent_response"].clone()
    };

    assert_eq!(start("u1").await, "Welcome back, Ada the gold member");
    let call = &receiver.received()[0];
    assert_eq!((call.method.as_str(), call.uri.as_str()), ("POST", "/init"));
    assert_eq!(call.headers["x-token"], "abc");
    let sent: Value = serde_json::from_str(&call.body).unwrap();
    assert_eq!(sent["agent_id"], agent_id);
    assert_eq!(sent["caller_id"], "u1");
    assert_eq!(sent["conversation_initiation_client_data"]["dynamic_variables"]["name"], "Ada");

    receiver.set_status(500);
    assert_eq!(start("u2").await, "Hello", "a failing webhook leaves the client's data");

    let path = "/api/webhook-deliveries?webhookId=conversation_initiation_webhook";
    let (_, log) = app.get(path, key).await;
    let entries: Vec<(&str, &str, i64)> = log["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let kind = d["event_type"].as_str().unwrap();
            (kind, d["status"].as_str().unwrap(), d["response_code"].as_i64().unwrap())
        })
        .collect();
    let event = "conversation_initiation_client_data";
    assert_eq!(entries, [(event, "failed", 500), (event, "success", 200)], "{log}");
    let first = log["deliveries"][0]["id"].as_str().unwrap();
    let (s, refused) =
        app.post(&format!("/api/webhook-deliveries/{first}/redeliver"), key, &json!({})).await;
    assert_eq!(s, 409, "{refused}");

    // A conversation that cannot start is a call_initiation_failure, where one is asked for.
    let failures = Webhook::start(200, "{}", Duration::ZERO).await;
    let (hook_id, _) = create_webhook(&app, &format!("{}/failures", failures.base)).await;
    let body = json!({"webhooks": {"post_call_webhook_id": hook_id, "events": ["call_initiation_failure"]}});
    assert_eq!(patch(&app, "/v1/convai/settings", key, body).await.0, 200);
    let refused = colloquy_core::protocol::InitiationData {
        conversation_config_override: Some(json!({"agent": {"language": "fr"}})),
        ..Default::default()
    };
    let (mut socket, _) =
        ws::connect(&ws::url(&app.base, &format!("agent_id={agent_id}")), &[]).await;
    ws::initiate(&mut socket, refused).await;
    let closed = ws::next_of(&mut socket, "none").await;
    assert_eq!(closed["close"], 1008, "{closed}");
    let failed = poll(Duration::from_secs(10), Duration::from_millis(50), async || {
        failures.received().first().cloned()
    })
    .await
    .expect("call_initiation_failure is sent");
    let event: Value = serde_json::from_str(&failed.body).unwrap();
    assert_eq!(event["type"], "call_initiation_failure");
    assert_eq!(event["data"]["agent_id"], agent_id);
    assert!(
        event["data"]["failure_reason"].as_str().unwrap().contains("agent.language"),
        "{event}"
    );
}
dual_db!(the_initiation_webhook_fills_the_client_data);
