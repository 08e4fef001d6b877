//! The dashboard over HTTP, on both databases: sign-in and its cookie, the session's workspace
//! and scopes, escaping, CSRF and the security headers. The browser test
//! (tests/dashboard/run) drives the same pages in Chromium.

use std::time::Duration;

use colloquy_store::KeyStore;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::json;

use crate::helpers::{Backend, TestApp, dual_db, poll};

/// A browser-like client that follows no redirects, so each hop can be checked.
fn browser() -> reqwest::Client {
    colloquy::server::install_crypto_provider();
    reqwest::Client::builder().redirect(Policy::none()).build().unwrap()
}

/// The `name=value` of every cookie a response sets.
fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers().get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect()
}

/// A form body; every value here (keys, tokens, paths) is already URL-safe but for `/`.
fn form_body(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace('/', "%2F")))
        .collect::<Vec<_>>()
        .join("&")
}

fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker).unwrap_or_else(|| panic!("no {name} in {page}")) + marker.len();
    page[start..].split('"').next().unwrap().to_owned()
}

/// Signs in with `key` and returns the session's `Cookie` header value.
pub(crate) async fn sign_in(app: &TestApp, key: &str) -> String {
    let web = browser();
    let form = web.get(app.url("/login")).send().await.unwrap();
    let login_cookie = set_cookies(&form)[0].split(';').next().unwrap().to_owned();
    let token = hidden(&form.text().await.unwrap(), "_csrf");
    let r = web
        .post(app.url("/login"))
        .header(COOKIE, &login_cookie)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form_body(&[("api_key", key), ("_csrf", &token), ("next", "/agents")]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{:?}", r.text().await);
    assert_eq!(r.headers()[LOCATION], "/agents");
    let session = set_cookies(&r)
        .into_iter()
        .find(|c| c.starts_with("__Host-colloquy_session="))
        .expect("a session cookie");
    for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(session.contains(flag), "{session} lacks {flag}");
    }
    assert!(!session.contains(key), "the key is sealed, not stored in clear");
    session.split(';').next().unwrap().to_owned()
}

pub(crate) async fn page(app: &TestApp, cookie: &str, path: &str) -> (u16, String) {
    let r = browser().get(app.url(path)).header(COOKIE, cookie).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn sign_in_is_needed_and_wrong_keys_or_stale_forms_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let web = browser();
    let r = web.get(app.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[LOCATION], "/login?next=%2F");
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"), "{csp}");
    assert_eq!(r.headers()["x-frame-options"], "DENY");

    let form = web.get(app.url("/login")).send().await.unwrap();
    let login_cookie = set_cookies(&form)[0].split(';').next().unwrap().to_owned();
    let token = hidden(&form.text().await.unwrap(), "_csrf");
    let wrong = web
        .post(app.url("/login"))
        .header(COOKIE, &login_cookie)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form_body(&[("api_key", "sk_wrong"), ("_csrf", &token)]))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(set_cookies(&wrong).iter().all(|c| !c.starts_with("__Host-colloquy_session")));
    assert!(wrong.text().await.unwrap().contains("not valid"));
    let unsendable = web
        .post(app.url("/login"))
        .header(COOKIE, &login_cookie)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("api_key=sk%0Abad&_csrf={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(unsendable.status(), 401, "a key with a newline is refused, not a 500");
    let stale = web
        .post(app.url("/login"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form_body(&[("api_key", &app.admin_key), ("_csrf", &token)]))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 403, "no login cookie, no sign-in");
    let forged = web
        .get(app.url("/agents"))
        .header(COOKIE, "__Host-colloquy_session=v1.nope.AAAA")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 303, "a forged cookie is no session");
    app.stop().await;
}
dual_db!(sign_in_is_needed_and_wrong_keys_or_stale_forms_are_refused);

