//! `GET /api/tool-calls?executionId=...`: every tool call of one conversation, in the ohallo
//! shape, with its errors in theirs.

use colloquy_store::AuditStore;
use serde_json::{Value, json};

use crate::audit::{conversation, default_ws, execution};
use crate::helpers::{Backend, TestApp, dual_db, status_json};

async fn tool_calls_of_a_conversation_in_the_ohallo_shape(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.admin_key;
    let store = app.db.store().await;
    let ws = default_ws(&store).await;
    let conv = conversation(&store, &ws, "agent_a").await;
    let other_conv = conversation(&store, &ws, "agent_a").await;
    let mut recs = vec![
        execution(&ws, "tool_1", &conv, "agent_a", 1_774_438_926_000, false),
        execution(&ws, "tool_2", &conv, "agent_a", 1_774_438_927_250, true),
        execution(&ws, "tool_1", &other_conv, "agent_a", 1_774_438_926_500, false),
    ];
    recs[1].status = "timeout".into();
    recs[1].latency_us = 245_400;
    recs[1].response_payload = None;
    store.insert_executions(&recs).await.unwrap();

    let bearer = |path: String, token: Option<&str>| {
        let mut r = app.client.get(app.url(&path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let (s, calls) = status_json(
        bearer(format!("/api/tool-calls?executionId={conv}"), Some(key)).await.unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{calls}");
    let calls = calls.as_array().unwrap();
    assert_eq!(calls.len(), 2, "only this conversation's calls");
    assert_eq!(calls[0]["id"], recs[0].id.as_str());
    assert_eq!(calls[0]["executionId"], conv.as_str());
    assert_eq!(calls[0]["toolName"], "weather");
    assert_eq!(calls[0]["input"], json!({"city": "Paris"}));
    assert_eq!(calls[0]["output"], json!({"temp": 21.5}));
    assert_eq!(calls[0]["status"], "success");
    assert_eq!(calls[0]["durationMs"], 2);
    assert_eq!(calls[0]["createdAt"], "2026-03-25T11:42:06.000Z");
    assert_eq!(calls[1]["status"], "timeout");
    assert_eq!(calls[1]["durationMs"], 245);
    assert_eq!(calls[1]["output"], Value::Null);
    assert_eq!(calls[1]["createdAt"], "2026-03-25T11:42:07.250Z");

    let r = app
        .client
        .get(app.url(&format!("/api/tool-calls?executionId={conv}")))
        .header("xi-api-key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "xi-api-key works too");

    let empty = conversation(&store, &ws, "agent_a").await;
    let (s, none) = status_json(
        bearer(format!("/api/tool-calls?executionId={empty}"), Some(key)).await.unwrap(),
    )
    .await;
    assert_eq!((s, none), (200, json!([])));

    for (path, token, status) in [
        ("/api/tool-calls".to_owned(), Some(key.as_str()), 400),
        ("/api/tool-calls?executionId=".to_owned(), Some(key.as_str()), 400),
        ("/api/tool-calls?executionId=not-a-uuid".to_owned(), Some(key.as_str()), 400),
        (
            format!("/api/tool-calls?executionId={}", colloquy_core::ids::new_uuid()),
            Some(key.as_str()),
            404,
        ),
        (format!("/api/tool-calls?executionId={conv}"), None, 401),
        (format!("/api/tool-calls?executionId={conv}"), Some("sk_bad"), 401),
    ] {
        let (s, body) = status_json(bearer(path.clone(), token).await.unwrap()).await;
        assert_eq!(s, status, "{path}: {body}");
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{path}: {body}");
    }
    let (_, nf) = status_json(
        bearer(
            format!("/api/tool-calls?executionId={}", colloquy_core::ids::new_uuid()),
            Some(key),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(nf, json!({"error": "Conversation not found"}));

    let theirs = app.key("globex", "g@globex.test", "admin").await;
    let (s, body) = status_json(
        bearer(format!("/api/tool-calls?executionId={conv}"), Some(&theirs)).await.unwrap(),
    )
    .await;
    assert_eq!((s, body), (404, json!({"error": "Conversation not found"})));
    let no_scope = app.key("default", "t@x.test", "tools:read").await;
    let (s, _) = status_json(
        bearer(format!("/api/tool-calls?executionId={conv}"), Some(&no_scope)).await.unwrap(),
    )
    .await;
    assert_eq!(s, 403);
}
dual_db!(tool_calls_of_a_conversation_in_the_ohallo_shape);
