//! Agent versions, branches, drafts, merges, rebases and deployments, on both backends: every
//! change kept as a version, branches read and written at their heads, the three-way merge with
//! its conflicts, the traffic split new conversations follow, and tests run against a version.

use std::collections::BTreeMap;
use std::time::Duration;

use colloquy_core::protocol::InitiationData;
use reqwest::Method;
use serde_json::{Value, json};

use crate::fakes::{FakeLlm, text, with_llm};
use crate::helpers::{Backend, TestApp, dual_db, invocation_done};
use crate::ws;

async fn create_agent(app: &TestApp, prompt: &str) -> (String, Value) {
    let body = json!({"name": "Versioned", "conversation_config": {"agent": {"first_message": "Hi", "prompt": {"prompt": prompt, "llm": "gpt-4o"}}}});
    let (s, b) = app.post("/v1/convai/agents/create", &app.admin_key, &body).await;
    assert_eq!(s, 200, "{b}");
    let id = b["agent_id"].as_str().unwrap().to_owned();
    let (_, agent) = app.get(&format!("/v1/convai/agents/{id}"), &app.admin_key).await;
    (id, agent)
}

async fn patch(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    app.send(Method::PATCH, path, &app.admin_key, &body).await
}

fn prompt(agent: &Value) -> &str {
    agent["conversation_config"]["agent"]["prompt"]["prompt"].as_str().unwrap()
}

fn prompt_patch(text: &str) -> Value {
    json!({"conversation_config": {"agent": {"prompt": {"prompt": text}}}})
}

async fn every_change_is_a_version(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.admin_key;
    let (id, first) = create_agent(&app, "one").await;
    let v1 = first["version_id"].as_str().unwrap().to_owned();
    assert!(v1.starts_with("agtvrsn_"), "{v1}");
    assert_eq!(first["branch_id"], first["main_branch_id"]);

    let mut body = prompt_patch("two");
    body["version_description"] = json!("a better prompt");
    let (s, second) = patch(&app, &format!("/v1/convai/agents/{id}"), body).await;
    assert_eq!(s, 200, "{second}");
    let v2 = second["version_id"].as_str().unwrap().to_owned();
    assert_ne!(v1, v2, "the PATCH answer carries the new version");
    assert!(second.get("version_description").is_none(), "input-only field never answered");

    // A PATCH that changes nothing makes no version.
    let (_, same) = patch(&app, &format!("/v1/convai/agents/{id}"), prompt_patch("two")).await;
    assert_eq!(same["version_id"], v2.as_str());

    // Old versions stay readable; their metadata names their parents.
    let (s, old) = app.get(&format!("/v1/convai/agents/{id}?version_id={v1}"), key).await;
    assert_eq!(s, 200, "{old}");
    assert_eq!(prompt(&old), "one");
    assert_eq!(old["version_id"], v1.as_str());
    let (s, meta) = app.get(&format!("/v1/convai/agents/{id}/versions/{v2}"), key).await;
    assert_eq!(s, 200, "{meta}");
    assert_eq!(meta["seq_no_in_branch"], 2);
    assert_eq!(meta["version_description"], "a better prompt");
    assert_eq!(meta["parents"]["in_branch_parent_id"], v1.as_str());
    assert_eq!(meta["branch_id"], first["main_branch_id"]);
    let (_, meta1) = app.get(&format!("/v1/convai/agents/{id}/versions/{v1}"), key).await;
    assert_eq!(meta1["seq_no_in_branch"], 1);
    assert_eq!(meta1["parents"]["in_branch_parent_id"], Value::Null);

    // Unknown ids are 404 and another workspace sees nothing.
    for path in [
        format!("/v1/convai/agents/{id}?version_id=agtvrsn_nope"),
        format!("/v1/convai/agents/{id}?branch_id=agtbrch_nope"),
        format!("/v1/convai/agents/{id}/versions/agtvrsn_nope"),
        format!("/v1/convai/agents/{id}/branches/agtbrch_nope"),
    ] {
        assert_eq!(app.get(&path, key).await.0, 404, "{path}");
    }
    let theirs = app.key("other", "o@x.test", "admin").await;
    for path in [
        format!("/v1/convai/agents/{id}?version_id={v1}"),
        format!("/v1/convai/agents/{id}/versions/{v1}"),
        format!("/v1/convai/agents/{id}/branches"),
    ] {
        assert_eq!(app.get(&path, &theirs).await.0, 404, "{path}");
    }
}
dual_db!(every_change_is_a_version);