async fn pages_show_the_keys_workspace_escaped_and_within_its_scopes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (s, agent) = app
        .post(
            "/v1/convai/agents/create",
            &app.admin_key,
            &json!({"name": "<script>alert(1)</script>", "conversation_config": {}}),
        )
        .await;
    assert_eq!(s, 200, "{agent}");
    let id = agent["agent_id"].as_str().unwrap();
    let cookie = sign_in(&app, &app.admin_key).await;
    let (s, list) = page(&app, &cookie, "/agents").await;
    assert_eq!(s, 200);
    assert!(list.contains("admin@localhost · default"), "who is signed in, where: {list}");
    assert!(list.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{list}");
    assert!(!list.contains("<script>alert"), "names are escaped");
    // Pages of 30, with a link to the next.
    for i in 0..30 {
        let body = json!({"name": format!("filler {i:02}"), "conversation_config": {}});
        assert_eq!(app.post("/v1/convai/agents/create", &app.admin_key, &body).await.0, 200);
    }
    let (_, first) = page(&app, &cookie, "/agents").await;
    assert!(first.contains("filler 29") && !first.contains("alert(1)"), "newest first");
    let next = first.split("rel=\"next\" href=\"").nth(1).expect("a next link");
    let next = next.split('"').next().unwrap().replace("&amp;", "&");
    let (s, second) = page(&app, &cookie, &next).await;
    assert_eq!(s, 200);
    assert!(second.contains("&lt;script&gt;") && !second.contains("filler 29"), "{second}");
    let (_, found) = page(&app, &cookie, "/agents?search=FILLER%2007").await;
    assert!(found.contains("filler 07") && !found.contains("filler 08"));

    let (s, detail) = page(&app, &cookie, &format!("/agents/{id}")).await;
    assert_eq!(s, 200);
    assert!(detail.contains("Configuration") && detail.contains("aria-label=\"Agent settings\""));

    // An agent's tools are listed by name, linking to each.
    let (s, tool) = app
        .post(
            "/v1/convai/tools",
            &app.admin_key,
            &crate::tools::webhook("lookup_weather", "https://x.example"),
        )
        .await;
    assert_eq!(s, 200, "{tool}");
    let tool_id = tool["id"].as_str().unwrap();
    let patch = json!({"conversation_config": {"agent": {"prompt": {"tool_ids": [tool_id]}}}});
    let path = format!("/v1/convai/agents/{id}");
    assert_eq!(app.send(reqwest::Method::PATCH, &path, &app.admin_key, &patch).await.0, 200);
    let (_, with_tool) = page(&app, &cookie, &format!("/agents/{id}")).await;
    assert!(
        with_tool.contains(&format!("<a href=\"/tools/{tool_id}\">lookup_weather</a>")),
        "the tool by name: {with_tool}"
    );

    // Conversations are filtered by choosing an agent by name, not by typing its id.
    let (_, conversations) = page(&app, &cookie, &format!("/conversations?agent_id={id}")).await;
    assert!(
        conversations.contains(&format!("<option value=\"{id}\" selected>&lt;script&gt;")),
        "the agent chosen by name: {conversations}"
    );

    // Deleting asks first; asking deletes nothing.
    let (s, confirm) = page(&app, &cookie, &format!("/agents/{id}/delete")).await;
    assert_eq!(s, 200, "{confirm}");
    assert!(confirm.contains("Delete the agent") && confirm.contains("Cancel"), "{confirm}");
    assert!(
        detail.contains(&format!("href=\"/agents/{id}/delete\"")),
        "Delete is a link to the question"
    );
    let still = app.get(&format!("/v1/convai/agents/{id}"), &app.admin_key).await.0;
    assert_eq!(still, 200, "asking deletes nothing");

    // The change log lists the creations, filtered by resource id.
    let (s, log) = page(&app, &cookie, &format!("/changes?resource={id}")).await;
    assert_eq!(s, 200, "{log}");
    assert!(
        log.contains(id) && log.contains("create") && log.contains("conversation_config"),
        "{log}"
    );
    assert!(!log.contains("filler"), "one agent's changes: {log}");

    let other = app.key("elsewhere", "eve@example.com", "admin").await;
    let other_cookie = sign_in(&app, &other).await;
    let (s, list) = page(&app, &other_cookie, "/agents").await;
    assert_eq!(s, 200);
    assert!(!list.contains("alert(1)") && list.contains("No agents yet"), "{list}");
    assert_eq!(list.matches("<h2>New agent</h2>").count(), 1, "one form, first: {list}");
    let (_, searched) = page(&app, &other_cookie, "/agents?search=nothing").await;
    assert!(searched.contains("No agents match."), "a filter that finds nothing says so");
    let icon = browser().get(app.url("/favicon.ico")).send().await.unwrap();
    assert_eq!(icon.status(), 200, "every browser asks for /favicon.ico");
    assert_eq!(icon.headers()["content-type"], "image/svg+xml");
    assert_eq!(page(&app, &other_cookie, &format!("/agents/{id}")).await.0, 404);

    let tools_only = app.key("default", "tia@example.com", "tools:read").await;
    let tools_cookie = sign_in(&app, &tools_only).await;
    let (s, refused) = page(&app, &tools_cookie, "/agents").await;
    assert_eq!(s, 403, "{refused}");
    assert!(refused.contains("agents:read"), "{refused}");
    assert_eq!(page(&app, &tools_cookie, "/tools").await.0, 200);

    // Revoking the key ends its sessions within a second (the API trusts a key it read for
    // half a second).
    let store = app.db.store().await;
    let listed = store.list_keys(Some("default"), None, 100).await.unwrap();
    let id = &listed.iter().find(|k| k.user_email == "tia@example.com").unwrap().id;
    store.revoke_key(id).await.unwrap();
    let r = poll(Duration::from_secs(1), Duration::from_millis(50), async || {
        let r =
            browser().get(app.url("/tools")).header(COOKIE, &tools_cookie).send().await.unwrap();
        (r.status() == 303).then_some(r)
    })
    .await
    .expect("the revoked key's session still works a second later");
    assert!(r.headers()[LOCATION].to_str().unwrap().starts_with("/login"));
    app.stop().await;
}
dual_db!(pages_show_the_keys_workspace_escaped_and_within_its_scopes);

async fn changes_need_the_sessions_csrf_token_and_the_same_origin(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, agent) = app
        .post(
            "/v1/convai/agents/create",
            &app.admin_key,
            &json!({"name": "keep me", "conversation_config": {}}),
        )
        .await;
    let id = agent["agent_id"].as_str().unwrap();
    let cookie = sign_in(&app, &app.admin_key).await;
    let (_, detail) = page(&app, &cookie, &format!("/agents/{id}")).await;
    let csrf = hidden(&detail, "_csrf");
    let delete = |token: String, origin: Option<&'static str>| {
        let mut request = browser()
            .post(app.url(&format!("/agents/{id}/delete")))
            .header(COOKIE, &cookie)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(format!("_csrf={token}"));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    assert_eq!(delete("forged".into(), None).await.unwrap().status(), 403);
    assert_eq!(delete(csrf.clone(), Some("http://evil.example")).await.unwrap().status(), 403);
    assert_eq!(app.get(&format!("/v1/convai/agents/{id}"), &app.admin_key).await.0, 200);
    // A form with nothing to run is refused plainly, and starts nothing.
    let empty = browser()
        .post(app.url("/tests/run"))
        .header(COOKIE, &cookie)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("_csrf={csrf}&agent_id={id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), 422);
    assert!(empty.text().await.unwrap().contains("at least one test"));
    let (_, runs) =
        app.get(&format!("/v1/convai/test-invocations?agent_id={id}"), &app.admin_key).await;
    assert_eq!(runs["results"], json!([]), "{runs}");
    let done = delete(csrf, None).await.unwrap();
    assert_eq!(done.status(), 303);
    assert_eq!(app.get(&format!("/v1/convai/agents/{id}"), &app.admin_key).await.0, 404);
    app.stop().await;
}
dual_db!(changes_need_the_sessions_csrf_token_and_the_same_origin);

/// Posts a form of the signed-in session; the response's status and `Location`.
async fn post_form(app: &TestApp, cookie: &str, path: &str, body: &str) -> (u16, String) {
    let (status, location, _) = post_page(app, cookie, path, body).await;
    (status, location)
}

