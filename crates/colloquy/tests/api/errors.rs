//! Error shapes: every kind of bad input gets a 4xx in the reference's shape, and nothing a
//! client sends produces a 5xx.

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, dual_db, status_json};

fn assert_violation(body: &Value, loc: Value, kind: &str) {
    let first = &body["detail"][0];
    assert_eq!(first["loc"], loc, "{body}");
    assert_eq!(first["type"], kind, "{body}");
    assert!(first["msg"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

async fn bad_bodies_and_queries_are_422_with_a_location(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.admin_key;
    let post_raw = |body: &'static str, content_type: &'static str| {
        app.client
            .post(app.url("/v1/convai/secrets"))
            .header("xi-api-key", key)
            .header("content-type", content_type)
            .body(body)
            .send()
    };

    let (s, b) =
        status_json(post_raw("{\"type\": \"new\",", "application/json").await.unwrap()).await;
    assert_eq!(s, 422);
    assert_violation(&b, json!(["body", 15]), "json_invalid");

    let (s, b) = status_json(post_raw("{} trailing", "application/json").await.unwrap()).await;
    assert_eq!(s, 422);
    assert_eq!(b["detail"][0]["type"], "json_invalid");

    let (s, b) = status_json(
        post_raw(r#"{"type":"new","name":"a","value":"b"}"#, "text/plain").await.unwrap(),
    )
    .await;
    assert_eq!(s, 422);
    assert_violation(&b, json!(["body"]), "model_attributes_type");

    let (s, b) = status_json(post_raw("", "application/json").await.unwrap()).await;
    assert_eq!(s, 422);
    assert_violation(&b, json!(["body"]), "missing");

    let (s, b) = app.post("/v1/convai/secrets", key, &json!({"type": "new", "name": "a"})).await;
    assert_eq!(s, 422);
    assert_violation(&b, json!(["body", "value"]), "missing");

    let (s, b) = app
        .post("/v1/convai/secrets", key, &json!({"type": "old", "name": "a", "value": "b"}))
        .await;
    assert_eq!(s, 422);
    assert_violation(&b, json!(["body", "type"]), "enum");

    let (s, b) = app
        .post("/v1/convai/secrets", key, &json!({"type": "new", "name": ["a"], "value": "b"}))
        .await;
    assert_eq!(s, 422);
    assert_violation(&b, json!(["body", "name"]), "string_type");

    let (s, b) = app.post("/v1/convai/secrets", key, &json!([1, 2])).await;
    assert_eq!(s, 422);
    assert_eq!(b["detail"][0]["loc"][0], "body");

    let (s, b) = app.get("/v1/convai/secrets?page_size=ten", key).await;
    assert_eq!(s, 422);
    assert_violation(&b, json!(["query", "page_size"]), "int_parsing");

    let (s, b) = app.get("/v1/convai/secrets?page_size=101", key).await;
    assert_eq!(s, 422);
    assert_violation(&b, json!(["query", "page_size"]), "less_than_equal");

    let (s, b) = app.get("/v1/convai/secrets?page_size=5&cursor=garbage", key).await;
    assert_eq!(s, 422);
    assert_violation(&b, json!(["query", "cursor"]), "value_error");

    // Nothing was created by any of the refused requests.
    let (_, list) = app.get("/v1/convai/secrets", key).await;
    assert_eq!(list["secrets"], json!([]));
}
dual_db!(bad_bodies_and_queries_are_422_with_a_location);

async fn oversized_unknown_and_wrong_method(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.max_body_bytes = 1024).await;
    let big = json!({"type": "new", "name": "big", "value": "x".repeat(4096)});
    let (s, b) = app.post("/v1/convai/secrets", &app.admin_key, &big).await;
    assert_eq!(s, 413);
    assert_eq!(b["detail"]["status"], "payload_too_large");

    let (s, b) = app.get("/v1/convai/no-such-thing", &app.admin_key).await;
    assert_eq!(s, 404);
    assert_eq!(b["detail"]["status"], "not_found");

    let (s, b) =
        app.send(reqwest::Method::PUT, "/v1/convai/secrets", &app.admin_key, &json!({})).await;
    assert_eq!(s, 405);
    assert_eq!(b["detail"]["status"], "method_not_allowed");
}
dual_db!(oversized_unknown_and_wrong_method);

/// Random methods, paths, queries and bodies (a fixed seed, a bounded count): never a 5xx,
/// and the server still answers afterwards.
#[tokio::test]
async fn random_input_never_gets_a_5xx() {
    let app = TestApp::spawn(crate::helpers::Backend::Sqlite).await;
    let mut runner = TestRunner::deterministic();
    let paths = proptest::sample::select(vec![
        "/v1/convai/secrets",
        "/v1/convai/secrets/secret_x",
        "/v1/convai/secrets/secret_x/dependencies/tools",
        "/v1/convai/secrets/x/dependencies/bogus",
        "/openapi.json",
        "/v1/convai/%ff%fe",
    ]);
    let methods = proptest::sample::select(vec!["GET", "POST", "PATCH", "DELETE", "PUT"]);
    let query = "[a-z_=&%0-9-]{0,40}";
    let body = proptest::prop_oneof![
        "\\PC{0,200}",
        proptest::arbitrary::any::<Vec<u8>>()
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        proptest::strategy::Just(r#"{"type":"new","name":"n","value":"v"}"#.to_owned()),
        proptest::strategy::Just(r#"{"type":"update","name":"","value":null}"#.to_owned()),
    ];
    let strategy = (methods, paths, query, body);
    for _ in 0..300 {
        let (method, path, query, body) = strategy.new_tree(&mut runner).unwrap().current();
        let r = app
            .client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                app.url(&format!("{path}?{query}")),
            )
            .header("xi-api-key", &app.admin_key)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert!(r.status().as_u16() < 500, "{method} {path}?{query} {body:?} -> {}", r.status());
    }
    assert_eq!(app.client.get(app.url("/healthz")).send().await.unwrap().status(), 200);
}
