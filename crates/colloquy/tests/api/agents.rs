//! The agents API: every endpoint, filter, sort and error, on both backends.

use std::collections::HashSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, dual_db};

async fn create(app: &TestApp, key: &str, body: Value) -> String {
    let (s, b) = app.post("/v1/convai/agents/create", key, &body).await;
    assert_eq!(s, 200, "{b}");
    let id = b["agent_id"].as_str().unwrap().to_owned();
    assert!(colloquy_core::ids::is_well_formed(&id, "agent_"), "{id}");
    id
}

/// Replaces values that change per run (ids, timestamps) so the rest can be compared exactly.
fn redact(mut v: Value) -> Value {
    for ptr in ["/agent_id", "/version_id", "/branch_id", "/main_branch_id"] {
        if let Some(x) = v.pointer_mut(ptr) {
            *x = json!("[id]");
        }
    }
    if let Some(m) = v.get_mut("metadata") {
        *m = json!({"created_at_unix_secs": "[time]", "updated_at_unix_secs": "[time]"});
    }
    v
}

/// The golden file of an agent created from `{"conversation_config": {}}`. Set
/// `UPDATE_GOLDEN=1` to rewrite it after a deliberate change, and review the diff.
#[tokio::test]
async fn default_agent_matches_the_golden_file() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let id = create(&app, &app.admin_key, json!({"conversation_config": {}})).await;
    let (s, got) = app.get(&format!("/v1/convai/agents/{id}"), &app.admin_key).await;
    assert_eq!(s, 200);
    let got = redact(got);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/api/golden/default_agent.json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
    }
    let want: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(got, want, "GET of a default agent changed; rerun with UPDATE_GOLDEN=1 and review");

    // Every field of the reference's response model is present.
    let spec = colloquy_core::schema::Spec::reference();
    for field in spec.property_names("GetAgentResponseModel") {
        assert!(got.get(&field).is_some(), "missing {field}");
    }
    for field in spec.property_names("AgentPlatformSettingsResponseModel") {
        assert!(
            got["platform_settings"].get(&field).is_some(),
            "missing platform_settings.{field}"
        );
    }
}