async fn branches_versions_diffs_merges_and_the_split_in_the_browser(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.admin_key;
    let (_, agent) = app
        .post(
            "/v1/convai/agents/create",
            key,
            &json!({"name": "Branchy", "conversation_config": {"agent": {"first_message": "one"}}}),
        )
        .await;
    let id = agent["agent_id"].as_str().unwrap().to_owned();
    let cookie = sign_in(&app, key).await;
    let (s, versions) = page(&app, &cookie, &format!("/agents/{id}/versions")).await;
    assert_eq!(s, 200, "{versions}");
    assert!(versions.contains("Main") && versions.contains("Set the traffic split"), "{versions}");
    let csrf = hidden(&versions, "_csrf");
    let head = hidden(&versions, "parent_version_id");

    // A branch from the page, changed through the API, compared and merged from the page.
    let (s, to) = post_form(
        &app,
        &cookie,
        &format!("/agents/{id}/branches"),
        &form_body(&[
            ("_csrf", &csrf),
            ("parent_version_id", &head),
            ("name", "trial"),
            ("description", ""),
        ]),
    )
    .await;
    assert_eq!(s, 303, "{to}");
    let branch = to.split("branch=").nth(1).unwrap().to_owned();
    app.send(
        reqwest::Method::PATCH,
        &format!("/v1/convai/agents/{id}?branch_id={branch}"),
        key,
        &json!({"conversation_config": {"agent": {"first_message": "two"}}}),
    )
    .await;
    let (_, on_branch) = app.get(&format!("/v1/convai/agents/{id}?branch_id={branch}"), key).await;
    let newer = on_branch["version_id"].as_str().unwrap();
    let (s, diff) =
        page(&app, &cookie, &format!("/agents/{id}/versions?branch={branch}&a={head}&b={newer}"))
            .await;
    assert_eq!(s, 200);
    assert!(
        diff.contains("conversation_config.agent.first_message")
            && diff.contains("&quot;two&quot;"),
        "{diff}"
    );
    let main = agent_main(&app, &id).await;
    let (s, preview) =
        page(&app, &cookie, &format!("/agents/{id}/merge?source={branch}&target={main}")).await;
    assert_eq!(s, 200);
    assert!(preview.contains("No conflicts") && preview.contains("After the merge"), "{preview}");
    let (s, _) = post_form(
        &app,
        &cookie,
        &format!("/agents/{id}/merge"),
        &form_body(&[
            ("_csrf", &csrf),
            ("source", &branch),
            ("target", &main),
            ("archive", "true"),
        ]),
    )
    .await;
    assert_eq!(s, 303);
    let (_, merged) = app.get(&format!("/v1/convai/agents/{id}"), key).await;
    assert_eq!(merged["conversation_config"]["agent"]["first_message"], "two");

    // The split as whole percentages; a split that is not the whole is refused by the API.
    let (s, _) = post_form(
        &app,
        &cookie,
        &format!("/agents/{id}/deploy"),
        &form_body(&[("_csrf", &csrf), (&format!("share_{main}"), "60")]),
    )
    .await;
    assert_eq!(s, 422, "60 % is not the whole traffic");
    let (s, _) = post_form(
        &app,
        &cookie,
        &format!("/agents/{id}/deploy"),
        &form_body(&[("_csrf", &csrf), (&format!("share_{main}"), "100")]),
    )
    .await;
    assert_eq!(s, 303);
    let (s, _) = post_form(
        &app,
        &cookie,
        &format!("/agents/{id}/versions/{head}/run-tests"),
        &form_body(&[("_csrf", &csrf)]),
    )
    .await;
    assert_eq!(s, 422, "a version with no attached tests has nothing to run");
    app.stop().await;
}
dual_db!(branches_versions_diffs_merges_and_the_split_in_the_browser);

async fn agent_main(app: &TestApp, id: &str) -> String {
    let (_, agent) = app.get(&format!("/v1/convai/agents/{id}"), &app.admin_key).await;
    agent["main_branch_id"].as_str().unwrap().to_owned()
}

