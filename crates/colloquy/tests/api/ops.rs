//! Operational endpoints, the OpenAPI document and the scope table.

use serde_json::Value;

use crate::helpers::{Backend, TestApp, dual_db};

async fn healthz_metrics_and_openapi_are_served(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);

    let _ = app.get("/v1/convai/secrets", &app.admin_key).await;
    let _ = app.get("/v1/convai/secrets", "sk_wrong").await;
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(r#"colloquy_http_requests_total{method="GET",route="/v1/convai/secrets",status="200"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"route="/v1/convai/secrets",status="401"} 1"#), "{metrics}");
    assert!(metrics.contains("colloquy_http_request_duration_seconds_bucket"), "{metrics}");

    let doc: Value =
        app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let op = &doc["paths"]["/v1/convai/secrets"]["post"];
    assert_eq!(op["operationId"], "create_secret_route", "reference operation attached");
    assert_eq!(
        op["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/PostWorkspaceSecretRequest"
    );
    assert!(doc["components"]["schemas"]["PostWorkspaceSecretRequest"].is_object());
    assert!(
        doc["components"]["schemas"]["DependentAvailableToolIdentifier"].is_object(),
        "refs closed over"
    );
    assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
}
dual_db!(healthz_metrics_and_openapi_are_served);

/// Every documented operation must declare exactly one valid scope: a route added without one
/// fails here (and is refused at run time).
#[tokio::test]
async fn every_route_is_in_the_scope_table() {
    let app = TestApp::spawn(crate::helpers::Backend::Sqlite).await;
    let doc: Value =
        app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let mut count = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let scopes = op["security"][0]["api_key"].as_array();
            let scope = scopes.and_then(|s| s.first()).and_then(Value::as_str);
            let scope = scope.unwrap_or_else(|| panic!("{method} {path} declares no scope"));
            // `any` is any valid key (routes about the caller itself, like `/api/whoami`).
            if scope != "any" {
                scope
                    .parse::<colloquy_core::scope::Scope>()
                    .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            }
            count += 1;

            // No key: 401 before anything else happens.
            let url = app.url(&path.replace('{', "x").replace('}', ""));
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = app.client.request(method, url).send().await.unwrap();
            assert_eq!(r.status(), 401, "{path} without a key");
        }
    }
    assert!(count >= 6, "expected the documented routes, saw {count}");
}

#[test]
fn version_command_prints_the_version() {
    let out =
        std::process::Command::new(crate::helpers::colloquy_bin()).arg("version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("colloquy {}", env!("CARGO_PKG_VERSION"))
    );
}
