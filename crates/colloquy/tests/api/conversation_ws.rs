//! Live conversations over real WebSockets: the protocol of reference §D message by message,
//! authentication (public, signed URL, link token, API key, origins), overrides, limits.

use std::time::Duration;

use futures_util::SinkExt;
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::fakes::{FakeLlm, Webhook, call, text, with_llm};
use crate::helpers::{Backend, TestApp, dual_db};
use crate::tools::create_tool;
use crate::ws::{self, connect, initiate, next, say, send, until};

fn ws_url(app: &TestApp, query: &str) -> String {
    ws::url(&app.base, query)
}

async fn agent(app: &TestApp, body: Value) -> String {
    let (s, b) = app.post("/v1/convai/agents/create", &app.admin_key, &body).await;
    assert_eq!(s, 200, "{b}");
    b["agent_id"].as_str().unwrap().to_owned()
}

async fn a_full_text_conversation_message_by_message(backend: Backend) {
    let llm = FakeLlm::openai(|req: &Value| {
        let msgs = req["messages"].as_array().unwrap();
        let last = msgs.last().unwrap();
        if last["role"] == "tool" {
            return text(&format!("Tool said {}", last["content"].as_str().unwrap()));
        }
        match last["content"].as_str().unwrap_or_default() {
            "weather" => call("get_weather", json!({"city": "Paris"})),
            "locate" => call("get_location", json!({"precise": true})),
            "bye" => call("end_call", json!({})),
            other => text(&format!("You said: {other}")),
        }
    })
    .await;
    let app = TestApp::spawn_with(backend, with_llm(&llm)).await;
    let key = &app.admin_key;
    let hook = Webhook::start(200, r#"{"temp":21}"#, Duration::ZERO).await;
    let weather = create_tool(&app, key, json!({"tool_config": {"type": "webhook", "name": "get_weather", "description": "Weather",
        "api_schema": {"url": format!("{}/w", hook.base), "method": "POST",
            "request_body_schema": {"type": "object", "properties": {"city": {"type": "string", "description": "City"}}}}}})).await;
    let location = create_tool(&app, key, json!({"tool_config": {"type": "client", "name": "get_location", "description": "Where the user is",
        "expects_response": true, "response_timeout_secs": 5,
        "parameters": {"type": "object", "properties": {"precise": {"type": "boolean", "description": "p"}}}}})).await;
    let agent_id = agent(&app, json!({"name": "Live", "conversation_config": {"agent": {
        "first_message": "Hello {{name}}!",
        "prompt": {"prompt": "p", "llm": "gpt-4o", "tool_ids": [weather, location],
            "built_in_tools": {"end_call": {"name": "end_call", "description": "End", "params": {"system_tool_type": "end_call"}}}}
    }}})).await;

    let (mut ws, protocol) =
        connect(&ws_url(&app, &format!("agent_id={agent_id}&source=js_sdk&version=1.25.0")), &[])
            .await;
    assert_eq!(protocol.as_deref(), Some("convai"), "the convai subprotocol is echoed");
    send(&mut ws, json!({"type": "conversation_initiation_client_data", "conversation_config_override": {"text_only": true, "agent": {}, "conversation": {"text_only": true}},
        "dynamic_variables": {"name": "Ada"}, "user_id": "user-7"})).await;
    let meta = next(&mut ws).await;
    assert_eq!(meta["type"], "conversation_initiation_metadata", "first message: {meta}");
    let conversation_id = meta["conversation_initiation_metadata_event"]["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        meta["conversation_initiation_metadata_event"]["agent_output_audio_format"],
        "pcm_16000"
    );
    assert_eq!(
        meta["conversation_initiation_metadata_event"]["user_input_audio_format"],
        "pcm_16000"
    );
    let first = next(&mut ws).await;
    assert_eq!(first["agent_response_event"]["agent_response"], "Hello Ada!");

    say(&mut ws, "hi there").await;
    let events = until(&mut ws, "agent_response").await;
    let kinds: Vec<String> =
        events.iter().map(|e| e["type"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(kinds.first().map(String::as_str), Some("user_transcript"));
    assert_eq!(events[0]["user_transcription_event"]["user_transcript"], "hi there");
    let parts: Vec<&Value> =
        events.iter().filter(|e| e["type"] == "agent_chat_response_part").collect();
    assert_eq!(parts.first().unwrap()["text_response_part"]["type"], "start");
    assert_eq!(parts.last().unwrap()["text_response_part"]["type"], "stop");
    let streamed: String =
        parts.iter().filter_map(|p| p["text_response_part"]["text"].as_str()).collect();
    assert_eq!(streamed, "You said: hi there");
    assert_eq!(
        events.last().unwrap()["agent_response_event"]["agent_response"],
        "You said: hi there"
    );

    // A server tool: request and response events around the durable call.
    say(&mut ws, "weather").await;
    let events = until(&mut ws, "agent_response").await;
    let req = events.iter().find(|e| e["type"] == "agent_tool_request").unwrap();
    assert_eq!(req["agent_tool_request"]["tool_name"], "get_weather");
    assert_eq!(req["agent_tool_request"]["tool_type"], "webhook");
    let resp = events.iter().find(|e| e["type"] == "agent_tool_response").unwrap();
    assert_eq!(resp["agent_tool_response"]["is_error"], false);
    let call_id = resp["agent_tool_response"]["tool_call_id"].as_str().unwrap().to_owned();
    let (_, calls) = app.get(&format!("/api/tool-calls?executionId={conversation_id}"), key).await;
    assert!(
        calls.as_array().unwrap().iter().any(|c| c["toolName"] == "get_weather"),
        "recorded before the client heard of it"
    );
    assert_eq!(
        events.last().unwrap()["agent_response_event"]["agent_response"],
        r#"Tool said {"temp":21}"#
    );
    let _ = call_id;

    // A client tool: the server waits for the client's result.
    say(&mut ws, "locate").await;
    let events = until(&mut ws, "client_tool_call").await;
    let ctc = &events.last().unwrap()["client_tool_call"];
    assert_eq!(ctc["tool_name"], "get_location");
    assert_eq!(ctc["parameters"], json!({"precise": true}));
    send(&mut ws, json!({"type": "client_tool_result", "tool_call_id": ctc["tool_call_id"], "result": "Lyon", "is_error": false})).await;
    let events = until(&mut ws, "agent_response").await;
    assert_eq!(events.last().unwrap()["agent_response_event"]["agent_response"], "Tool said Lyon");

    // Context, activity, feedback, audio (refused), unknown types: none of them break it.
    send(&mut ws, json!({"type": "contextual_update", "text": "The user opened the pricing page"}))
        .await;
    send(&mut ws, json!({"type": "user_activity"})).await;
    send(&mut ws, json!({"type": "feedback", "score": "like", "event_id": 3})).await;
    send(&mut ws, json!({"user_audio_chunk": "AAAA"})).await;
    let err = next(&mut ws).await;
    assert_eq!(err["type"], "error");
    assert_eq!(err["error_event"]["error_type"], "value_error");
    send(&mut ws, json!({"type": "teleport"})).await;
    assert_eq!(next(&mut ws).await["error_event"]["error_type"], "invalid_message");
    ws.send(Message::Text("not json".into())).await.unwrap();
    assert_eq!(next(&mut ws).await["error_event"]["error_type"], "invalid_message");
    let context_seen = llm.requests().len();
    say(&mut ws, "ok").await;
    until(&mut ws, "agent_response").await;
    let sent = &llm.requests()[context_seen];
    assert!(sent.to_string().contains("pricing page"), "contextual update reached the LLM");

    // end_call: the tool response, then a normal close.
    say(&mut ws, "bye").await;
    let events = until(&mut ws, "close").await;
    assert!(events.iter().any(|e| e["agent_tool_response"]["tool_name"] == "end_call"));
    let close = events.last().unwrap();
    assert_eq!(close["close"], 1000, "{close}");

    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, got) = app.get(&format!("/v1/convai/conversations/{conversation_id}"), key).await;
    assert_eq!(got["status"], "done", "{got}");
    assert_eq!(got["user_id"], "user-7");
    assert_eq!(got["metadata"]["feedback"]["overall_score"], "like");
    assert_eq!(got["analysis"]["call_successful"], "success");
    assert_eq!(got["conversation_initiation_client_data"]["dynamic_variables"]["name"], "Ada");
    let (_, calls) = app.get(&format!("/api/tool-calls?executionId={conversation_id}"), key).await;
    let names: Vec<&str> =
        calls.as_array().unwrap().iter().map(|c| c["toolName"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["get_weather", "get_location", "end_call"]);
}
dual_db!(a_full_text_conversation_message_by_message);

async fn authentication_signed_urls_links_keys_and_origins(backend: Backend) {
    let llm = FakeLlm::openai(|_| text("hi")).await;
    let app = TestApp::spawn_with(backend, with_llm(&llm)).await;
    let key = &app.admin_key;
    let private = agent(
        &app,
        json!({"conversation_config": {}, "platform_settings": {"auth": {"enable_auth": true}}}),
    )
    .await;
    let init = json!({"type": "conversation_initiation_client_data"});
    let opens = |v: &Value| v["type"] == "conversation_initiation_metadata";

    let (mut ws, _) = connect(&ws_url(&app, &format!("agent_id={private}")), &[]).await;
    send(&mut ws, init.clone()).await;
    let closed = next(&mut ws).await;
    assert_eq!(closed["close"], 1008, "{closed}");
    assert_eq!(closed["reason"], "authentication required");

    // A signed URL, with the parameters clients append, works once.
    let (s, signed) =
        app.get(&format!("/v1/convai/conversation/get-signed-url?agent_id={private}"), key).await;
    assert_eq!(s, 200, "{signed}");
    let url =
        format!("{}&source=python_sdk&version=2.78.0", signed["signed_url"].as_str().unwrap());
    assert!(url.starts_with(&app.base.replacen("http://", "ws://", 1)), "{url}");
    let (mut ws, _) = connect(&url, &[]).await;
    send(&mut ws, init.clone()).await;
    assert!(opens(&next(&mut ws).await));
    drop(ws);
    let (mut ws, _) = connect(&url, &[]).await;
    send(&mut ws, init.clone()).await;
    assert_eq!(next(&mut ws).await["close"], 1008, "single use");

    // The share link's token.
    let (_, link) = app.get(&format!("/v1/convai/agents/{private}/link"), key).await;
    let token = link["token"]["conversation_token"].as_str().unwrap();
    let (mut ws, _) =
        connect(&ws_url(&app, &format!("agent_id={private}&conversation_token={token}")), &[])
            .await;
    send(&mut ws, init.clone()).await;
    assert!(opens(&next(&mut ws).await));

    // An API key of the workspace, in a header or as the bearer subprotocol; not another's.
    let (mut ws, _) =
        connect(&ws_url(&app, &format!("agent_id={private}")), &[("xi-api-key", key)]).await;
    send(&mut ws, init.clone()).await;
    assert!(opens(&next(&mut ws).await));
    let bearer = format!("convai, bearer.{key}");
    let (mut ws, _) = connect(
        &ws_url(&app, &format!("agent_id={private}")),
        &[("sec-websocket-protocol", &bearer)],
    )
    .await;
    send(&mut ws, init.clone()).await;
    assert!(opens(&next(&mut ws).await));
    let theirs = app.key("globex", "g@globex.test", "admin").await;
    let (mut ws, _) =
        connect(&ws_url(&app, &format!("agent_id={private}")), &[("xi-api-key", &theirs)]).await;
    send(&mut ws, init.clone()).await;
    assert_eq!(next(&mut ws).await["close"], 1008);
    assert_eq!(
        app.get(&format!("/v1/convai/conversation/get-signed-url?agent_id={private}"), &theirs)
            .await
            .0,
        404
    );

    // Origin allowlist on a public agent.
    let fenced = agent(&app, json!({"conversation_config": {}, "platform_settings": {"auth": {"allowlist": [{"hostname": "shop.example"}]}}})).await;
    let (mut ws, _) = connect(
        &ws_url(&app, &format!("agent_id={fenced}")),
        &[("origin", "https://evil.example")],
    )
    .await;
    send(&mut ws, init.clone()).await;
    assert_eq!(next(&mut ws).await["close"], 1008);
    let (mut ws, _) = connect(
        &ws_url(&app, &format!("agent_id={fenced}")),
        &[("origin", "https://shop.example")],
    )
    .await;
    send(&mut ws, init.clone()).await;
    assert!(opens(&next(&mut ws).await));

    let (mut ws, _) = connect(&ws_url(&app, "agent_id=agent_nope"), &[]).await;
    assert_eq!(next(&mut ws).await["close"], 1008);
    let (s, b) = app.get(&format!("/v1/convai/conversation/token?agent_id={private}"), key).await;
    assert_eq!(s, 400);
    assert_eq!(b["detail"]["status"], "webrtc_not_supported");
}
dual_db!(authentication_signed_urls_links_keys_and_origins);

#[tokio::test]
async fn overrides_client_events_and_limits() {
    let llm = FakeLlm::openai(|req: &Value| {
        text(&format!("prompt was: {}", req["messages"][0]["content"].as_str().unwrap()))
    })
    .await;
    let app = TestApp::spawn_with(Backend::Sqlite, with_llm(&llm)).await;
    let key = &app.admin_key;
    let locked =
        agent(&app, json!({"conversation_config": {"agent": {"prompt": {"prompt": "original"}}}}))
            .await;
    let (mut ws, _) = connect(&ws_url(&app, &format!("agent_id={locked}")), &[]).await;
    send(&mut ws, json!({"type": "conversation_initiation_client_data", "conversation_config_override": {"agent": {"prompt": {"prompt": "evil"}}}})).await;
    let err = next(&mut ws).await;
    assert_eq!(err["error_event"]["error_type"], "override_error", "{err}");
    assert_eq!(next(&mut ws).await["close"], 1008);

    let open = agent(&app, json!({"conversation_config": {"agent": {"prompt": {"prompt": "original", "built_in_tools": {"end_call": {"name": "end_call", "description": "End", "params": {"system_tool_type": "end_call"}}}}}, "conversation": {"max_duration_seconds": 2}},
        "platform_settings": {"overrides": {"conversation_config_override": {"agent": {"prompt": {"prompt": true}, "first_message": true}}}}})).await;
    let (mut ws, _) = connect(&ws_url(&app, &format!("agent_id={open}")), &[]).await;
    send(&mut ws, json!({"type": "conversation_initiation_client_data", "conversation_config_override": {"agent": {"prompt": {"prompt": "overridden"}, "first_message": "Custom hello"}}})).await;
    assert_eq!(next(&mut ws).await["type"], "conversation_initiation_metadata");
    assert_eq!(next(&mut ws).await["agent_response_event"]["agent_response"], "Custom hello");
    say(&mut ws, "x").await;
    let events = until(&mut ws, "agent_response").await;
    assert_eq!(
        events.last().unwrap()["agent_response_event"]["agent_response"],
        "prompt was: overridden"
    );
    let asked = llm.requests().pop().unwrap();
    assert_eq!(
        asked["tools"][0]["function"]["name"], "end_call",
        "a prompt override keeps the tools"
    );

    // max_duration_seconds: an error, then a normal close.
    let events = until(&mut ws, "close").await;
    assert!(
        events.iter().any(|e| e["error_event"]["error_type"] == "max_duration_exceeded"),
        "{events:?}"
    );
    assert_eq!(events.last().unwrap()["close"], 1000);

    // client_events in the agent's config filters what is sent.
    let quiet = agent(
        &app,
        json!({"conversation_config": {"conversation": {"client_events": ["agent_response"]}}}),
    )
    .await;
    let (mut ws, _) = connect(&ws_url(&app, &format!("agent_id={quiet}")), &[]).await;
    initiate(&mut ws, Default::default()).await;
    assert_eq!(next(&mut ws).await["type"], "conversation_initiation_metadata");
    say(&mut ws, "x").await;
    assert_eq!(next(&mut ws).await["type"], "agent_response", "no transcript or parts");
    let _ = app.send(Method::GET, "/healthz", key, &json!({})).await;
}

/// 200 conversations at once, each with a webhook call: all complete, every call recorded once.
#[tokio::test]
async fn two_hundred_concurrent_live_conversations() {
    let llm = FakeLlm::call_then("lookup", json!({"q": "x"}), "done").await;
    let app = TestApp::spawn_with(Backend::Sqlite, with_llm(&llm)).await;
    let key = app.admin_key.clone();
    let hook = Webhook::start(200, "ok", Duration::ZERO).await;
    let tool = create_tool(&app, &key, json!({"tool_config": {"type": "webhook", "name": "lookup", "description": "d",
        "api_schema": {"url": format!("{}/l", hook.base), "method": "POST", "request_body_schema": {"type": "object", "properties": {"q": {"type": "string", "description": "q"}}}}}})).await;
    // Text only: this is about concurrent text turns, not 200 synthesizers at once.
    let agent_id = agent(
        &app,
        json!({"conversation_config": {"conversation": {"text_only": true},
        "agent": {"prompt": {"llm": "gpt-4o", "tool_ids": [tool]}}}}),
    )
    .await;
    let url = ws_url(&app, &format!("agent_id={agent_id}"));
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ws, _) = connect(&url, &[]).await;
            initiate(&mut ws, Default::default()).await;
            let meta = next(&mut ws).await;
            let id = meta["conversation_initiation_metadata_event"]["conversation_id"]
                .as_str()
                .unwrap()
                .to_owned();
            say(&mut ws, "go").await;
            let events = until(&mut ws, "agent_response").await;
            assert_eq!(events.last().unwrap()["agent_response_event"]["agent_response"], "done");
            id
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    assert_eq!(hook.received().len(), 200);
    let (_, t) = app.get(&format!("/v1/convai/tools/{tool}"), &key).await;
    assert_eq!(t["usage_stats"]["total_calls"], 200);
    for id in ids.iter().step_by(20) {
        let (_, calls) = app.get(&format!("/api/tool-calls?executionId={id}"), &key).await;
        assert_eq!(calls.as_array().unwrap().len(), 1);
    }
}

/// A user silent for the turn timeout is re-engaged once, until they speak again.
#[tokio::test]
async fn silent_users_are_reengaged_after_the_turn_timeout() {
    let llm = FakeLlm::openai(|req: &Value| {
        let last = req["messages"].as_array().unwrap().last().unwrap()["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if last.contains("has not replied") { text("Are you still there?") } else { text("Sure.") }
    })
    .await;
    let app = TestApp::spawn_with(Backend::Sqlite, with_llm(&llm)).await;
    let id = agent(&app, json!({"conversation_config": {"agent": {"first_message": "Hi"}, "turn": {"turn_timeout": 1}}})).await;
    let (mut ws, _) = connect(&ws_url(&app, &format!("agent_id={id}")), &[]).await;
    initiate(&mut ws, Default::default()).await;
    assert_eq!(next(&mut ws).await["type"], "conversation_initiation_metadata");
    assert_eq!(next(&mut ws).await["agent_response_event"]["agent_response"], "Hi");
    let started = std::time::Instant::now();
    let events = until(&mut ws, "agent_response").await;
    assert_eq!(
        events.last().unwrap()["agent_response_event"]["agent_response"],
        "Are you still there?"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
    // Once per silence: nothing more arrives until the user speaks.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert_eq!(llm.requests().len(), 1, "re-engaged only once");
    say(&mut ws, "yes").await;
    let events = until(&mut ws, "agent_response").await;
    assert_eq!(events.last().unwrap()["agent_response_event"]["agent_response"], "Sure.");
}

/// With no first message, the agent waits `turn.initial_wait_time` for the user before it
/// speaks, then the turn timeout as usual.
#[tokio::test]
async fn with_no_first_message_the_agent_speaks_after_the_initial_wait() {
    let llm = FakeLlm::openai(|_: &Value| text("Hello? Anyone there?")).await;
    let app = TestApp::spawn_with(Backend::Sqlite, with_llm(&llm)).await;
    let config = json!({"conversation_config": {"agent": {"first_message": ""},
        "turn": {"turn_timeout": 30, "initial_wait_time": 1}}});
    let id = agent(&app, config).await;
    let (mut ws, _) = connect(&ws_url(&app, &format!("agent_id={id}")), &[]).await;
    initiate(&mut ws, Default::default()).await;
    assert_eq!(next(&mut ws).await["type"], "conversation_initiation_metadata");
    let started = std::time::Instant::now();
    let events = until(&mut ws, "agent_response").await;
    assert_eq!(
        events.last().unwrap()["agent_response_event"]["agent_response"],
        "Hello? Anyone there?"
    );
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_secs(10), "{waited:?}");
    let last = llm.requests()[0]["messages"].as_array().unwrap().last().unwrap().to_string();
    assert!(last.contains("has not replied") && last.contains("1 second"), "{last}");
}

/// Keep-alive pings come every `COLLOQUY_WS_PING_SECS`; once the client has answered one,
/// the next carries the round trip in `ping_ms`.
#[tokio::test]
async fn pings_carry_the_last_round_trip() {
    let llm = FakeLlm::openai(|_: &Value| text("hi")).await;
    let configure = with_llm(&llm);
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        configure(c);
        c.ws_ping_secs = 1;
    })
    .await;
    let id = agent(&app, json!({"conversation_config": {"agent": {"first_message": ""}}})).await;
    let (mut ws, _) = connect(&ws_url(&app, &format!("agent_id={id}")), &[]).await;
    initiate(&mut ws, Default::default()).await;
    assert_eq!(next(&mut ws).await["type"], "conversation_initiation_metadata");
    // Read raw: `ws::next` answers pings itself.
    async fn ping(ws: &mut crate::ws::Socket) -> Value {
        use futures_util::StreamExt;
        loop {
            let message = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
            if let Ok(Some(Ok(Message::Text(t)))) = message {
                let event: Value = serde_json::from_str(t.as_str()).unwrap();
                if event["type"] == "ping" {
                    return event;
                }
            } else {
                panic!("no ping in time: {message:?}");
            }
        }
    }
    let first = ping(&mut ws).await;
    assert!(first["ping_event"].get("ping_ms").is_none_or(Value::is_null), "{first}");
    tokio::time::sleep(Duration::from_millis(30)).await;
    send(&mut ws, json!({"type": "pong", "event_id": first["ping_event"]["event_id"]})).await;
    let second = ping(&mut ws).await;
    let ping_ms = second["ping_event"]["ping_ms"].as_u64().unwrap_or_else(|| panic!("{second}"));
    assert!((30..1000).contains(&ping_ms), "{second}");
    assert_ne!(second["ping_event"]["event_id"], first["ping_event"]["event_id"]);
}

/// The recorded end reason says who ended the conversation: a client that closes the socket
/// (the SDKs' `endSession`, the playground's button) is the user ending it; one that vanishes
/// without a close frame has disconnected.
async fn the_end_reason_says_who_ended_it(backend: Backend) {
    let llm = FakeLlm::openai(|_: &Value| text("hi")).await;
    let app = TestApp::spawn_with(backend, with_llm(&llm)).await;
    let id = agent(
        &app,
        json!({"conversation_config": {"agent": {"first_message": "", "prompt": {"llm": "gpt-4o"}}}}),
    )
    .await;
    let reason_of = async |conversation: &str| {
        for _ in 0..100 {
            let (_, got) =
                app.get(&format!("/v1/convai/conversations/{conversation}"), &app.admin_key).await;
            if got["status"] == "done" {
                return got["metadata"]["termination_reason"].as_str().unwrap_or("").to_owned();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{conversation} did not end");
    };
    let (mut closed, conversation) =
        ws::open(&ws_url(&app, &format!("agent_id={id}")), Default::default()).await;
    say(&mut closed, "hello").await;
    until(&mut closed, "agent_response").await;
    closed.close(None).await.unwrap();
    assert_eq!(reason_of(&conversation).await, "the user ended the conversation");

    let (mut vanished, conversation) =
        ws::open(&ws_url(&app, &format!("agent_id={id}")), Default::default()).await;
    say(&mut vanished, "hello").await;
    until(&mut vanished, "agent_response").await;
    drop(vanished);
    assert_eq!(reason_of(&conversation).await, "the client disconnected");
}
dual_db!(the_end_reason_says_who_ended_it);

/// A variable the prompt or first message names needs a value: from the client, or the agent's
/// `dynamic_variable_placeholders`; a start without one is refused with
/// `missing_dynamic_variable` naming it (close 1008), and nothing is recorded.
#[tokio::test]
async fn a_missing_dynamic_variable_refuses_the_start_naming_it() {
    let llm = FakeLlm::openai(|req: &Value| {
        text(&format!("prompt was: {}", req["messages"][0]["content"].as_str().unwrap()))
    })
    .await;
    let app = TestApp::spawn_with(Backend::Sqlite, with_llm(&llm)).await;
    let agent_id = agent(&app, json!({"conversation_config": {"agent": {
        "first_message": "Hello {{name}}!",
        "prompt": {"prompt": "You help {{tier}} members in {{system__conversation_id}}.", "llm": "gpt-4o"},
        "dynamic_variables": {"dynamic_variable_placeholders": {"tier": "basic"}},
    }}}))
    .await;
    let url = ws_url(&app, &format!("agent_id={agent_id}"));
    let (mut ws, _) = connect(&url, &[]).await;
    send(&mut ws, json!({"type": "conversation_initiation_client_data"})).await;
    let err = next(&mut ws).await;
    assert_eq!(err["error_event"]["error_type"], "missing_dynamic_variable", "{err}");
    let message = err["error_event"]["message"].as_str().unwrap();
    assert!(message.contains("name") && !message.contains("tier"), "{message}");
    assert_eq!(next(&mut ws).await["close"], 1008);
    let (_, listed) = app.get("/v1/convai/conversations", &app.admin_key).await;
    assert_eq!(listed["conversations"], json!([]), "nothing was recorded");

    let (mut ws, _) = connect(&url, &[]).await;
    send(&mut ws, json!({"type": "conversation_initiation_client_data", "dynamic_variables": {"name": "Ada"}})).await;
    let greeting = ws::next_of(&mut ws, "agent_response").await;
    assert_eq!(greeting["agent_response_event"]["agent_response"], "Hello Ada!");
    let answer = ws::turn(&mut ws, "hi").await;
    let said = answer.last().unwrap()["agent_response_event"]["agent_response"].as_str().unwrap();
    assert!(said.starts_with("prompt was: You help basic members in "), "{said}");
}