async fn webhooks_are_made_chosen_and_their_deliveries_sent_again_from_the_dashboard(
    backend: Backend,
) {
    use crate::fakes::{FakeLlm, Webhook, text, with_llm};

    let llm = FakeLlm::openai(|_: &serde_json::Value| text("Hi.")).await;
    let app = TestApp::spawn_with(backend, with_llm(&llm)).await;
    // A 400 is not tried again: the delivery fails for good, and can be sent again by hand.
    let receiver = Webhook::start(400, "{}", std::time::Duration::ZERO).await;
    let cookie = sign_in(&app, &app.admin_key).await;
    let (s, empty) = page(&app, &cookie, "/webhooks").await;
    assert_eq!(s, 200, "{empty}");
    assert!(empty.contains("No webhooks yet."), "{empty}");
    let csrf = hidden(&empty, "_csrf");

    let url = format!("{}/in", receiver.base);
    let r = browser()
        .post(app.url("/webhooks"))
        .header(COOKIE, &cookie)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form_body(&[("_csrf", &csrf), ("name", "CRM"), ("url", &url)]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let created = r.text().await.unwrap();
    assert!(created.contains("wsec_"), "the secret is shown once: {created}");
    let (_, hooks) = app.get("/v1/workspace/webhooks", &app.admin_key).await;
    let id = hooks["webhooks"][0]["webhook_id"].as_str().unwrap().to_owned();
    let (s, listed) = page(&app, &cookie, "/webhooks").await;
    assert_eq!(s, 200);
    assert!(listed.contains("CRM") && !listed.contains("wsec_"), "shown only once");

    let choose = form_body(&[("_csrf", &csrf), ("webhook", &id), ("transcript", "on")]);
    assert_eq!(
        post_form(&app, &cookie, "/webhooks/post-call", &choose).await,
        (303, "/webhooks".into())
    );
    let (_, settings) = app.get("/v1/convai/settings", &app.admin_key).await;
    assert_eq!(settings["webhooks"]["post_call_webhook_id"], id.as_str());
    assert_eq!(settings["webhooks"]["events"], serde_json::json!(["transcript"]));

    let (s, agent) = app
        .post(
            "/v1/convai/agents/create",
            &app.admin_key,
            &serde_json::json!({"conversation_config": {"agent": {"first_message": "", "prompt": {"llm": "gpt-4o"}}}}),
        )
        .await;
    assert_eq!(s, 200);
    let agent_id = agent["agent_id"].as_str().unwrap();
    let (mut socket, conversation_id) = crate::ws::open(
        &crate::ws::url(&app.base, &format!("agent_id={agent_id}")),
        Default::default(),
    )
    .await;
    crate::ws::turn(&mut socket, "hello").await;
    socket.close(None).await.unwrap();
    let log = crate::helpers::poll(
        std::time::Duration::from_secs(10),
        std::time::Duration::from_millis(100),
        async || {
            let (_, log) = page(&app, &cookie, "/webhooks?status=failed").await;
            log.contains(&conversation_id).then_some(log)
        },
    )
    .await
    .expect("the failed delivery is in the log");
    assert!(log.contains("post_call_transcription") && log.contains("400"), "{log}");
    let (_, entries) = app.get("/api/webhook-deliveries?status=failed", &app.admin_key).await;
    let entry = entries["deliveries"][0]["id"].as_str().unwrap().to_owned();
    assert!(
        log.contains(&format!("/webhooks/deliveries/{entry}/redeliver")),
        "a Send again button"
    );
    receiver.set_status(200);
    let again = form_body(&[("_csrf", &csrf)]);
    let redeliver = format!("/webhooks/deliveries/{entry}/redeliver");
    assert_eq!(post_form(&app, &cookie, &redeliver, &again).await, (303, "/webhooks".into()));
    crate::helpers::poll(
        std::time::Duration::from_secs(10),
        std::time::Duration::from_millis(100),
        async || (receiver.received().len() >= 2).then_some(()),
    )
    .await
    .expect("sent again");

    // Disabling, and a deletion refused while the workspace uses it.
    let disable = format!("/webhooks/{id}/disable");
    assert_eq!(post_form(&app, &cookie, &disable, &again).await, (303, "/webhooks".into()));
    let (_, hooks) = app.get("/v1/workspace/webhooks", &app.admin_key).await;
    assert_eq!(hooks["webhooks"][0]["is_disabled"], true);
    let (s, confirm) = page(&app, &cookie, &format!("/webhooks/{id}/delete")).await;
    assert_eq!(s, 200);
    assert!(confirm.contains("Delete the webhook"), "{confirm}");
    let r = browser()
        .post(app.url(&format!("/webhooks/{id}/delete")))
        .header(COOKIE, &cookie)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(again.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("used by"), "the refusal is shown");

    // Webhooks are for administrators.
    let reader = app.key("default", "r@x.test", "agents:read conversations:read").await;
    let reader_cookie = sign_in(&app, &reader).await;
    assert_eq!(page(&app, &reader_cookie, "/webhooks").await.0, 403);
}
dual_db!(webhooks_are_made_chosen_and_their_deliveries_sent_again_from_the_dashboard);

/// The review pages: a transcript search, a tag put on a conversation, a ticket raised on a turn
/// and its tool call, moved on the board and discussed, and the agent's topics.
async fn conversations_are_searched_tagged_ticketed_and_grouped_in_the_dashboard(backend: Backend) {
    use crate::fakes::{FakeLlm, call, is_analysis, text, with_llm};
    let llm = FakeLlm::openai(|req: &serde_json::Value| {
        if is_analysis(req) {
            return call(
                "record_analysis",
                json!({"transcript_summary": "A refund.",
                "call_summary_title": "Refund request", "evaluation_criteria_results": {},
                "data_collection_results": {}}),
            );
        }
        let last = req["messages"].as_array().and_then(|m| m.last()).cloned().unwrap_or_default();
        if last["content"].to_string().contains("bye") {
            call("end_call", json!({}))
        } else {
            text("Noted.")
        }
    })
    .await;
    let app = TestApp::spawn_with(backend, with_llm(&llm)).await;
    let key = app.admin_key.clone();
    let (_, agent) = app.post("/v1/convai/agents/create", &key, &json!({"conversation_config": {"agent": {
        "first_message": "", "prompt": {"prompt": "p", "llm": "gpt-4o", "built_in_tools": {"end_call": {
            "name": "end_call", "description": "End", "params": {"system_tool_type": "end_call"}}}}}}})).await;
    let agent = agent["agent_id"].as_str().unwrap().to_owned();
    let (mut socket, id) = crate::ws::open(
        &crate::ws::url(&app.base, &format!("agent_id={agent}")),
        colloquy_core::protocol::InitiationData::default(),
    )
    .await;
    crate::ws::turn(&mut socket, "I want a refund").await;
    crate::ws::say(&mut socket, "bye").await;
    crate::helpers::ended_conversation(&app, &id).await;
    poll(Duration::from_secs(15), Duration::from_millis(50), async || {
        let (_, status) = app.get(&format!("/api/conversations/{id}/analysis"), &key).await;
        (status["status"] == "succeeded").then_some(())
    })
    .await
    .expect("analysed");
    let cookie = sign_in(&app, &key).await;
    let csrf = hidden(&page(&app, &cookie, "/search").await.1, "_csrf");

    let (s, found) = page(&app, &cookie, "/search?q=refund").await;
    assert_eq!(s, 200);
    assert!(found.contains("<mark>refund</mark>"), "{found}");
    assert!(found.contains(&format!("/conversations/{id}#turn-0")), "{found}");

    let conversation = format!("/conversations/{id}");
    let (s, to) = post_form(
        &app,
        &cookie,
        &format!("{conversation}/tags"),
        &format!("_csrf={csrf}&tag_id=&title=Refunds"),
    )
    .await;
    assert_eq!((s, to.as_str()), (303, conversation.as_str()));
    let (_, shown) = page(&app, &cookie, &conversation).await;
    assert!(shown.contains("Refunds") && shown.contains("id=\"turn-3\""), "{shown}");

    let (_, calls) = app.get(&format!("/api/tool-calls?executionId={id}"), &key).await;
    let tool_call = calls[0]["id"].as_str().unwrap().to_owned();
    let (s, to) = post_form(&app, &cookie, &format!("{conversation}/tickets"),
        &format!("_csrf={csrf}&title=Refund+missed&comment=Ended+before+refunding&turn=3&tool_call={tool_call}")).await;
    assert_eq!(s, 303, "{to}");
    assert!(to.starts_with("/tickets/tkt_"), "{to}");
    let (_, board) = page(&app, &cookie, "/tickets").await;
    assert!(board.contains("Ended before refunding") && board.contains(&to), "{board}");
    let (_, ticket) = page(&app, &cookie, &to).await;
    assert!(ticket.contains("Refund missed") && ticket.contains("Tool end_call"), "{ticket}");
    assert!(
        ticket.contains(&format!("/conversations/{id}#turn-3")),
        "the turn is linked: {ticket}"
    );

    let (s, _) = post_form(
        &app,
        &cookie,
        &format!("{to}/update"),
        &format!("_csrf={csrf}&status=in_progress&assignee="),
    )
    .await;
    assert_eq!(s, 303);
    let (s, _) = post_form(
        &app,
        &cookie,
        &format!("{to}/comments"),
        &format!("_csrf={csrf}&comment=Looking+into+it"),
    )
    .await;
    assert_eq!(s, 303);
    let (_, ticket) = page(&app, &cookie, &to).await;
    assert!(ticket.contains("Looking into it") && ticket.contains(">in_progress<"), "{ticket}");

    let (s, topics) = page(&app, &cookie, &format!("/agents/{agent}/topics")).await;
    assert_eq!(s, 200);
    assert!(topics.contains("Refund request"), "{topics}");
}
dual_db!(conversations_are_searched_tagged_ticketed_and_grouped_in_the_dashboard);

/// A form body of any values, every byte but letters and digits percent-encoded.
fn encoded(pairs: &[(&str, &str)]) -> String {
    let escape = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs.iter().map(|(k, v)| format!("{}={}", escape(k), escape(v))).collect::<Vec<_>>().join("&")
}

async fn post_page(app: &TestApp, cookie: &str, path: &str, body: &str) -> (u16, String, String) {
    let r = browser()
        .post(app.url(path))
        .header(COOKIE, cookie)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let location = r.headers().get(LOCATION).map(|l| l.to_str().unwrap().to_owned());
    (r.status().as_u16(), location.unwrap_or_default(), r.text().await.unwrap())
}

async fn an_agents_settings_are_forms_in_tabs_saved_through_the_api(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, agent) = app
        .post(
            "/v1/convai/agents/create",
            &app.admin_key,
            &json!({"name": "Forms", "conversation_config": {"agent": {"prompt": {"llm": "gpt-4o-mini"}}}}),
        )
        .await;
    let id = agent["agent_id"].as_str().unwrap();
    let (_, tool) = app
        .post(
            "/v1/convai/tools",
            &app.admin_key,
            &crate::tools::webhook("check_order", "https://x.example"),
        )
        .await;
    let tool_id = tool["id"].as_str().unwrap();
    let (_, doc) = app
        .post(
            "/v1/convai/knowledge-base/text",
            &app.admin_key,
            &json!({"text": "Refunds take five days.", "name": "Refund policy"}),
        )
        .await;
    let doc_id = doc["id"].as_str().unwrap();
    let cookie = sign_in(&app, &app.admin_key).await;
    let path = format!("/agents/{id}");
    let (s, first) = page(&app, &cookie, &path).await;
    assert_eq!(s, 200, "{first}");
    for tab in ["agent", "tools", "knowledge-base", "voice", "analysis", "advanced"] {
        assert!(first.contains(&format!("href=\"/agents/{id}?tab={tab}\"")), "tab {tab}: {first}");
    }
    assert!(first.contains("<option value=\"gpt-4o-mini\" selected>"), "the model: {first}");
    let csrf = hidden(&first, "_csrf");

    // The agent tab: typed values land in the document, typed as the schema wants.
    let body = encoded(&[
        ("_csrf", &csrf),
        ("name", "Forms & more"),
        ("conversation_config.agent.first_message", "Bonjour !"),
        ("conversation_config.agent.prompt.prompt", "You help with orders."),
        ("conversation_config.agent.language", "fr"),
        ("conversation_config.agent.prompt.llm", "gpt-4o-mini"),
        ("conversation_config.agent.prompt.temperature", "0.3"),
        ("conversation_config.agent.prompt.max_tokens", "120"),
    ]);
    let (s, to, _) = post_page(&app, &cookie, &format!("{path}/settings/agent"), &body).await;
    assert_eq!((s, to.as_str()), (303, format!("{path}?tab=agent&saved=1").as_str()));
    let (_, saved) = app.get(&format!("/v1/convai/agents/{id}"), &app.admin_key).await;
    let a = &saved["conversation_config"]["agent"];
    assert_eq!(saved["name"], "Forms & more");
    assert_eq!(
        (a["first_message"].as_str(), a["language"].as_str()),
        (Some("Bonjour !"), Some("fr"))
    );
    assert_eq!(a["prompt"]["prompt"], "You help with orders.");
    assert_eq!(
        (a["prompt"]["temperature"].as_f64(), a["prompt"]["max_tokens"].as_i64()),
        (Some(0.3), Some(120))
    );
    let (_, shown) = page(&app, &cookie, &format!("{path}?tab=agent&saved=1")).await;
    assert!(
        shown.contains("Saved.") && shown.contains("<option value=\"fr\" selected>"),
        "{shown}"
    );

    // A refused value is shown at its field, as typed, and nothing changes.
    let body = encoded(&[
        ("_csrf", &csrf),
        ("conversation_config.tts.speed", "3"),
        ("conversation_config.tts.voice_id", "kept-voice"),
    ]);
    let (s, _, refused) = post_page(&app, &cookie, &format!("{path}/settings/voice"), &body).await;
    assert_eq!(s, 422, "{refused}");
    assert!(refused.contains("id=\"f-conversation-config-tts-speed-error\""), "{refused}");
    assert!(refused.contains("aria-invalid=\"true\""), "{refused}");
    assert!(
        refused.contains("value=\"kept-voice\"") && refused.contains("value=\"3\""),
        "what was typed stays: {refused}"
    );
    let (_, unchanged) = app.get(&format!("/v1/convai/agents/{id}"), &app.admin_key).await;
    assert_eq!(unchanged["conversation_config"]["tts"], saved["conversation_config"]["tts"]);

    // Tools by name, system tools on and off; documents with their use; criteria.
    let (_, tools_tab) = page(&app, &cookie, &format!("{path}?tab=tools")).await;
    assert!(tools_tab.contains("check_order") && tools_tab.contains("end_call"), "{tools_tab}");
    let body = encoded(&[
        ("_csrf", &csrf),
        ("tool_ids", tool_id),
        ("built_in_tools", "end_call"),
        ("built_in_tools", "skip_turn"),
    ]);
    assert_eq!(post_page(&app, &cookie, &format!("{path}/settings/tools"), &body).await.0, 303);
    let body = encoded(&[
        ("_csrf", &csrf),
        ("knowledge_base", doc_id),
        (&format!("usage_mode.{doc_id}"), "prompt"),
        ("rag_enabled", "true"),
    ]);
    let to_kb = format!("{path}/settings/knowledge-base");
    assert_eq!(post_page(&app, &cookie, &to_kb, &body).await.0, 303);
    let body = encoded(&[
        ("_csrf", &csrf),
        ("criterion_id", ""),
        ("criterion_name", "Order found"),
        ("criterion_goal", "The agent found the user's order"),
        ("data_id", "order_number"),
        ("data_type", "string"),
        ("data_description", "The order's number"),
    ]);
    assert_eq!(post_page(&app, &cookie, &format!("{path}/settings/analysis"), &body).await.0, 303);
    let (_, saved) = app.get(&format!("/v1/convai/agents/{id}"), &app.admin_key).await;
    let prompt = &saved["conversation_config"]["agent"]["prompt"];
    assert_eq!(prompt["tool_ids"], json!([tool_id]));
    assert_eq!(prompt["built_in_tools"]["end_call"]["params"]["system_tool_type"], "end_call");
    assert!(prompt["built_in_tools"]["skip_turn"].is_object());
    assert!(prompt["built_in_tools"]["language_detection"].is_null());
    assert_eq!(
        prompt["knowledge_base"],
        json!([{"type": "text", "name": "Refund policy", "id": doc_id, "usage_mode": "prompt"}])
    );
    assert_eq!(prompt["rag"]["enabled"], true);
    let criteria = &saved["platform_settings"]["evaluation"]["criteria"];
    assert_eq!(
        (criteria[0]["id"].as_str(), criteria[0]["name"].as_str()),
        (Some("order_found"), Some("Order found"))
    );
    assert_eq!(saved["platform_settings"]["data_collection"]["order_number"]["type"], "string");
    let (_, tools_tab) = page(&app, &cookie, &format!("{path}?tab=tools")).await;
    assert!(
        tools_tab.contains(&format!("name=\"tool_ids\" value=\"{tool_id}\" checked")),
        "{tools_tab}"
    );

    // Forms need the session's token.
    let forged = encoded(&[("_csrf", "forged"), ("name", "taken over")]);
    assert_eq!(post_page(&app, &cookie, &format!("{path}/settings/agent"), &forged).await.0, 403);
    let (_, after) = app.get(&format!("/v1/convai/agents/{id}"), &app.admin_key).await;
    assert_eq!(after["name"], "Forms & more");
    app.stop().await;
}
dual_db!(an_agents_settings_are_forms_in_tabs_saved_through_the_api);

