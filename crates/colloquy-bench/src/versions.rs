//! Agent versions: GET agent at a version and at a branch head, with a hundred versions behind
//! the agent, against a bare handler answering the same bytes; and the merge preview of two
//! branches of another agent whose configurations are about 50 KB each, timed one request
//! after another.

use std::path::Path;

use serde_json::{Value, json};

use crate::load;
use crate::node::{self, Node};
use crate::report::{Goal, Row};
use crate::scenarios::{Sizes, timed_get};

/// Versions the agent has when it is read.
const VERSIONS: usize = 100;

/// A system prompt of about 50 KB, different for each `tag`.
fn prompt(tag: usize) -> String {
    (0..1000).map(|line| format!("Line {line} of the prompt, revision {tag}.\n")).collect()
}

async fn patch(
    node: &Node, client: &reqwest::Client, path: &str, body: &Value,
) -> anyhow::Result<Value> {
    let r = client
        .patch(format!("{}{path}", node.base))
        .header("xi-api-key", &node.key)
        .json(body)
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "PATCH {path}: {}", r.status());
    Ok(r.json().await?)
}

/// An agent with `versions` versions on main (the prompt changed each time), a branch from
/// its head changed once more, and main changed again after it: its id, a version in the
/// middle of main, and the branch.
async fn versioned_agent(
    node: &Node, client: &reqwest::Client, versions: usize, prompt_of: impl Fn(usize) -> String,
) -> anyhow::Result<(String, String, String)> {
    let body = json!({"name": "versioned", "conversation_config": {"agent": {"prompt": {"prompt": prompt_of(0)}}}});
    let created = node.post(client, "/v1/convai/agents/create", &body).await?;
    let id = created["agent_id"].as_str().unwrap_or_default().to_owned();
    let path = format!("/v1/convai/agents/{id}");
    let mut middle = String::new();
    for tag in 1..versions {
        let body =
            json!({"conversation_config": {"agent": {"prompt": {"prompt": prompt_of(tag)}}}});
        let answer = patch(node, client, &path, &body).await?;
        if tag == versions / 2 {
            middle = answer["version_id"].as_str().unwrap_or_default().to_owned();
        }
    }
    let (head, _) = node.get(client, &path).await?;
    let branch = node
        .post(
            client,
            &format!("{path}/branches"),
            &json!({"parent_version_id": head["version_id"], "name": "trial", "description": ""}),
        )
        .await?;
    let branch = branch["created_branch_id"].as_str().unwrap_or_default().to_owned();
    let on_branch = json!({"conversation_config": {"agent": {"first_message": "Hi", "prompt": {"prompt": prompt_of(versions + 1)}}}});
    patch(node, client, &format!("{path}?branch_id={branch}"), &on_branch).await?;
    let on_main = json!({"conversation_config": {"agent": {"language": "de"}}});
    patch(node, client, &path, &on_main).await?;
    Ok((id, middle, branch))
}

pub async fn versions(binary: &Path, sizes: Sizes) -> anyhow::Result<Vec<Row>> {
    let node = Node::start(binary, &[]).await?;
    let client = reqwest::Client::new();
    let short = |tag: usize| format!("You are agent revision {tag}.");
    let (id, middle, branch) = versioned_agent(&node, &client, VERSIONS, short).await?;
    let path = format!("/v1/convai/agents/{id}");
    let mut rows = Vec::new();
    for (name, at) in [
        ("GET agent at a version_id", format!("{path}?version_id={middle}")),
        ("GET agent at a branch head", format!("{path}?branch_id={branch}")),
    ] {
        let (_, bytes) = node.get(&client, &at).await?;
        let bare = node::bare_server(bytes).await?;
        let theirs = load::get(&format!("{bare}{at}"), None, sizes.connections, sizes.window).await;
        let ours = load::get(
            &format!("{}{at}", node.base),
            Some(&node.key),
            sizes.connections,
            sizes.window,
        )
        .await;
        anyhow::ensure!(ours.failures == 0, "{name}: {} failed requests", ours.failures);
        rows.push(Row {
            scenario: format!(
                "{name}, {VERSIONS} versions, {} connections: throughput",
                sizes.connections
            ),
            unit: "req/s".into(),
            ours: ours.throughput,
            baseline: Some(theirs.throughput),
            goal: Goal::RatioAtLeast(0.5),
        });
    }
    let (big, _, big_branch) = versioned_agent(&node, &client, VERSIONS, prompt).await?;
    let (main, _) = node.get(&client, &format!("/v1/convai/agents/{big}")).await?;
    let preview = format!(
        "{}/v1/convai/agents/{big}/branches/{big_branch}/merge-preview?target_branch_id={}",
        node.base,
        main["main_branch_id"].as_str().unwrap_or_default()
    );
    let (p50, p99) =
        timed_get(&client, &preview, ("xi-api-key", &node.key), sizes.samples / 4).await?;
    let label = format!("merge preview of two 50 KB configurations, {VERSIONS} versions");
    rows.push(Row {
        scenario: format!("{label}: p50"),
        unit: "ms".into(),
        ours: p50,
        baseline: None,
        goal: Goal::AtMost(5.0),
    });
    rows.push(Row {
        scenario: format!("{label}: p99"),
        unit: "ms".into(),
        ours: p99,
        baseline: None,
        goal: Goal::None,
    });
    Ok(rows)
}