async fn branches_drafts_merges_and_rebases(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.admin_key;
    let (id, first) = create_agent(&app, "base").await;
    let main = first["main_branch_id"].as_str().unwrap().to_owned();
    let v1 = first["version_id"].as_str().unwrap().to_owned();
    let agent_path = format!("/v1/convai/agents/{id}");

    // A branch from the first version, with a change of its own.
    let (s, created) = app
        .post(
            &format!("{agent_path}/branches"),
            key,
            &json!({"parent_version_id": v1, "name": "experiment", "description": "try",
                "conversation_config": {"agent": {"first_message": "Hey there"}}}),
        )
        .await;
    assert_eq!(s, 200, "{created}");
    let branch = created["created_branch_id"].as_str().unwrap().to_owned();
    let (s, dup) = app
        .post(
            &format!("{agent_path}/branches"),
            key,
            &json!({"parent_version_id": v1, "name": "experiment", "description": ""}),
        )
        .await;
    assert_eq!(s, 409, "branch names are unique: {dup}");
    let (_, log) = app.get(&format!("/api/changes?resource={branch}"), key).await;
    let logged = log["changes"].as_array().unwrap();
    assert_eq!(logged.len(), 1, "the change log has the branch: {log}");
    assert_eq!(
        (logged[0]["resource"]["type"].as_str(), logged[0]["operation"].as_str()),
        (Some("agent_branch"), Some("create"))
    );
    let (_, on_branch) = app.get(&format!("{agent_path}?branch_id={branch}"), key).await;
    assert_eq!(on_branch["conversation_config"]["agent"]["first_message"], "Hey there");
    assert_eq!(on_branch["branch_id"], branch.as_str());
    assert_eq!(on_branch["version_id"], created["created_version_id"]);
    let (_, on_main) = app.get(&agent_path, key).await;
    assert_eq!(on_main["conversation_config"]["agent"]["first_message"], "Hi");

    // Both sides change: main its prompt, the branch its prompt too (a conflict) and its LLM.
    patch(&app, &agent_path, prompt_patch("main's prompt")).await;
    let (s, _) = patch(
        &app,
        &format!("{agent_path}?branch_id={branch}"),
        json!({"conversation_config": {"agent": {"prompt": {"prompt": "branch's prompt", "temperature": 0.3}}}}),
    )
    .await;
    assert_eq!(s, 200);

    let (s, list) =
        app.get(&format!("{agent_path}/branches?include_commit_status=true"), key).await;
    assert_eq!(s, 200, "{list}");
    let results = list["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    let summary = results.iter().find(|b| b["id"] == branch.as_str()).unwrap();
    assert_eq!(
        (summary["commits_ahead"].as_i64(), summary["commits_behind"].as_i64()),
        (Some(2), Some(1))
    );
    assert_eq!(summary["parent_branch_id"], main.as_str());
    let main_summary = results.iter().find(|b| b["id"] == main.as_str()).unwrap();
    assert_eq!(main_summary["current_live_percentage"], 1.0);

    // The preview lists the conflict; a merge refuses it unless forced.
    let preview_path =
        format!("{agent_path}/branches/{branch}/merge-preview?target_branch_id={main}");
    let (s, preview) = app.get(&preview_path, key).await;
    assert_eq!(s, 200, "{preview}");
    assert_eq!(preview["overridden_fields"], json!(["conversation_config.agent.prompt.prompt"]));
    assert_eq!(prompt(&preview), "main's prompt", "without force the target keeps its value");
    assert_eq!(preview["conversation_config"]["agent"]["first_message"], "Hey there");
    assert_eq!(preview["conversation_config"]["agent"]["prompt"]["temperature"], 0.3);
    let (_, forced) = app.get(&format!("{preview_path}&force=true"), key).await;
    assert_eq!(prompt(&forced), "branch's prompt");
    let (_, still) = app.get(&agent_path, key).await;
    assert_eq!(prompt(&still), "main's prompt", "a preview changes nothing");

    let merge_path = format!("{agent_path}/branches/{branch}/merge?target_branch_id={main}");
    let (s, refused) = app.post(&merge_path, key, &json!({})).await;
    assert_eq!(s, 409, "{refused}");
    assert!(
        refused["detail"]["message"]
            .as_str()
            .unwrap()
            .contains("conversation_config.agent.prompt.prompt")
    );
    let (s, merged) = app.post(&merge_path, key, &json!({"force": true})).await;
    assert_eq!(s, 200, "{merged}");
    assert_eq!(prompt(&merged), "branch's prompt");
    assert_eq!(merged["conversation_config"]["agent"]["first_message"], "Hey there");
    let merge_version = merged["version_id"].as_str().unwrap();
    let (_, meta) = app.get(&format!("{agent_path}/versions/{merge_version}"), key).await;
    assert_eq!(meta["parents"]["merged_from_branch_id"], branch.as_str());
    assert_eq!(meta["branch_id"], main.as_str());
    let (_, merged_branch) = app.get(&format!("{agent_path}/branches/{branch}"), key).await;
    assert_eq!(merged_branch["is_archived"], true, "the source is archived by default");
    assert!(!merged_branch["most_recent_versions"].as_array().unwrap().is_empty());
    let (s, _) = patch(&app, &format!("{agent_path}?branch_id={branch}"), prompt_patch("x")).await;
    assert_eq!(s, 409, "an archived branch takes no commits");
    let (_, listed) = app.get(&format!("{agent_path}/branches"), key).await;
    assert_eq!(listed["results"].as_array().unwrap().len(), 1, "archived branches are hidden");

    // Bad requests change nothing.
    let self_merge = format!("{agent_path}/branches/{main}/merge?target_branch_id={main}");
    assert_eq!(app.post(&self_merge, key, &json!({})).await.0, 422);
    let (s, _) =
        patch(&app, &format!("{agent_path}/branches/{main}"), json!({"is_archived": true})).await;
    assert_eq!(s, 422, "the main branch cannot be archived");
    assert_eq!(app.get(&format!("{agent_path}/branches/{main}/rebase-preview"), key).await.0, 422);

    // Rebase: a new branch, main moves on, the branch takes main's change and keeps its own.
    let (_, head) = app.get(&agent_path, key).await;
    let (_, second) = app
        .post(
            &format!("{agent_path}/branches"),
            key,
            &json!({"parent_version_id": head["version_id"], "name": "second", "description": ""}),
        )
        .await;
    let second = second["created_branch_id"].as_str().unwrap().to_owned();
    patch(
        &app,
        &format!("{agent_path}?branch_id={second}"),
        json!({"conversation_config": {"agent": {"first_message": "Second"}}}),
    )
    .await;
    patch(&app, &agent_path, prompt_patch("main moved on")).await;
    let (s, preview) =
        app.get(&format!("{agent_path}/branches/{second}/rebase-preview"), key).await;
    assert_eq!(s, 200, "{preview}");
    assert_eq!(prompt(&preview), "main moved on");
    assert_eq!(preview["overridden_fields"], json!([]));
    let (s, rebased) =
        app.post(&format!("{agent_path}/branches/{second}/rebase"), key, &json!({})).await;
    assert_eq!(s, 200, "{rebased}");
    assert_eq!(prompt(&rebased), "main moved on");
    assert_eq!(rebased["conversation_config"]["agent"]["first_message"], "Second");
    let (_, status) =
        app.get(&format!("{agent_path}/branches?include_commit_status=true"), key).await;
    let second_summary =
        status["results"].as_array().unwrap().iter().find(|b| b["id"] == second.as_str()).unwrap();
    assert_eq!(second_summary["commits_behind"], 0, "{second_summary}");

    // A branch protected for administrators takes no commit from an editor.
    let (s, _) = patch(
        &app,
        &format!("{agent_path}/branches/{second}"),
        json!({"protection_status": "admin_perms_required"}),
    )
    .await;
    assert_eq!(s, 200);
    let editor = app.key("default", "ed@x.test", "agents:write agents:read").await;
    let (s, _) = app
        .send(
            Method::PATCH,
            &format!("{agent_path}?branch_id={second}"),
            &editor,
            &prompt_patch("editor"),
        )
        .await;
    assert_eq!(s, 403, "protected branch");
    patch(
        &app,
        &format!("{agent_path}/branches/{second}"),
        json!({"protection_status": "writer_perms_required"}),
    )
    .await;

    // Drafts: kept beside the head, never served, committed by the author's next PATCH.
    let draft_path = format!("{agent_path}/drafts?branch_id={second}");
    let draft_body = json!({"conversation_config": {"agent": {"first_message": "Drafted"}}, "platform_settings": {}, "workflow": {}, "name": "Versioned"});
    let (s, draft) = app.post(&draft_path, key, &draft_body).await;
    assert_eq!(s, 200, "{draft}");
    assert_eq!(draft["conversation_config"]["agent"]["first_message"], "Drafted");
    let (_, served) = app.get(&format!("{agent_path}?branch_id={second}"), key).await;
    assert_eq!(served["conversation_config"]["agent"]["first_message"], "Second");
    let (_, list) = app.get(&format!("{agent_path}/branches"), key).await;
    let with_draft =
        list["results"].as_array().unwrap().iter().find(|b| b["id"] == second.as_str()).unwrap();
    assert_eq!(with_draft["draft_exists"], true);
    let (s, committed) =
        patch(&app, &format!("{agent_path}?branch_id={second}"), json!({"tags": ["drafted"]}))
            .await;
    assert_eq!(s, 200, "{committed}");
    assert_eq!(committed["conversation_config"]["agent"]["first_message"], "Drafted");
    assert_eq!(committed["tags"], json!(["drafted"]));
    let delete = app.send(Method::DELETE, &draft_path, key, &Value::Null).await;
    assert_eq!(delete.0, 404, "the commit consumed the draft");
    app.post(&draft_path, key, &draft_body).await;
    assert_eq!(app.send(Method::DELETE, &draft_path, key, &Value::Null).await.0, 200);
}
dual_db!(branches_drafts_merges_and_rebases);

/// Writers racing on one branch make versions in a line: each version's parent is the one
/// before it, and none is lost.
async fn racing_writers_make_a_line_of_versions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (id, _) = create_agent(&app, "start").await;
    let path = format!("/v1/convai/agents/{id}");
    let writes = (0..6).map(|i| patch(&app, &path, prompt_patch(&format!("writer {i}"))));
    let answers = futures_util::future::join_all(writes).await;
    let versions: Vec<String> = answers
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b["version_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(versions.len() >= 3, "most writers succeed: {answers:?}");
    assert!(answers.iter().all(|(s, _)| *s == 200 || *s == 409), "{answers:?}");
    let mut seqs = Vec::new();
    for v in &versions {
        let (_, meta) = app.get(&format!("{path}/versions/{v}"), &app.admin_key).await;
        seqs.push(meta["seq_no_in_branch"].as_i64().unwrap());
        let parent = meta["parents"]["in_branch_parent_id"].as_str().unwrap();
        let (_, parent_meta) = app.get(&format!("{path}/versions/{parent}"), &app.admin_key).await;
        assert_eq!(
            parent_meta["seq_no_in_branch"].as_i64().unwrap() + 1,
            meta["seq_no_in_branch"].as_i64().unwrap()
        );
    }
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), versions.len(), "no two writers took the same place");
}
dual_db!(racing_writers_make_a_line_of_versions);