async fn tools_are_built_edited_and_tried_in_the_browser(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.webhook_allow = "127.0.0.1".into()).await;
    let token = "tok-7f3a9c";
    let hook = crate::fakes::Webhook::start(
        200,
        &format!(r#"{{"status":"shipped","seen":"{token}"}}"#),
        Duration::ZERO,
    )
    .await;
    let (_, secret) = app
        .post(
            "/v1/convai/secrets",
            &app.admin_key,
            &json!({"type": "new", "name": "shop token", "value": token}),
        )
        .await;
    let secret_id = secret["secret_id"].as_str().unwrap();
    let cookie = sign_in(&app, &app.admin_key).await;
    let (s, form) = page(&app, &cookie, "/tools/new?type=webhook").await;
    assert_eq!(s, 200, "{form}");
    assert!(form.contains(&format!("<option value=\"{secret_id}\">shop token</option>")), "{form}");
    let csrf = hidden(&form, "_csrf");
    let url = format!("{}/orders/{{order_id}}", hook.base);
    let fields = |name: &str| {
        encoded(&[
            ("_csrf", &csrf),
            ("type", "webhook"),
            ("name", name),
            ("description", "Finds an order"),
            ("method", "POST"),
            ("url", &url),
            ("content_type", "application/json"),
            ("response_timeout_secs", "10"),
            ("header_name", "Authorization"),
            ("header_value", ""),
            ("header_secret", secret_id),
            ("param_in", "path"),
            ("param_name", "order_id"),
            ("param_type", "string"),
            ("param_description", "The order"),
            ("param_required", "yes"),
            ("param_in", "body"),
            ("param_name", "note"),
            ("param_type", "string"),
            ("param_description", "A note"),
            ("param_required", "no"),
        ])
    };
    // A refused name is shown at its field, and nothing is made.
    let (s, _, refused) = post_page(&app, &cookie, "/tools/new", &fields("bad name!")).await;
    assert_eq!(s, 422, "{refused}");
    assert!(refused.contains("id=\"t-name-error\"") && refused.contains("bad name!"), "{refused}");
    let (_, none) = app.get("/v1/convai/tools", &app.admin_key).await;
    assert_eq!(none["tools"].as_array().unwrap().len(), 0);

    let (s, to, _) = post_page(&app, &cookie, "/tools/new", &fields("get_order")).await;
    assert_eq!(s, 303);
    let id = to.strip_prefix("/tools/").expect("to the tool's page").to_owned();
    let (_, tool) = app.get(&format!("/v1/convai/tools/{id}"), &app.admin_key).await;
    let api = &tool["tool_config"]["api_schema"];
    assert_eq!(api["request_headers"]["Authorization"], json!({"secret_id": secret_id}));
    assert_eq!(api["path_params_schema"]["order_id"]["type"], "string");
    assert_eq!(api["request_body_schema"]["properties"]["note"]["description"], "A note");

    // Tried with sample arguments: the call goes out with the secret, which is shown nowhere.
    let (_, tool_page) = page(&app, &cookie, &to).await;
    assert!(
        tool_page.contains("Test this tool")
            && tool_page.contains("&quot;order_id&quot;: &quot;example&quot;"),
        "{tool_page}"
    );
    let args = r#"{"order_id": "A-17", "note": "gift"}"#;
    let (s, _, tried) = post_page(
        &app,
        &cookie,
        &format!("{to}/test"),
        &encoded(&[("_csrf", &csrf), ("arguments", args)]),
    )
    .await;
    assert_eq!(s, 200, "{tried}");
    assert!(tried.contains("shipped") && tried.contains("recorded in the log"), "{tried}");
    assert!(!tried.contains(token), "the secret is not shown: {tried}");
    let received = hook.received();
    assert_eq!(received.len(), 1);
    assert_eq!((received[0].method.as_str(), received[0].uri.as_str()), ("POST", "/orders/A-17"));
    assert_eq!(received[0].headers["authorization"], token);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&received[0].body).unwrap(),
        json!({"note": "gift"})
    );
    let (_, log) = app.get(&format!("/v1/convai/tools/{id}/executions"), &app.admin_key).await;
    let execution = &log["executions"][0];
    assert_eq!(
        (execution["agent_id"].as_str(), execution["is_error"].as_bool()),
        (Some(""), Some(false))
    );
    assert!(!execution["response_payload"].as_str().unwrap().contains(token));
    let (_, tool_page) = page(&app, &cookie, &to).await;
    assert!(tool_page.contains("test call"), "the log says it was a test: {tool_page}");
    let bad = encoded(&[("_csrf", &csrf), ("arguments", "[1]")]);
    assert_eq!(post_page(&app, &cookie, &format!("{to}/test"), &bad).await.0, 422);
    assert_eq!(hook.received().len(), 1, "nothing was called");

    // Edited in the same form: what it changes, and the secret header kept.
    let (s, edit) = page(&app, &cookie, &format!("{to}/edit")).await;
    assert_eq!(s, 200, "{edit}");
    assert!(
        edit.contains("value=\"order_id\"")
            && edit.contains(&format!("<option value=\"{secret_id}\" selected>")),
        "{edit}"
    );
    let changed = fields("get_order").replace("Finds%20an%20order", "Finds%20one%20order");
    assert_eq!(post_page(&app, &cookie, &format!("{to}/edit"), &changed).await.0, 303);
    let (_, tool) = app.get(&format!("/v1/convai/tools/{id}"), &app.admin_key).await;
    assert_eq!(tool["tool_config"]["description"], "Finds one order");
    assert_eq!(
        tool["tool_config"]["api_schema"]["request_headers"]["Authorization"],
        json!({"secret_id": secret_id})
    );

    // Only webhooks are called by hand; arguments must be an object.
    let client = json!({"tool_config": {"type": "client", "name": "show_map", "description": "Shows a map"}});
    let (_, client) = app.post("/v1/convai/tools", &app.admin_key, &client).await;
    let uri = format!("/api/tools/{}/test", client["id"].as_str().unwrap());
    let (s, refused) = app.post(&uri, &app.admin_key, &json!({"arguments": {}})).await;
    assert_eq!(
        (s, refused["detail"]["status"].as_str()),
        (400, Some("tool_not_callable")),
        "{refused}"
    );
    let (s, refused) = app
        .post(&format!("/api/tools/{id}/test"), &app.admin_key, &json!({"arguments": "x"}))
        .await;
    assert_eq!(s, 422, "{refused}");
    let other = app.key("elsewhere", "eve@example.com", "admin").await;
    assert_eq!(app.post(&format!("/api/tools/{id}/test"), &other, &json!({})).await.0, 404);
    assert_eq!(hook.received().len(), 1);
    app.stop().await;
}
dual_db!(tools_are_built_edited_and_tried_in_the_browser);

