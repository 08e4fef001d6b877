//! Authentication and authorization: keys, revocation, scopes, workspace isolation.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{Backend, TestApp, dual_db, poll, status_json};

async fn keys_are_checked_on_every_request(backend: Backend) {
    let app = TestApp::spawn(backend).await;

    let (status, body) =
        status_json(app.client.get(app.url("/v1/convai/secrets")).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(body["detail"]["status"], "needs_authorization");

    let (status, body) = app.get("/v1/convai/secrets", "sk_not_a_key").await;
    assert_eq!(status, 401);
    assert_eq!(body["detail"]["status"], "invalid_api_key");

    // Bearer works as well as xi-api-key.
    let r = app
        .client
        .get(app.url("/v1/convai/secrets"))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A key revoked by another process (the CLI, perhaps against another node) stops working
    // within a second, though the server read it as valid just before.
    let key = app.key("default", "rev@example.com", "secrets:read").await;
    assert_eq!(app.get("/v1/convai/secrets", &key).await.0, 200);
    let store = app.db.store().await;
    use colloquy_store::KeyStore;
    let listed = store.list_keys(Some("default"), None, 100).await.unwrap();
    let id = listed.iter().find(|k| k.user_email == "rev@example.com").unwrap().id.clone();
    store.revoke_key(&id).await.unwrap();
    let refused = poll(Duration::from_secs(1), Duration::from_millis(50), async || {
        let (status, body) = app.get("/v1/convai/secrets", &key).await;
        (status == 401).then_some(body)
    })
    .await
    .expect("the revoked key still works a second later");
    assert_eq!(refused["detail"]["status"], "invalid_api_key");
    assert_eq!(app.get("/v1/convai/secrets", &key).await.0, 401);
}
dual_db!(keys_are_checked_on_every_request);

async fn scopes_are_enforced_per_route(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let reader = app.key("default", "reader@example.com", "secrets:read").await;
    let other_family = app.key("default", "agents@example.com", "agents:write").await;
    let writer = app.key("default", "writer@example.com", "secrets:write").await;
    let body = json!({"type": "new", "name": "n", "value": "v"});

    let (status, err) = app.post("/v1/convai/secrets", &reader, &body).await;
    assert_eq!(status, 403);
    assert_eq!(err["detail"]["status"], "missing_permissions");
    assert!(err["detail"]["message"].as_str().unwrap().contains("secrets:write"));
    assert_eq!(app.get("/v1/convai/secrets", &other_family).await.0, 403);

    // Nothing was created by the refused call.
    let (_, list) = app.get("/v1/convai/secrets", &reader).await;
    assert_eq!(list["secrets"].as_array().unwrap().len(), 0);

    assert_eq!(app.post("/v1/convai/secrets", &writer, &body).await.0, 200);
    assert_eq!(app.get("/v1/convai/secrets", &writer).await.0, 200, "write implies read");
}
dual_db!(scopes_are_enforced_per_route);

async fn another_workspace_sees_nothing_and_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ours = app.key("acme", "a@acme.test", "admin").await;
    let theirs = app.key("globex", "g@globex.test", "admin").await;
    let (_, created) = app
        .post("/v1/convai/secrets", &ours, &json!({"type": "new", "name": "db", "value": "pw"}))
        .await;
    let id = created["secret_id"].as_str().unwrap();
    let path = format!("/v1/convai/secrets/{id}");

    let (status, body) = app.get(&path, &theirs).await;
    assert_eq!(status, 404);
    assert_eq!(body["detail"]["status"], "secret_not_found");
    let upd = json!({"type": "update", "name": "stolen", "value": "x"});
    assert_eq!(app.send(reqwest::Method::PATCH, &path, &theirs, &upd).await.0, 404);
    assert_eq!(app.send(reqwest::Method::DELETE, &path, &theirs, &json!({})).await.0, 404);
    assert_eq!(app.get(&format!("{path}/dependencies/tools"), &theirs).await.0, 404);
    let (_, list) = app.get("/v1/convai/secrets", &theirs).await;
    assert_eq!(list["secrets"], json!([]));

    let (status, mine) = app.get(&path, &ours).await;
    assert_eq!(status, 200);
    assert_eq!(mine["name"], "db", "unchanged by the other workspace");
}
dual_db!(another_workspace_sees_nothing_and_changes_nothing);

/// `GET /api/whoami` tells any valid key who it is, whatever its scopes.
async fn whoami_answers_any_valid_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", "ada@acme.test", "tools:read").await;
    let (s, me) = app.get("/api/whoami", &key).await;
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["workspace"]["name"], "acme");
    assert_eq!(me["user"]["email"], "ada@acme.test");
    assert_eq!(me["scopes"], "tools:read");
    assert_eq!(me["role"], "viewer");
    assert!(me["key_id"].as_str().unwrap().starts_with("key_"));
    assert_eq!(app.get("/api/whoami", "sk_not_a_key").await.0, 401);
}
dual_db!(whoami_answers_any_valid_key);
