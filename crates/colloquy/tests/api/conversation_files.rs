//! Files in conversations: uploaded to a live conversation (with a key, or without one as the
//! official client does), checked by type, size and the agent's `file_input`, sent with a
//! `multimodal_message` to the LLM as content parts, listed in the transcript, downloaded,
//! withdrawn while unused; kept to their conversation and workspace.

use colloquy_core::protocol::InitiationData;
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::fakes::{FakeLlm, text, with_llm};
use crate::helpers::{Backend, TestApp, dual_db, ended_conversation};
use crate::ws;

/// A 1×1 PNG.
const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

async fn upload(
    app: &TestApp, key: Option<&str>, conversation: &str, name: &str, bytes: &[u8],
) -> (u16, Value) {
    let form = Form::new().part("file", Part::bytes(bytes.to_vec()).file_name(name.to_owned()));
    let mut request = app
        .client
        .post(app.url(&format!("/v1/convai/conversations/{conversation}/files")))
        .multipart(form);
    if let Some(key) = key {
        request = request.header("xi-api-key", key);
    }
    crate::helpers::status_json(request.send().await.unwrap()).await
}

async fn agent_taking(app: &TestApp, file_input: Value) -> String {
    let (s, b) = app
        .post(
            "/v1/convai/agents/create",
            &app.admin_key,
            &json!({"conversation_config": {
        "agent": {"first_message": "", "prompt": {"prompt": "p", "llm": "gpt-4o"}},
        "conversation": {"file_input": file_input}}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    b["agent_id"].as_str().unwrap().to_owned()
}

async fn files_are_attached_to_a_live_conversation(backend: Backend) {
    let llm = FakeLlm::openai(|_: &Value| text("I see a picture.")).await;
    let app = TestApp::spawn_with(backend, with_llm(&llm)).await;
    let key = app.admin_key.clone();
    let agent =
        agent_taking(&app, json!({"max_files_per_conversation": 3, "max_files_in_memory": 1}))
            .await;
    let (mut socket, id) =
        ws::open(&ws::url(&app.base, &format!("agent_id={agent}")), InitiationData::default())
            .await;

    let (s, image) = upload(&app, None, &id, "dot.png", PNG).await;
    assert_eq!(s, 200, "the official client uploads without a key: {image}");
    let image = image["file_id"].as_str().unwrap().to_owned();
    let (s, notes) =
        upload(&app, Some(&key), &id, "notes.md", b"# Order 17\nArrived broken.").await;
    assert_eq!(s, 200, "{notes}");
    let notes = notes["file_id"].as_str().unwrap().to_owned();
    let (s, b) = upload(&app, Some(&key), &id, "tool.exe", b"MZ\x90\0\x03\0\0\0").await;
    assert_eq!((s, b["detail"]["status"].as_str()), (400, Some("unsupported_file_type")), "{b}");
    let (s, b) = upload(&app, Some(&key), &id, "big.txt", &vec![b'a'; 10 * 1024 * 1024 + 1]).await;
    assert!(s == 400 || s == 413, "too large: {s} {b}");
    let (s, spare) = upload(&app, Some(&key), &id, "spare.txt", b"spare").await;
    assert_eq!(s, 200);
    let (s, b) = upload(&app, Some(&key), &id, "fourth.txt", b"one too many").await;
    assert_eq!((s, b["detail"]["status"].as_str()), (400, Some("too_many_files")), "{b}");
    let spare = spare["file_id"].as_str().unwrap();
    let path = format!("/v1/convai/conversations/{id}/files/{spare}");
    assert_eq!(
        app.send(Method::DELETE, &path, &key, &json!({})).await,
        (200, json!({"file_id": spare}))
    );
    assert_eq!(app.send(Method::DELETE, &path, &key, &json!({})).await.0, 404);

    ws::send(&mut socket, json!({"type": "multimodal_message",
        "text": {"type": "user_message", "text": "What is in these?"},
        "files": [{"type": "file_input", "file_id": image}, {"type": "file_input", "file_id": notes}]})).await;
    let events = ws::until(&mut socket, "agent_response").await;
    assert_eq!(
        events.last().unwrap()["agent_response_event"]["agent_response"],
        "I see a picture."
    );
    let request = llm.requests().last().cloned().unwrap();
    let user =
        request["messages"].as_array().unwrap().iter().rfind(|m| m["role"] == "user").unwrap();
    let parts = user["content"].as_array().expect("content parts");
    assert_eq!(parts[0]["type"], "text");
    let said = parts[0]["text"].as_str().unwrap();
    assert!(
        said.starts_with("What is in these?") && said.contains("[File notes.md]\n# Order 17"),
        "{said}"
    );
    assert_eq!(parts[1]["type"], "image_url");
    assert!(
        parts[1]["image_url"]["url"]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,iVBORw0KGgo")
    );

    let (s, b) = app
        .send(
            Method::DELETE,
            &format!("/v1/convai/conversations/{id}/files/{image}"),
            &key,
            &json!({}),
        )
        .await;
    assert_eq!((s, b["detail"]["status"].as_str()), (409, Some("file_already_used")), "{b}");
    ws::send(
        &mut socket,
        json!({"type": "multimodal_message", "text": {"type": "user_message", "text": "and?"},
        "file": {"type": "file_input", "file_id": "cfile_nope"}}),
    )
    .await;
    let error = ws::next_of(&mut socket, "error").await;
    assert!(error.to_string().contains("upload it first"), "{error}");

    let r = app
        .client
        .get(app.url(&format!("/v1/convai/conversations/{id}/files/{image}")))
        .header("xi-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.bytes().await.unwrap().as_ref(), PNG);
    let theirs = app.key("globex", "g@globex.test", "admin").await;
    assert_eq!(upload(&app, Some(&theirs), &id, "dot.png", PNG).await.0, 404, "another workspace");
    let (s, _) = app.get(&format!("/v1/convai/conversations/{id}/files/{image}"), &theirs).await;
    assert_eq!(s, 404);

    drop(socket);
    let done = ended_conversation(&app, &id).await;
    let entry = done["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["message"] == "What is in these?")
        .cloned()
        .unwrap();
    assert_eq!(entry["file_inputs"].as_array().unwrap().len(), 2, "{entry}");
    assert_eq!(entry["file_input"]["file_id"], image.as_str());
    assert_eq!(entry["file_inputs"][1]["mime_type"], "text/markdown");
    assert!(
        entry["file_inputs"][0]["file_url"].as_str().unwrap().ends_with(&format!("/files/{image}"))
    );
    let (s, b) = upload(&app, Some(&key), &id, "late.png", PNG).await;
    assert_eq!((s, b["detail"]["status"].as_str()), (400, Some("conversation_not_active")), "{b}");
    assert_eq!(upload(&app, None, &id, "late.png", PNG).await.0, 401, "no key once it has ended");

    let closed = agent_taking(&app, json!({"enabled": false})).await;
    let (_socket, other) =
        ws::open(&ws::url(&app.base, &format!("agent_id={closed}")), InitiationData::default())
            .await;
    let (s, b) = upload(&app, Some(&key), &other, "dot.png", PNG).await;
    assert_eq!((s, b["detail"]["status"].as_str()), (400, Some("file_input_disabled")), "{b}");
}
dual_db!(files_are_attached_to_a_live_conversation);

async fn only_the_newest_files_stay_in_the_llms_memory(backend: Backend) {
    let llm = FakeLlm::openai(|_: &Value| text("Seen.")).await;
    let app = TestApp::spawn_with(backend, with_llm(&llm)).await;
    let agent = agent_taking(&app, json!({"max_files_in_memory": 1})).await;
    let (mut socket, id) =
        ws::open(&ws::url(&app.base, &format!("agent_id={agent}")), InitiationData::default())
            .await;
    for name in ["first.png", "second.png"] {
        let (_, b) = upload(&app, None, &id, name, PNG).await;
        ws::send(
            &mut socket,
            json!({"type": "multimodal_message", "text": {"type": "user_message", "text": name},
            "file": {"type": "file_input", "file_id": b["file_id"]}}),
        )
        .await;
        ws::until(&mut socket, "agent_response").await;
    }
    let request = llm.requests().last().cloned().unwrap();
    let users: Vec<&Value> =
        request["messages"].as_array().unwrap().iter().filter(|m| m["role"] == "user").collect();
    assert!(
        users[0]["content"]
            .as_str()
            .is_some_and(|c| c.contains("[File first.png is no longer available]")),
        "{request}"
    );
    assert_eq!(users[1]["content"][1]["type"], "image_url");
}
dual_db!(only_the_newest_files_stay_in_the_llms_memory);