async fn tests_are_made_from_a_conversations_turns_in_the_browser(backend: Backend) {
    use crate::fakes::{FakeLlm, call, is_analysis, text, with_llm};
    let llm = FakeLlm::openai(|req: &serde_json::Value| {
        let last = req["messages"].as_array().and_then(|m| m.last()).cloned().unwrap_or_default();
        if is_analysis(req) {
            call(
                "record_analysis",
                json!({"transcript_summary": "Weather.", "call_summary_title": "Weather",
                "evaluation_criteria_results": {}, "data_collection_results": {}}),
            )
        } else if last["role"] == "tool" {
            text("Sunny in Lyon.")
        } else {
            call("get_weather", json!({"city": "Lyon", "days": 2}))
        }
    })
    .await;
    let hook = crate::fakes::Webhook::start(200, r#"{"forecast":"sunny"}"#, Duration::ZERO).await;
    let app = TestApp::spawn_with(backend, |c| {
        with_llm(&llm)(c);
        c.webhook_allow = "127.0.0.1".into();
    })
    .await;
    let key = app.admin_key.clone();
    let tool =
        crate::tools::create_tool(&app, &key, crate::tools::webhook("get_weather", &hook.base))
            .await;
    let (_, agent) = app
        .post(
            "/v1/convai/agents/create",
            &key,
            &json!({"name": "Weather", "conversation_config": {"agent": {
        "first_message": "", "prompt": {"prompt": "p", "llm": "gpt-4o", "tool_ids": [tool]}}}}),
        )
        .await;
    let agent = agent["agent_id"].as_str().unwrap().to_owned();
    let (mut socket, id) = crate::ws::open(
        &crate::ws::url(&app.base, &format!("agent_id={agent}")),
        colloquy_core::protocol::InitiationData::default(),
    )
    .await;
    crate::ws::turn(&mut socket, "weather in Lyon?").await;
    drop(socket);
    crate::helpers::ended_conversation(&app, &id).await;
    let (_, conversation) = app.get(&format!("/v1/convai/conversations/{id}"), &key).await;
    let transcript = conversation["transcript"].as_array().unwrap();
    let called = transcript
        .iter()
        .position(|e| e["tool_calls"].as_array().is_some_and(|c| !c.is_empty()))
        .unwrap();
    let replied = transcript.iter().rposition(|e| e["message"] == "Sunny in Lyon.").unwrap();
    // Each entry's time to the millisecond: the reply comes after its tool call ended.
    let (s, timing) = app.get(&format!("/api/conversations/{id}/timing"), &key).await;
    assert_eq!(s, 200, "{timing}");
    let at: Vec<i64> = timing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["at_ms"].as_i64().unwrap())
        .collect();
    assert_eq!(at.len(), transcript.len());
    assert!(at.windows(2).all(|w| w[0] <= w[1]), "in order: {at:?}");
    let (_, calls) = app.get(&format!("/api/tool-calls?executionId={id}"), &key).await;
    let call_start =
        colloquy_core::time::parse_utc_ms(calls[0]["createdAt"].as_str().unwrap()).unwrap();
    let started = timing["started_at_unix_ms"].as_i64().unwrap();
    assert!(started <= call_start && call_start - started <= at[replied], "{timing} {calls}");
    assert!(conversation.get("timing").is_none(), "not in the reference's document");
    let timed = &timing["tool_calls"][0];
    assert_eq!(
        (timed["tool_name"].as_str(), timed["started_at_unix_ms"].as_i64()),
        (Some("get_weather"), Some(call_start))
    );
    assert!(timed["latency_secs"].as_f64().unwrap() > 0.0, "{timed}");
    let other = app.key("elsewhere", "eve@example.com", "admin").await;
    assert_eq!(app.get(&format!("/api/conversations/{id}/timing"), &other).await.0, 404);

    let cookie = sign_in(&app, &key).await;
    let (_, shown) = page(&app, &cookie, &format!("/conversations/{id}")).await;
    let link = format!("/tests/new?conversation_id={id}&amp;turn={called}");
    assert!(shown.contains(&link), "each agent turn offers a test: {shown}");
    assert!(shown.contains("<dd>under 1 s</dd>"), "a short conversation is not \"0 s\": {shown}");
    assert!(shown.contains(" ms</div>"), "turns are placed to the millisecond: {shown}");
    let (s, form) =
        page(&app, &cookie, &format!("/tests/new?conversation_id={id}&turn={called}")).await;
    assert_eq!(s, 200, "{form}");
    assert!(
        form.contains(&format!("value=\"webhook:{tool}\" selected")),
        "the tool it called: {form}"
    );
    assert!(
        form.contains("value=\"city\"")
            && form.contains("value=\"Lyon\"")
            && form.contains("value=\"2\""),
        "{form}"
    );
    assert!(form.contains("weather in Lyon?"), "the history before the turn: {form}");
    let csrf = hidden(&form, "_csrf");
    let called_turn = called.to_string();
    let tool_test = encoded(&[
        ("_csrf", &csrf),
        ("conversation_id", &id),
        ("turn", &called_turn),
        ("name", "Calls the weather"),
        ("agent_id", &agent),
        ("type", "tool"),
        ("tool_id", &format!("webhook:{tool}")),
        ("param_path", "city"),
        ("param_value", "Lyon"),
        ("param_path", ""),
        ("param_value", ""),
    ]);
    let (s, to, _) = post_page(&app, &cookie, "/tests/new", &tool_test).await;
    assert_eq!((s, to), (303, format!("/tests?agent_id={agent}")));
    let replied_turn = replied.to_string();
    let reply_test = |name: &'static str| {
        encoded(&[
            ("_csrf", &csrf),
            ("conversation_id", &id),
            ("turn", &replied_turn),
            ("name", name),
            ("agent_id", &agent),
            ("type", "llm"),
            ("success_condition", "Says the weather is sunny"),
            ("success_example", "Sunny in Lyon."),
            ("failure_example", ""),
        ])
    };
    let (s, _, refused) = post_page(&app, &cookie, "/tests/new", &reply_test("")).await;
    assert_eq!(s, 422, "a test needs a name: {refused}");
    assert!(refused.contains("id=\"test-name-error\""), "{refused}");
    assert_eq!(post_page(&app, &cookie, "/tests/new", &reply_test("Says sunny")).await.0, 303);
    let chosen = encoded(&[("tool_id", &format!("webhook:{tool}"))]);
    let missing = tool_test.replace(&chosen, &encoded(&[("tool_id", "webhook:tool_missing")]));
    assert_ne!(missing, tool_test);
    let (s, _, refused) = post_page(&app, &cookie, "/tests/new", &missing).await;
    assert_eq!(s, 422, "an unknown tool is refused by the API: {refused}");
    assert!(refused.contains("id=\"test-tool-error\""), "at the tool's field: {refused}");

    let (_, list) = app.get("/v1/convai/agent-testing", &key).await;
    let tests = list["tests"].as_array().unwrap();
    assert_eq!(tests.len(), 2, "{list}");
    let by_name = |name: &str| {
        tests.iter().find(|t| t["name"] == name).unwrap()["id"].as_str().unwrap().to_owned()
    };
    let (_, made) =
        app.get(&format!("/v1/convai/agent-testing/{}", by_name("Calls the weather")), &key).await;
    assert_eq!(made["type"], "tool");
    let expected = &made["tool_call_parameters"];
    assert_eq!(expected["referenced_tool"], json!({"id": tool, "type": "webhook"}));
    assert_eq!(
        expected["parameters"][0],
        json!({"path": "city", "eval": {"type": "exact", "expected_value": "Lyon"}})
    );
    assert_eq!(
        made["chat_history"].as_array().unwrap().last().unwrap()["message"],
        "weather in Lyon?"
    );
    assert_eq!(made["from_conversation_metadata"]["conversation_id"], id.as_str());
    let (_, reply) =
        app.get(&format!("/v1/convai/agent-testing/{}", by_name("Says sunny")), &key).await;
    assert_eq!(
        reply["success_examples"],
        json!([{"response": "Sunny in Lyon.", "type": "success"}])
    );
    assert_eq!(
        reply["chat_history"].as_array().unwrap().len(),
        replied,
        "everything before the reply"
    );

    // A test from scratch: the history typed as lines.
    let scratch = encoded(&[
        ("_csrf", &csrf),
        ("name", "Greets"),
        ("agent_id", ""),
        ("history", "user: hello\nagent: Hi!\nuser: who are you?"),
        ("type", "llm"),
        ("success_condition", "Introduces itself"),
        ("success_example", "I am the weather agent."),
    ]);
    assert_eq!(post_page(&app, &cookie, "/tests/new", &scratch).await.0, 303);
    let (_, list) = app.get("/v1/convai/agent-testing?search=Greets", &key).await;
    let id = list["tests"][0]["id"].as_str().unwrap();
    let (_, greets) = app.get(&format!("/v1/convai/agent-testing/{id}"), &key).await;
    assert_eq!(greets["chat_history"].as_array().unwrap().len(), 3);
    assert_eq!(greets["chat_history"][2]["message"], "who are you?");
    app.stop().await;
}
dual_db!(tests_are_made_from_a_conversations_turns_in_the_browser);