/// Answers by the prompt the agent has: an agent told to be old-fashioned says "Good day".
fn by_prompt(req: &Value) -> crate::fakes::Reply {
    let msgs = req["messages"].as_array().unwrap();
    let system = msgs[0]["content"].as_str().unwrap_or_default();
    let last = msgs.last().unwrap()["content"].as_str().unwrap_or_default();
    if system.starts_with("You evaluate") {
        let ok = last.contains("Good day");
        return text(&format!(
            r#"{{"result": "{}", "rationale": "r"}}"#,
            if ok { "success" } else { "failure" }
        ));
    }
    text(if system.contains("old-fashioned") { "Good day" } else { "Yo" })
}

async fn deployments_split_conversations_and_tests_pin_versions(backend: Backend) {
    let llm = FakeLlm::openai(by_prompt).await;
    let app = TestApp::spawn_with(backend, with_llm(&llm)).await;
    let key = &app.admin_key;
    let (id, first) = create_agent(&app, "Be old-fashioned.").await;
    let main = first["main_branch_id"].as_str().unwrap().to_owned();
    let old_version = first["version_id"].as_str().unwrap().to_owned();
    let agent_path = format!("/v1/convai/agents/{id}");
    let (_, created) = app
        .post(
            &format!("{agent_path}/branches"),
            key,
            &json!({"parent_version_id": old_version, "name": "b", "description": ""}),
        )
        .await;
    let branch = created["created_branch_id"].as_str().unwrap().to_owned();

    // Shares must add up to the whole, and name branches that exist.
    let deploy = |split: Vec<(&str, f64)>| {
        let requests: Vec<Value> = split
            .iter()
            .map(|(b, p)| json!({"branch_id": b, "deployment_strategy": {"type": "percentage", "traffic_percentage": p}}))
            .collect();
        json!({"deployment_request": {"requests": requests}})
    };
    let path = format!("{agent_path}/deployments");
    assert_eq!(app.post(&path, key, &deploy(vec![(&main, 0.5), (&branch, 0.4)])).await.0, 422);
    assert_eq!(app.post(&path, key, &deploy(vec![(&main, 1.5)])).await.0, 422);
    assert_eq!(
        app.post(&path, key, &deploy(vec![(&main, 0.5), ("agtbrch_nope", 0.5)])).await.0,
        404
    );
    let (_, branches) = app.get(&format!("{agent_path}/branches"), key).await;
    let share = |b: &Value, id: &str| {
        b["results"].as_array().unwrap().iter().find(|r| r["id"] == id).unwrap()["current_live_percentage"].clone()
    };
    assert_eq!(share(&branches, &main), 1.0, "a refused deployment changes nothing");
    let (s, split) = app.post(&path, key, &deploy(vec![(&main, 0.5), (&branch, 0.5)])).await;
    assert_eq!(s, 200, "{split}");
    assert_eq!(split["traffic_percentage_branch_id_map"][&branch], 0.5);
    let (s, history) = app.get(&format!("{path}?page_size=10"), key).await;
    assert_eq!(s, 200, "{history}");
    let items = history["results"].as_array().unwrap();
    assert_eq!(items.len(), 1, "refused deployments leave no trace: {history}");
    assert_eq!(items[0]["is_active"], true);
    assert_eq!(items[0]["source"], "manual");
    assert_eq!(items[0]["traffic_percentage_branch_id_map"][&main], 0.5);

    // A duplicate copies the unarchived branches and the split onto them.
    let (_, copy) =
        app.post(&format!("{agent_path}/duplicate"), key, &json!({"name": "copy"})).await;
    let copy = copy["agent_id"].as_str().unwrap();
    let (_, copied) = app.get(&format!("/v1/convai/agents/{copy}/branches"), key).await;
    let copied = copied["results"].as_array().unwrap();
    assert_eq!(copied.len(), 2, "{copied:?}");
    assert!(copied.iter().any(|b| b["name"] == "b" && b["current_live_percentage"] == 0.5));
    assert!(copied.iter().all(|b| b["id"] != branch.as_str() && b["id"] != main.as_str()));

    // 200 conversations land on both branches; one user always on the same one.
    let url = |query: &str| {
        format!(
            "{}/v1/convai/conversation?agent_id={id}{query}",
            app.base.replacen("http", "ws", 1)
        )
    };
    let mut landed: BTreeMap<String, usize> = BTreeMap::new();
    let mut ids = Vec::new();
    for i in 0..200 {
        let user = (i % 10 == 0).then(|| "steady-user".to_owned());
        let data = InitiationData { user_id: user.clone(), ..InitiationData::default() };
        let (socket, conversation) = ws::open(&url(""), data).await;
        drop(socket);
        ids.push((conversation, user.is_some()));
    }
    let mut steady = Vec::new();
    for (conversation, is_steady) in &ids {
        let (s, c) =
            crate::helpers::poll(Duration::from_secs(5), Duration::from_millis(20), async || {
                let (s, c) =
                    app.get(&format!("/v1/convai/conversations/{conversation}"), key).await;
                (s == 200).then_some((s, c))
            })
            .await
            .unwrap();
        assert_eq!(s, 200);
        let on = c["branch_id"].as_str().unwrap().to_owned();
        assert!(c["version_id"].as_str().unwrap().starts_with("agtvrsn_"));
        if *is_steady {
            steady.push(on.clone());
        }
        *landed.entry(on).or_default() += 1;
    }
    assert_eq!(landed.len(), 2, "both branches serve: {landed:?}");
    assert!(landed.values().all(|n| *n > 40), "{landed:?}");
    steady.dedup();
    assert_eq!(steady.len(), 1, "the same user always lands on the same branch");

    // A conversation on a named version runs it and says so in its details and transcript.
    patch(&app, &agent_path, prompt_patch("Be casual.")).await;
    let (mut socket, conversation) =
        ws::open(&url(&format!("&version_id={old_version}")), InitiationData::default()).await;
    ws::next_of(&mut socket, "agent_response").await;
    let events = ws::turn(&mut socket, "hello").await;
    assert_eq!(events.last().unwrap()["agent_response_event"]["agent_response"], "Good day");
    drop(socket);
    let (_, c) =
        crate::helpers::poll(Duration::from_secs(5), Duration::from_millis(50), async || {
            let (s, c) = app.get(&format!("/v1/convai/conversations/{conversation}"), key).await;
            (s == 200 && c["transcript"].as_array().is_some_and(|t| t.len() >= 3)).then_some((s, c))
        })
        .await
        .unwrap();
    assert_eq!(c["version_id"], old_version.as_str());
    let agent_entry =
        c["transcript"].as_array().unwrap().iter().rev().find(|e| e["role"] == "agent").unwrap();
    assert_eq!(agent_entry["agent_metadata"]["version_id"], old_version.as_str());

    // A test run on the old version passes while the head's fails.
    let (_, test) = app
        .post(
            "/v1/convai/agent-testing/create",
            key,
            &json!({"name": "greets formally", "success_condition": "formal",
            "chat_history": [{"role": "user", "message": "hello", "time_in_call_secs": 0}]}),
        )
        .await;
    let tests = json!([{"test_id": test["id"]}]);
    let (s, on_old) = app
        .post(
            &format!("{agent_path}/run-tests"),
            key,
            &json!({"tests": tests, "version_id": old_version}),
        )
        .await;
    assert_eq!(s, 200, "{on_old}");
    assert_eq!(on_old["version_id"], old_version.as_str());
    let (_, on_head) = app
        .post(&format!("{agent_path}/run-tests"), key, &json!({"tests": tests, "branch_id": main}))
        .await;
    let old_done =
        invocation_done(&app.base, key, on_old["id"].as_str().unwrap(), Duration::from_secs(20))
            .await;
    let head_done =
        invocation_done(&app.base, key, on_head["id"].as_str().unwrap(), Duration::from_secs(20))
            .await;
    assert_eq!(old_done["test_runs"][0]["status"], "passed", "{old_done}");
    assert_eq!(head_done["test_runs"][0]["status"], "failed", "{head_done}");
    let (_, filtered) = app
        .get(&format!("/v1/convai/test-invocations?agent_id={id}&version_id={old_version}"), key)
        .await;
    let listed = filtered["results"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{filtered}");
    assert_eq!(listed[0]["id"], on_old["id"]);
}
dual_db!(deployments_split_conversations_and_tests_pin_versions);

/// Starts the procedure the system prompt offers when the user asks for a refund, and follows
/// an active procedure's instructions.
fn with_procedures(req: &Value) -> crate::fakes::Reply {
    let msgs = req["messages"].as_array().unwrap();
    let system = msgs[0]["content"].as_str().unwrap_or_default();
    let last = msgs.last().unwrap();
    if last["role"] == "tool" {
        return text("Started.");
    }
    if system.contains("<active-procedures>") && system.contains("Ask for the order number") {
        return text("What is your order number?");
    }
    let offered = system.split("- ").nth(1).and_then(|rest| rest.split_whitespace().next());
    match (last["content"].as_str(), offered) {
        (Some("refund please"), Some(id)) => {
            crate::fakes::call("start_procedure", json!({"procedure_id": id}))
        }
        _ => text("How can I help?"),
    }
}

async fn procedures_are_drafted_published_and_followed(backend: Backend) {
    let llm = FakeLlm::openai(with_procedures).await;
    let app = TestApp::spawn_with(backend, with_llm(&llm)).await;
    let key = &app.admin_key;
    let (_, tool) = app
        .post(
            "/v1/convai/tools",
            key,
            &json!({"tool_config": {"type": "system", "name": "start_procedure", "description": "",
            "params": {"system_tool_type": "start_procedure"}}}),
        )
        .await;
    let body = json!({"name": "Procedural", "conversation_config": {"agent": {"first_message": "Hi", "prompt": {"prompt": "Help.", "llm": "gpt-4o", "tool_ids": [tool["id"]]}}}});
    let (_, created) = app.post("/v1/convai/agents/create", key, &body).await;
    let id = created["agent_id"].as_str().unwrap().to_owned();
    let (_, first) = app.get(&format!("/v1/convai/agents/{id}"), key).await;
    let main = first["main_branch_id"].as_str().unwrap().to_owned();
    let v1 = first["version_id"].as_str().unwrap().to_owned();
    let base = format!("/v1/convai/agents/{id}/branches/{main}/procedures");

    let (s, made) = app
        .post(&base, key, &json!({"name": "Refunds", "content": "Ask for the order number.", "description": "The user wants a refund"}))
        .await;
    assert_eq!(s, 200, "{made}");
    let procedure = made["procedure_id"].as_str().unwrap().to_owned();
    assert!(procedure.starts_with("agtprc_"));
    let (_, listed) = app.get(&base, key).await;
    assert_eq!(listed["procedures"][0]["has_draft"], true, "{listed}");
    assert_eq!(listed["procedures"][0]["version_id"], Value::Null);
    assert_eq!(listed["procedures"][0]["trigger"], "The user wants a refund");
    assert_eq!(app.get(&format!("{base}/{procedure}"), key).await.0, 404, "never published");
    let (s, draft) = app
        .send(Method::PATCH, &format!("{base}/{procedure}/draft"), key,
            &json!({"name": "Refunds", "content": "Ask for the order number. Use {{order_hint}}.", "type": "free_form", "trigger": "The user wants a refund"}))
        .await;
    assert_eq!(s, 200, "{draft}");
    let (_, got) = app.get(&format!("{base}/{procedure}/draft"), key).await;
    assert_eq!(got["content"], "Ask for the order number. Use {{order_hint}}.");
    let (s, compiled) = app.post(&format!("{base}/compile"), key, &json!({})).await;
    assert_eq!(s, 200, "{compiled}");
    assert_eq!(compiled["workflow"]["nodes"][&procedure]["additional_prompt"], got["content"]);

    // The author's next commit publishes the draft as a version the agent version names.
    let (s, committed) = patch(&app, &format!("/v1/convai/agents/{id}"), json!({})).await;
    assert_eq!(s, 200, "{committed}");
    let entry = &committed["procedures"][&procedure];
    assert!(entry["version_id"].as_str().unwrap().starts_with("agtprcv_"), "{committed}");
    assert_eq!(entry["referenced_dynamic_variables"], json!(["order_hint"]));
    let (_, listed) = app.get(&base, key).await;
    assert_eq!(listed["procedures"][0]["has_draft"], false);
    let (s, at_head) = app.get(&format!("{base}/{procedure}"), key).await;
    assert_eq!(s, 200, "{at_head}");
    assert_eq!(at_head["version_id"], entry["version_id"]);
    let (_, old) = app.get(&format!("{base}?agent_version_id={v1}"), key).await;
    assert_eq!(old["procedures"], json!([]), "the first version had none");
    assert_eq!(app.get(&format!("{base}/{procedure}/draft"), key).await.0, 404, "published");

    // In a conversation the agent starts it and follows its instructions.
    let url =
        format!("{}/v1/convai/conversation?agent_id={id}", app.base.replacen("http", "ws", 1));
    let (mut socket, _) = ws::open(&url, InitiationData::default()).await;
    ws::next_of(&mut socket, "agent_response").await;
    let events = ws::turn(&mut socket, "refund please").await;
    let response = events.iter().find(|e| e["type"] == "agent_tool_response");
    assert!(
        response.is_some_and(|r| r["agent_tool_response"]["tool_name"] == "start_procedure"
            && r["agent_tool_response"]["is_error"] == false),
        "{events:?}"
    );
    let events = ws::turn(&mut socket, "ok").await;
    assert_eq!(
        events.last().unwrap()["agent_response_event"]["agent_response"],
        "What is your order number?"
    );
    drop(socket);

    // Removing it is a draft too; the next commit takes it out.
    let (s, _) = app.send(Method::DELETE, &format!("{base}/{procedure}"), key, &Value::Null).await;
    assert_eq!(s, 200);
    let (_, listed) = app.get(&base, key).await;
    assert_eq!(listed["procedures"], json!([]));
    let (_, committed) = patch(&app, &format!("/v1/convai/agents/{id}"), json!({})).await;
    assert_eq!(committed["procedures"], json!({}));
    assert_eq!(app.get(&format!("{base}/agtprc_nope/draft"), key).await.0, 404);
}
dual_db!(procedures_are_drafted_published_and_followed);