async fn create_get_round_trip_drops_unknown_fields_and_keeps_exact_values(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = json!({
        "name": "Support",
        "tags": ["eu", "support"],
        "conversation_config": {
            "agent": {"first_message": "Hello", "prompt": {"prompt": "Be kind", "temperature": 0.0, "llm": "my-local-model"}},
            "x_vendor_extension": {"nested": [1, 2.5, null, {"a": "b"}]},
            "tts": {"stability": 0.0}
        },
        "platform_settings": {"widget": {"bg_color": "#123456"}, "x_unknown": true},
        "agent_id": "agent_forged", "metadata": {"created_at_unix_secs": 1}, "x_top": "dropped"
    });
    let id = create(&app, &app.admin_key, body).await;
    assert_ne!(id, "agent_forged");
    let r = app
        .client
        .get(app.url(&format!("/v1/convai/agents/{id}")))
        .header("xi-api-key", &app.admin_key)
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    assert!(text.contains(r#""temperature":0.0"#), "floats keep their form: {text}");
    assert!(text.contains(r#""stability":0.0"#));
    let got: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(got["agent_id"], id.as_str());
    assert_eq!(got["name"], "Support");
    assert_eq!(got["tags"], json!(["eu", "support"]));
    // The reference's response models serialize only their own fields: keys it does not know
    // are accepted on write and never come back (strict clients reject unknown fields).
    assert!(got["conversation_config"].get("x_vendor_extension").is_none(), "{got}");
    assert!(got["platform_settings"].get("x_unknown").is_none(), "{got}");
    assert!(got.get("x_top").is_none(), "{got}");
    assert_eq!(got["platform_settings"]["widget"]["bg_color"], "#123456");
    assert_eq!(got["conversation_config"]["agent"]["prompt"]["llm"], "my-local-model");
    assert_eq!(got["conversation_config"]["agent"]["language"], "en", "defaults filled");
    assert!(got["metadata"]["created_at_unix_secs"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(got["branch_id"], got["main_branch_id"]);
    assert!(got["main_branch_id"].as_str().unwrap().starts_with("agtbrch_"));
    assert_eq!(got["access_info"]["is_creator"], true);
    assert_eq!(got["access_info"]["role"], "admin");
    assert_eq!(got["phone_numbers"], json!([]));
    let main = got["main_branch_id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/v1/convai/agents/{id}?branch_id={main}"), &app.admin_key).await.0,
        200
    );
    assert_eq!(
        app.get(&format!("/v1/convai/agents/{id}?branch_id=agtbrch_other"), &app.admin_key).await.0,
        404
    );
    assert_eq!(
        app.get(&format!("/v1/convai/agents/{id}?version_id=agtvrsn_old"), &app.admin_key).await.0,
        404
    );
}
dual_db!(create_get_round_trip_drops_unknown_fields_and_keeps_exact_values);

async fn invalid_bodies_are_422_with_precise_locations_and_store_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.admin_key;
    let cases = [
        (json!({}), json!(["body", "conversation_config"]), "missing"),
        (
            json!({"conversation_config": {"agent": {"prompt": {"temperature": "hot"}}}}),
            json!(["body", "conversation_config", "agent", "prompt", "temperature"]),
            "float_type",
        ),
        (
            json!({"conversation_config": {"turn": {"mode": "sideways"}}}),
            json!(["body", "conversation_config", "turn", "mode"]),
            "enum",
        ),
        (json!({"conversation_config": {}, "tags": "one"}), json!(["body", "tags"]), "list_type"),
        (
            json!({"conversation_config": {"agent": {"first_message": null}}}),
            json!(["body", "conversation_config", "agent", "first_message"]),
            "string_type",
        ),
        (
            json!({"conversation_config": [1]}),
            json!(["body", "conversation_config"]),
            "model_attributes_type",
        ),
    ];
    for (body, loc, kind) in cases {
        let (s, b) = app.post("/v1/convai/agents/create", key, &body).await;
        assert_eq!(s, 422, "{body} -> {b}");
        assert_eq!(b["detail"][0]["loc"], loc, "{body} -> {b}");
        assert_eq!(b["detail"][0]["type"], kind, "{body} -> {b}");
    }
    let (_, list) = app.get("/v1/convai/agents", key).await;
    assert_eq!(list["agents"], json!([]));
}
dual_db!(invalid_bodies_are_422_with_precise_locations_and_store_nothing);

async fn patch_merges_replaces_and_validates(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.admin_key;
    let id = create(
        &app,
        key,
        json!({"name": "A", "tags": ["x"], "conversation_config": {"agent": {"first_message": "hi", "prompt": {"prompt": "p", "tool_ids": []}}, "x_keep": 1}}),
    )
    .await;
    let path = format!("/v1/convai/agents/{id}");
    let (_, before) = app.get(&path, key).await;

    let (s, after) = app
        .send(Method::PATCH, &path, key, &json!({
            "conversation_config": {"agent": {"prompt": {"prompt": "new"}}, "tts": {"voice_id": "voice_2"}},
            "tags": ["y", "z"],
            "agent_id": "ignored", "metadata": {"created_at_unix_secs": 5}, "access_info": null,
            "version_description": "second"
        }))
        .await;
    assert_eq!(s, 200, "{after}");
    assert_eq!(after["agent_id"], id.as_str());
    assert_eq!(after["conversation_config"]["agent"]["prompt"]["prompt"], "new");
    assert_eq!(after["conversation_config"]["agent"]["first_message"], "hi", "sibling kept");
    assert!(after["conversation_config"].get("x_keep").is_none(), "unknown field dropped");
    assert_eq!(after["tags"], json!(["y", "z"]));
    assert_eq!(after["name"], "A");
    assert_eq!(
        after["metadata"]["created_at_unix_secs"],
        before["metadata"]["created_at_unix_secs"]
    );
    assert_ne!(after["version_id"], before["version_id"]);
    assert!(after.get("version_description").is_none());

    // Arrays replace, nullable fields take null, others refuse it (and nothing changes).
    let (s, b) = app
        .send(Method::PATCH, &path, key, &json!({"conversation_config": {"agent": {"prompt": {"tool_ids": [], "custom_llm": null}}}}))
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = app
        .send(
            Method::PATCH,
            &path,
            key,
            &json!({"conversation_config": {"tts": {"voice_id": null}}}),
        )
        .await;
    assert_eq!(s, 422);
    assert_eq!(b["detail"][0]["loc"], json!(["body", "conversation_config", "tts", "voice_id"]));
    let (_, now) = app.get(&path, key).await;
    assert_eq!(now["conversation_config"]["tts"]["voice_id"], "voice_2");

    // The list's voice_id and name follow patches.
    let (_, list) = app.get("/v1/convai/agents", key).await;
    assert_eq!(list["agents"][0]["voice_id"], "voice_2");

    // Pushing back a whole GET (as the CLI does) changes nothing.
    let (_, full) = app.get(&path, key).await;
    let (s, again) = app.send(Method::PATCH, &path, key, &full).await;
    assert_eq!(s, 200, "{again}");
    let strip = |mut v: Value| {
        v.as_object_mut().unwrap().remove("version_id");
        v.as_object_mut().unwrap().remove("metadata");
        v
    };
    assert_eq!(strip(again), strip(full));

    assert_eq!(
        app.send(Method::PATCH, "/v1/convai/agents/agent_missing", key, &json!({})).await.0,
        404
    );
    assert_eq!(
        app.send(Method::PATCH, &format!("{path}?branch_id=agtbrch_x"), key, &json!({})).await.0,
        404
    );
}
dual_db!(patch_merges_replaces_and_validates);

async fn delete_duplicate_link_summaries_widget_and_kb_size(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.admin_key;
    let id = create(&app, key, json!({"name": "Orig", "conversation_config": {"agent": {"first_message": "yo", "language": "de"}}})).await;

    let (s, dup) =
        app.post(&format!("/v1/convai/agents/{id}/duplicate"), key, &json!({"name": "Copy"})).await;
    assert_eq!(s, 200);
    let dup_id = dup["agent_id"].as_str().unwrap().to_owned();
    assert_ne!(dup_id, id);
    let (_, d) = app.get(&format!("/v1/convai/agents/{dup_id}"), key).await;
    assert_eq!(d["name"], "Copy");
    assert_eq!(d["conversation_config"]["agent"]["first_message"], "yo");
    let r = app
        .client
        .post(app.url(&format!("/v1/convai/agents/{id}/duplicate")))
        .header("xi-api-key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "no body at all is fine");
    let dup2: Value = r.json().await.unwrap();
    let (_, d2) =
        app.get(&format!("/v1/convai/agents/{}", dup2["agent_id"].as_str().unwrap()), key).await;
    assert_eq!(d2["name"], "Orig (copy)");

    let (s, link) = app.get(&format!("/v1/convai/agents/{id}/link"), key).await;
    assert_eq!(s, 200);
    assert_eq!(link["token"]["purpose"], "shareable_link");
    let token = link["token"]["conversation_token"].as_str().unwrap().to_owned();
    assert!(token.len() >= 40);
    let (_, link2) = app.get(&format!("/v1/convai/agents/{id}/link"), key).await;
    assert_eq!(link2["token"]["conversation_token"], token.as_str(), "stable");

    let (s, sums) = app
        .get(&format!("/v1/convai/agents/summaries?agent_ids={id}&agent_ids=agent_none"), key)
        .await;
    assert_eq!(s, 200);
    assert_eq!(sums[&id]["status"], "success");
    assert_eq!(sums[&id]["data"]["name"], "Orig");
    assert_eq!(sums["agent_none"]["status"], "failure");
    assert_eq!(sums["agent_none"]["error_code"], 404);
    let many: String = (0..101).map(|i| format!("agent_ids=a{i}&")).collect();
    assert_eq!(app.get(&format!("/v1/convai/agents/summaries?{many}"), key).await.0, 422);
    assert_eq!(app.get("/v1/convai/agents/summaries", key).await.0, 422);

    let (s, w) = app.get(&format!("/v1/convai/agents/{id}/widget"), key).await;
    assert_eq!(s, 200, "{w}");
    assert_eq!(w["widget_config"]["language"], "de");
    assert_eq!(w["widget_config"]["first_message"], "yo");
    assert_eq!(w["widget_config"]["variant"], "full");

    let (s, kb) = app.get(&format!("/v1/convai/agent/{id}/knowledge-base/size"), key).await;
    assert_eq!(s, 200);
    assert_eq!(kb["number_of_pages"].as_f64(), Some(0.0));
    assert_eq!(app.get("/v1/convai/agent/agent_nope/knowledge-base/size", key).await.0, 404);

    let (s, _) =
        app.send(Method::DELETE, &format!("/v1/convai/agents/{id}"), key, &json!({})).await;
    assert!(s == 204 || s == 200);
    for path in [
        format!("/v1/convai/agents/{id}"),
        format!("/v1/convai/agents/{id}/link"),
        format!("/v1/convai/agents/{id}/widget"),
    ] {
        assert_eq!(app.get(&path, key).await.0, 404, "{path}");
    }
    assert_eq!(
        app.send(Method::DELETE, &format!("/v1/convai/agents/{id}"), key, &json!({})).await.0,
        404
    );
}
dual_db!(delete_duplicate_link_summaries_widget_and_kb_size);

async fn list_filters_and_sorts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = &app.admin_key;
    let other_user = app.key("default", "eve@example.com", "agents:write").await;
    let a = create(
        &app,
        admin,
        json!({"name": "Alpha Sales", "tags": ["sales"], "conversation_config": {}}),
    )
    .await;
    let b = create(
        &app,
        admin,
        json!({"name": "beta support", "tags": ["support", "eu"], "conversation_config": {}}),
    )
    .await;
    let c = create(
        &app,
        &other_user,
        json!({"name": "Gamma 100%_off", "tags": ["sales", "eu"], "conversation_config": {}}),
    )
    .await;
    let d = create(&app, admin, json!({"name": "Delta", "conversation_config": {}, "platform_settings": {"archived": true}})).await;

    let ids = |v: &Value| -> Vec<String> {
        v["agents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["agent_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let set = |v: &Value| -> HashSet<String> { ids(v).into_iter().collect() };
    let q = |query: &str| format!("/v1/convai/agents?{query}");

    assert_eq!(
        set(&app.get(&q(""), admin).await.1),
        HashSet::from([a.clone(), b.clone(), c.clone()]),
        "archived hidden"
    );
    assert_eq!(ids(&app.get(&q("archived=true"), admin).await.1), vec![d.clone()]);
    assert_eq!(ids(&app.get(&q("search=SALES"), admin).await.1), vec![a.clone()]);
    assert_eq!(
        ids(&app.get(&q("search=100%25_"), admin).await.1),
        vec![c.clone()],
        "LIKE wildcards are literal"
    );
    assert_eq!(ids(&app.get(&q("search=a_s"), admin).await.1), Vec::<String>::new());
    assert_eq!(set(&app.get(&q("tags=eu"), admin).await.1), HashSet::from([b.clone(), c.clone()]));
    assert_eq!(
        set(&app.get(&q("tags=sales&tags=support"), admin).await.1),
        HashSet::from([a.clone(), b.clone(), c.clone()])
    );
    assert_eq!(ids(&app.get(&q("created_by_user_id=@me"), &other_user).await.1), vec![c.clone()]);
    assert_eq!(
        ids(&app.get(&q("show_only_owned_agents=true"), &other_user).await.1),
        vec![c.clone()]
    );
    assert_eq!(
        set(&app.get(&q("created_by_user_id=@me"), admin).await.1),
        HashSet::from([a.clone(), b.clone()])
    );

    assert_eq!(
        ids(&app.get(&q("sort_by=name&sort_direction=asc"), admin).await.1),
        vec![a.clone(), c.clone(), b.clone()],
        "byte order: uppercase first"
    );
    assert_eq!(
        ids(&app.get(&q("sort_by=name&sort_direction=desc"), admin).await.1),
        vec![b.clone(), c.clone(), a.clone()]
    );
    let (s, _) = app.get(&q("sort_by=updated_at"), admin).await;
    assert_eq!(s, 200);
    let (s, _) = app.get(&q("sort_by=call_count_7d&sort_direction=asc"), admin).await;
    assert_eq!(s, 200);

    let summary = &app.get(&q("search=alpha"), admin).await.1["agents"][0];
    for field in [
        "agent_id",
        "name",
        "voice_id",
        "tags",
        "created_at_unix_secs",
        "access_info",
        "last_call_time_unix_secs",
        "archived",
    ] {
        assert!(summary.get(field).is_some(), "summary lacks {field}");
    }
    assert_eq!(
        app.get(&q("search=gamma"), admin).await.1["agents"][0]["access_info"]["is_creator"],
        false
    );
    // By name the creators alternate (admin, other, admin): each item has its own's.
    let page = app.get(&q("sort_by=name&sort_direction=asc"), admin).await.1;
    let items = page["agents"].as_array().unwrap();
    let access: Vec<(bool, &str)> = items
        .iter()
        .map(|i| {
            let info = &i["access_info"];
            (info["is_creator"].as_bool().unwrap(), info["creator_email"].as_str().unwrap())
        })
        .collect();
    assert_eq!(access.iter().map(|a| a.0).collect::<Vec<_>>(), [true, false, true]);
    assert_eq!(access[0].1, access[2].1);
    assert_ne!(access[0].1, access[1].1);

    for bad in [
        "sort_by=colour",
        "sort_direction=up",
        "page_size=0",
        "page_size=101",
        "archived=maybe",
        "cursor=xyz",
    ] {
        let (s, b) = app.get(&q(bad), admin).await;
        assert_eq!(s, 422, "{bad}: {b}");
        assert_eq!(b["detail"][0]["loc"][0], "query");
    }
}
dual_db!(list_filters_and_sorts);

/// Paging through 250 agents with small pages in both directions returns each exactly once,
/// in order, even while other agents are being created.
async fn paging_is_complete_and_stable_under_concurrent_inserts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.admin_key.clone();
    let mut all = HashSet::new();
    for i in 0..250 {
        // Few distinct names: ties must be broken by id.
        all.insert(
            create(
                &app,
                &key,
                json!({"name": format!("agent {}", i % 7), "conversation_config": {}}),
            )
            .await,
        );
    }
    for (sort, dir) in [
        ("created_at", "desc"),
        ("created_at", "asc"),
        ("name", "asc"),
        ("name", "desc"),
        ("updated_at", "desc"),
    ] {
        let writer = {
            let client = app.client.clone();
            let url = app.url("/v1/convai/agents/create");
            let key = key.clone();
            tokio::spawn(async move {
                for i in 0..15 {
                    client
                        .post(&url)
                        .header("xi-api-key", &key)
                        .json(&json!({"name": format!("late {i}"), "tags": ["late"], "conversation_config": {}}))
                        .send()
                        .await
                        .unwrap();
                }
            })
        };
        let mut seen = Vec::new();
        let mut cursor = String::new();
        loop {
            let (s, page) = app
                .get(&format!("/v1/convai/agents?page_size=17&sort_by={sort}&sort_direction={dir}&cursor={cursor}"), &key)
                .await;
            assert_eq!(s, 200, "{page}");
            for a in page["agents"].as_array().unwrap() {
                seen.push((
                    a["name"].as_str().unwrap().to_owned(),
                    a["agent_id"].as_str().unwrap().to_owned(),
                ));
            }
            assert_eq!(page["has_more"], page["next_cursor"].is_string());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = c.to_owned(),
                None => break,
            }
        }
        writer.await.unwrap();
        let ids: Vec<&String> = seen.iter().map(|(_, id)| id).collect();
        let unique: HashSet<&String> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len(), "{sort} {dir}: duplicates");
        for id in &all {
            assert!(unique.contains(id), "{sort} {dir}: {id} missing");
        }
        if sort == "name" {
            let keys: Vec<(String, String)> = seen.clone();
            let mut sorted = keys.clone();
            sorted.sort();
            if dir == "desc" {
                sorted.reverse();
            }
            assert_eq!(keys, sorted, "name order with id tie-break");
        }
    }
}
dual_db!(paging_is_complete_and_stable_under_concurrent_inserts);

async fn workspaces_and_scopes_are_enforced(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ours = app.key("acme", "a@acme.test", "agents:write").await;
    let theirs = app.key("globex", "g@globex.test", "admin").await;
    let viewer = app.key("acme", "v@acme.test", "agents:read").await;
    let id = create(&app, &ours, json!({"name": "Secret plans", "conversation_config": {}})).await;
    let p = format!("/v1/convai/agents/{id}");

    for path in [
        p.clone(),
        format!("{p}/link"),
        format!("{p}/widget"),
        format!("/v1/convai/agent/{id}/knowledge-base/size"),
    ] {
        assert_eq!(app.get(&path, &theirs).await.0, 404, "{path}");
    }
    assert_eq!(app.send(Method::PATCH, &p, &theirs, &json!({"name": "pwned"})).await.0, 404);
    assert_eq!(app.send(Method::DELETE, &p, &theirs, &json!({})).await.0, 404);
    assert_eq!(app.post(&format!("{p}/duplicate"), &theirs, &json!({})).await.0, 404);
    let (_, list) = app.get("/v1/convai/agents", &theirs).await;
    assert_eq!(list["agents"], json!([]));
    let (_, sums) = app.get(&format!("/v1/convai/agents/summaries?agent_ids={id}"), &theirs).await;
    assert_eq!(sums[&id]["status"], "failure");

    assert_eq!(app.get(&p, &viewer).await.0, 200);
    let (_, got) = app.get(&p, &viewer).await;
    assert_eq!(got["access_info"]["role"], "viewer");
    assert_eq!(got["access_info"]["is_creator"], false);
    assert_eq!(app.send(Method::PATCH, &p, &viewer, &json!({"name": "x"})).await.0, 403);
    assert_eq!(
        app.post("/v1/convai/agents/create", &viewer, &json!({"conversation_config": {}})).await.0,
        403
    );
    let (_, still) = app.get(&p, &ours).await;
    assert_eq!(still["name"], "Secret plans");
}
dual_db!(workspaces_and_scopes_are_enforced);

/// A 1×1 PNG.
const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

/// `seconds` of 16 kHz mono silence as a WAV file.
fn wav(seconds: u32) -> Vec<u8> {
    colloquy_engine::voice::wav::encode(&vec![0; (seconds * 16_000) as usize], 16_000)
}

async fn upload(app: &TestApp, path: &str, field: &str, name: &str, bytes: &[u8]) -> (u16, Value) {
    use reqwest::multipart::{Form, Part};
    let form =
        Form::new().part(field.to_owned(), Part::bytes(bytes.to_vec()).file_name(name.to_owned()));
    let r = app
        .client
        .post(app.url(path))
        .header("xi-api-key", &app.admin_key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    crate::helpers::status_json(r).await
}

async fn avatar_and_hold_audio_are_uploaded_served_and_shown(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.admin_key.clone();
    let agent = create(&app, &key, json!({"conversation_config": {}, "platform_settings": {"queueing_config": {"enabled": true, "hold_audio": {"audio_path": "forged", "audio_url": "https://evil", "original_filename": "x", "duration_secs": 1, "size_bytes": 1}}}})).await;
    let (_, body) = app.get(&format!("/v1/convai/agents/{agent}"), &key).await;
    assert_eq!(
        body["platform_settings"]["queueing_config"]["hold_audio"],
        Value::Null,
        "clients cannot set it"
    );

    // The avatar: an image, served without a key, shown in the widget settings.
    let (s, b) =
        upload(&app, &format!("/v1/convai/agents/{agent}/avatar"), "avatar_file", "me.png", PNG)
            .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["agent_id"], agent);
    let url = b["avatar_url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&app.base) && url.contains("/media/agents/"), "{url}");
    let served = app.client.get(&url).send().await.unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "image/png");
    assert_eq!(served.bytes().await.unwrap().as_ref(), PNG);
    let (_, widget) = app.get(&format!("/v1/convai/agents/{agent}/widget"), &key).await;
    assert_eq!(widget["widget_config"]["avatar"], json!({"type": "image", "url": url}));
    let (s, b) = upload(
        &app,
        &format!("/v1/convai/agents/{agent}/avatar"),
        "avatar_file",
        "me.txt",
        b"hello",
    )
    .await;
    assert_eq!((s, b["detail"][0]["loc"].clone()), (422, json!(["body", "avatar_file"])), "{b}");
    let (s, _) =
        upload(&app, "/v1/convai/agents/agent_missing/avatar", "avatar_file", "me.png", PNG).await;
    assert_eq!(s, 404);

    // The hold audio: a WAV or MP3 of at most 180 s, described on the agent, served.
    let clip = wav(2);
    let (s, b) = upload(
        &app,
        &format!("/v1/convai/agents/{agent}/hold-audio"),
        "hold_audio_file",
        "hold.wav",
        &clip,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let hold = b["hold_audio"].clone();
    assert_eq!(hold["original_filename"], "hold.wav");
    assert_eq!(hold["duration_secs"], 2.0);
    assert_eq!(hold["size_bytes"], clip.len());
    assert_eq!(
        app.client
            .get(hold["audio_url"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .len(),
        clip.len()
    );
    let (_, body) = app.get(&format!("/v1/convai/agents/{agent}"), &key).await;
    assert_eq!(body["platform_settings"]["queueing_config"]["hold_audio"], hold);
    assert_eq!(body["platform_settings"]["queueing_config"]["enabled"], true);
    // A PATCH carrying another value changes nothing of it.
    let forged = json!({"platform_settings": {"queueing_config": {"hold_audio": {"audio_path": "forged", "audio_url": "https://evil", "original_filename": "x", "duration_secs": 1, "size_bytes": 1}}}});
    let (s, body) =
        app.send(Method::PATCH, &format!("/v1/convai/agents/{agent}"), &key, &forged).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["platform_settings"]["queueing_config"]["hold_audio"], hold);

    let (s, b) = upload(
        &app,
        &format!("/v1/convai/agents/{agent}/hold-audio"),
        "hold_audio_file",
        "long.wav",
        &wav(181),
    )
    .await;
    assert_eq!(s, 422, "{b}");
    assert!(b.to_string().contains("180"), "{b}");
    let (s, _) = upload(
        &app,
        &format!("/v1/convai/agents/{agent}/hold-audio"),
        "hold_audio_file",
        "x.png",
        PNG,
    )
    .await;
    assert_eq!(s, 422);

    let (s, b) = app
        .send(Method::DELETE, &format!("/v1/convai/agents/{agent}/hold-audio"), &key, &json!(null))
        .await;
    assert_eq!((s, b), (200, json!({"agent_id": agent})));
    let (_, body) = app.get(&format!("/v1/convai/agents/{agent}"), &key).await;
    assert_eq!(body["platform_settings"]["queueing_config"]["hold_audio"], Value::Null);
    assert_eq!(
        app.client.get(hold["audio_url"].as_str().unwrap()).send().await.unwrap().status(),
        404
    );

    // Deleting the agent takes its media with it.
    let (s, _) =
        app.send(Method::DELETE, &format!("/v1/convai/agents/{agent}"), &key, &json!(null)).await;
    assert!(s == 204 || s == 200);
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), 404);
}
dual_db!(avatar_and_hold_audio_are_uploaded_served_and_shown);