async fn mcp_servers_are_added_in_the_browser(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, secret) = app
        .post(
            "/v1/convai/secrets",
            &app.admin_key,
            &json!({"type": "new", "name": "mcp token", "value": "tok-mcp"}),
        )
        .await;
    let secret_id = secret["secret_id"].as_str().unwrap();
    let cookie = sign_in(&app, &app.admin_key).await;
    let (s, listed) = page(&app, &cookie, "/mcp-servers").await;
    assert_eq!(s, 200, "{listed}");
    assert!(listed.contains("Add a server") && listed.contains("mcp token"), "{listed}");
    let csrf = hidden(&listed, "_csrf");
    let form = |url: &str| {
        encoded(&[
            ("_csrf", &csrf),
            ("name", "docs"),
            ("description", "The docs server"),
            ("url", url),
            ("transport", "STREAMABLE_HTTP"),
            ("approval_policy", "auto_approve_all"),
            ("secret_token", secret_id),
        ])
    };
    let (s, _, refused) = post_page(&app, &cookie, "/mcp-servers", &form("not a url")).await;
    assert_eq!(s, 422, "{refused}");
    assert!(
        refused.contains("value=\"not a url\"") && refused.contains("field-error"),
        "{refused}"
    );
    assert_eq!(app.get("/v1/convai/mcp-servers", &app.admin_key).await.1["mcp_servers"], json!([]));
    let (s, to, _) =
        post_page(&app, &cookie, "/mcp-servers", &form("https://mcp.example/mcp")).await;
    assert_eq!(s, 303);
    let id = to.strip_prefix("/mcp-servers/").expect("to the server's page");
    let (_, server) = app.get(&format!("/v1/convai/mcp-servers/{id}"), &app.admin_key).await;
    let config = &server["config"];
    assert_eq!(
        (config["name"].as_str(), config["transport"].as_str()),
        (Some("docs"), Some("STREAMABLE_HTTP"))
    );
    assert_eq!(config["approval_policy"], "auto_approve_all");
    assert_eq!(config["secret_token"]["secret_id"], secret_id);
    app.stop().await;
}
dual_db!(mcp_servers_are_added_in_the_browser);
