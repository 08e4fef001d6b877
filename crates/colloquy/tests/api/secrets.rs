//! Workspace secrets: CRUD, paging, search, and values that never come back out.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, dual_db};

async fn crud_without_ever_returning_the_value(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.admin_key;
    let planted = "planted-secret-value-7f3a9c";
    let (s, created) = app
        .post(
            "/v1/convai/secrets",
            key,
            &json!({"type": "new", "name": "crm token", "value": planted}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(created["type"], "stored");
    assert_eq!(created["name"], "crm token");
    let id = created["secret_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("secret_"));

    let (s, got) = app.get(&format!("/v1/convai/secrets/{id}"), key).await;
    assert_eq!(s, 200);
    assert_eq!(got["secret_id"], id.as_str());
    assert_eq!(got["used_by"]["tools"], json!([]));
    assert_eq!(got["used_by"]["agents"], json!([]));
    assert_eq!(got["used_by"]["others"], json!([]));

    let (s, updated) = app
        .send(
            reqwest::Method::PATCH,
            &format!("/v1/convai/secrets/{id}"),
            key,
            &json!({"type": "update", "name": "crm", "value": "v2"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(updated["name"], "crm");

    let (s, deps) = app.get(&format!("/v1/convai/secrets/{id}/dependencies/agents"), key).await;
    assert_eq!(s, 200);
    assert_eq!(deps, json!({"dependencies": [], "next_cursor": null}));
    let (s, _) = app.get(&format!("/v1/convai/secrets/{id}/dependencies/widgets"), key).await;
    assert_eq!(s, 422);

    let (_, list) = app.get("/v1/convai/secrets", key).await;
    for body in [&created, &got, &updated, &list] {
        assert!(
            !body.to_string().contains(planted) && !body.to_string().contains("v2\""),
            "{body}"
        );
    }

    let (s, _) = app
        .send(reqwest::Method::DELETE, &format!("/v1/convai/secrets/{id}"), key, &json!({}))
        .await;
    assert_eq!(s, 204);
    assert_eq!(app.get(&format!("/v1/convai/secrets/{id}"), key).await.0, 404);
    assert_eq!(
        app.send(reqwest::Method::DELETE, &format!("/v1/convai/secrets/{id}"), key, &json!({}))
            .await
            .0,
        404
    );
}
dual_db!(crud_without_ever_returning_the_value);

#[tokio::test]
async fn planted_value_is_not_in_the_database_file() {
    let app = TestApp::spawn(crate::helpers::Backend::Sqlite).await;
    let planted = "PLANTED-VALUE-0d9e8f7a6b";
    let (s, _) = app
        .post(
            "/v1/convai/secrets",
            &app.admin_key,
            &json!({"type": "new", "name": "p", "value": planted}),
        )
        .await;
    assert_eq!(s, 200);
    let db = app.stop().await;
    let dir = db.dir.path();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let found = bytes.windows(planted.len()).any(|w| w == planted.as_bytes());
        assert!(!found, "plaintext secret found in {}", path.display());
    }
}

async fn pages_cover_every_secret_once_in_name_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.admin_key;
    let mut names = Vec::new();
    for i in 0..37 {
        // Duplicate names on purpose: ties are broken by id.
        let name = format!("Key-{:02}", i % 30);
        let (s, _) = app
            .post("/v1/convai/secrets", key, &json!({"type": "new", "name": name, "value": "v"}))
            .await;
        assert_eq!(s, 200);
        names.push(name);
    }
    names.sort();

    let mut seen = Vec::new();
    let mut ids = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/v1/convai/secrets?page_size=8".to_owned();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (s, page) = app.get(&path, key).await;
        assert_eq!(s, 200, "{page}");
        for secret in page["secrets"].as_array().unwrap() {
            assert!(ids.insert(secret["secret_id"].as_str().unwrap().to_owned()), "duplicate");
            seen.push(secret["name"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, names);

    // Without page_size, everything at once.
    let (_, all) = app.get("/v1/convai/secrets", key).await;
    assert_eq!(all["secrets"].as_array().unwrap().len(), 37);
    assert_eq!(all["next_cursor"], Value::Null);

    // Search is a case-insensitive prefix; a cursor of another search is refused.
    let (_, found) = app.get("/v1/convai/secrets?search=key-0&page_size=3", key).await;
    let found_names: Vec<&str> =
        found["secrets"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(found_names, vec!["Key-00", "Key-00", "Key-01"]);
    let c = found["next_cursor"].as_str().unwrap();
    let (s, _) =
        app.get(&format!("/v1/convai/secrets?search=key-1&page_size=3&cursor={c}"), key).await;
    assert_eq!(s, 422);
    let (s, next) =
        app.get(&format!("/v1/convai/secrets?search=key-0&page_size=3&cursor={c}"), key).await;
    assert_eq!(s, 200);
    assert_eq!(next["secrets"][0]["name"], "Key-01", "the second Key-01 (ties broken by id)");
    let (_, all_found) = app.get("/v1/convai/secrets?search=KEY-0", key).await;
    assert_eq!(all_found["secrets"].as_array().unwrap().len(), 17);
}
dual_db!(pages_cover_every_secret_once_in_name_order);
