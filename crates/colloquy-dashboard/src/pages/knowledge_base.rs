//! The knowledge base: documents and folders (add text, a web page, a file, a folder, crawl a
//! site), one document with its chunks and the agents that use it, a crawl's pages with why
//! each failed, and a search that shows what an agent would retrieve for a question, with
//! scores and the matching words marked.

use axum::Router;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::Method;
use axum::response::{Html, Redirect};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Dash;
use crate::error::{Error, Result};
use crate::format::{encode, text, unix_time, with_query};
use crate::layout::{self, Section};
use crate::session::{CsrfForm, Viewer};

pub fn routes() -> Router<Dash> {
    Router::new()
        .route("/knowledge-base", get(list))
        .route("/knowledge-base/add", post(add))
        .route("/knowledge-base/upload", post(upload))
        .route("/knowledge-base/search", get(search))
        .route("/knowledge-base/doc/{id}", get(detail))
        .route("/knowledge-base/doc/{id}/delete", get(confirm_delete).post(delete))
        .route("/knowledge-base/crawl/{id}", get(crawl))
}

fn doc_href(id: &Value) -> String {
    format!("/knowledge-base/doc/{}", encode(text(id)))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    folder: Option<String>,
    cursor: Option<String>,
}

async fn list(
    viewer: Viewer, State(dash): State<Dash>, Query(q): Query<ListQuery>,
) -> Result<Html<String>> {
    let folder = q.folder.as_deref().filter(|f| !f.is_empty());
    let page = dash
        .api
        .get(
            &viewer.creds(),
            &with_query(
                "/v1/convai/knowledge-base",
                &[
                    ("page_size", Some("30")),
                    ("folders_first", Some("true")),
                    ("sort_by", Some("name")),
                    ("sort_direction", Some("asc")),
                    ("parent_folder_id", folder),
                    ("cursor", q.cursor.as_deref()),
                ],
            ),
        )
        .await?;
    let next = page["next_cursor"].as_str().map(|cursor| {
        with_query("/knowledge-base", &[("folder", folder), ("cursor", Some(cursor))])
    });
    let docs = page["documents"].as_array().cloned().unwrap_or_default();
    let body = html! {
        @if let Some(folder) = folder {
            p { a href="/knowledge-base" { "All documents" } " · in folder " code { (folder) } }
        }
        form.filters method="get" action="/knowledge-base/search" role="search" {
            label { "Ask what an agent would retrieve" input type="search" name="q" required; }
            button type="submit" { "Search" }
        }
        @if docs.is_empty() { p.muted { "No documents yet." } } @else {
            table {
                thead { tr { th { "Name" } th { "Type" } th.num { "Size" } th { "Used by" } th { "Updated" } } }
                tbody {
                    @for doc in &docs {
                        tr {
                            td {
                                @if doc["type"] == "folder" {
                                    a href=(with_query("/knowledge-base", &[("folder", doc["id"].as_str())])) { (text(&doc["name"])) "/" }
                                } @else {
                                    a href=(doc_href(&doc["id"])) { (text(&doc["name"])) }
                                }
                            }
                            td { (text(&doc["type"])) }
                            td.num { (doc["metadata"]["size_bytes"]) }
                            td { (doc["dependent_agents"].as_array().map_or(0, Vec::len)) " agents" }
                            td { (unix_time(&doc["metadata"]["last_updated_at_unix_secs"])) }
                        }
                    }
                }
            }
        }
        (layout::next_page(next))
        (add_forms(&viewer, folder))
    };
    Ok(Html(layout::page(&viewer, Section::KnowledgeBase, "Knowledge base", body).into_string()))
}

/// The forms that add to the knowledge base (into `folder` when one is open).
fn add_forms(viewer: &Viewer, folder: Option<&str>) -> Markup {
    let parent = html! { input type="hidden" name="parent_folder_id" value=[folder]; };
    html! {
        h2 { "Add to the knowledge base" }
        div.grid {
            form.stack method="post" action="/knowledge-base/add" aria-label="Add text" {
                (layout::csrf(viewer)) (parent) input type="hidden" name="kind" value="text";
                label { "Name" input name="name"; }
                label { "Text" textarea name="text" required {} }
                button type="submit" { "Add text" }
            }
            form.stack method="post" action="/knowledge-base/add" aria-label="Add a web page" {
                (layout::csrf(viewer)) (parent) input type="hidden" name="kind" value="url";
                label { "Page address" input type="url" name="url" required; }
                button type="submit" { "Add the page" }
            }
            form.stack method="post" action="/knowledge-base/add" aria-label="Crawl a site" {
                (layout::csrf(viewer)) (parent) input type="hidden" name="kind" value="crawl";
                label { "Site address" input type="url" name="url" required; }
                label { "Link depth" input type="number" name="max_depth" min="1" max="5" value="2"; }
                button type="submit" { "Crawl the site" }
            }
            form.stack method="post" action="/knowledge-base/upload" enctype="multipart/form-data" aria-label="Upload a file" {
                (layout::csrf(viewer)) (parent)
                label { "File (PDF, DOCX, HTML, Markdown, text)" input type="file" name="file" required; }
                button type="submit" { "Upload" }
            }
            form.stack method="post" action="/knowledge-base/add" aria-label="New folder" {
                (layout::csrf(viewer)) (parent) input type="hidden" name="kind" value="folder";
                label { "Folder name" input name="name" required; }
                button type="submit" { "Create the folder" }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct AddForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    kind: String,
    name: Option<String>,
    text: Option<String>,
    url: Option<String>,
    max_depth: Option<i64>,
    parent_folder_id: Option<String>,
}

async fn add(
    viewer: Viewer, State(dash): State<Dash>, axum::Form(form): axum::Form<AddForm>,
) -> Result<Redirect> {
    viewer.check(&form.csrf)?;
    let nonempty = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
    let parent = nonempty(&form.parent_folder_id);
    let (path, body) = match form.kind.as_str() {
        "text" => (
            "text",
            json!({"text": form.text, "name": nonempty(&form.name), "parent_folder_id": parent}),
        ),
        "url" => ("url", json!({"url": form.url, "parent_folder_id": parent})),
        "crawl" => (
            "crawl",
            json!({"url": form.url, "max_depth": form.max_depth.unwrap_or(2), "parent_folder_id": parent}),
        ),
        "folder" => ("folder", json!({"name": form.name, "parent_folder_id": parent})),
        other => return Err(Error::BadInput(format!("unknown kind of entry {other:?}"))),
    };
    let uri = format!("/v1/convai/knowledge-base/{path}");
    let added = dash.api.call(&viewer.creds(), Method::POST, &uri, Some(&body)).await?;
    Ok(Redirect::to(&match form.kind.as_str() {
        "folder" => with_query("/knowledge-base", &[("folder", added["id"].as_str())]),
        "crawl" => format!("/knowledge-base/crawl/{}", encode(text(&added["id"]))),
        _ => doc_href(&added["id"]),
    }))
}

/// A multipart form as the API takes it.
fn form_body(fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> (String, Vec<u8>) {
    let boundary = format!("colloquy-{}", colloquy_core::ids::new_uuid());
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    if let Some((filename, bytes)) = file {
        let filename = filename.replace(['"', '\r', '\n'], "_");
        body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
        body.extend(bytes);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload(viewer: Viewer, State(dash): State<Dash>, mut form: Multipart) -> Result<Redirect> {
    let bad = |e: axum::extract::multipart::MultipartError| Error::BadInput(e.body_text());
    let (mut csrf, mut parent, mut file) = (String::new(), String::new(), None);
    while let Some(field) = form.next_field().await.map_err(bad)? {
        match field.name().unwrap_or_default() {
            "_csrf" => csrf = field.text().await.map_err(bad)?,
            "parent_folder_id" => parent = field.text().await.map_err(bad)?,
            "file" => {
                let name = field.file_name().unwrap_or("upload").to_owned();
                file = Some((name, field.bytes().await.map_err(bad)?));
            }
            _ => {}
        }
    }
    viewer.check(&csrf)?;
    let Some((name, bytes)) = file else {
        return Err(Error::BadInput("choose a file to upload".into()));
    };
    let mut fields = Vec::new();
    if !parent.is_empty() {
        fields.push(("parent_folder_id", parent.as_str()));
    }
    let (content_type, body) = form_body(&fields, Some((&name, &bytes)));
    let added = dash
        .api
        .upload(
            &viewer.creds(),
            Method::POST,
            "/v1/convai/knowledge-base/file",
            &content_type,
            body,
        )
        .await?;
    Ok(Redirect::to(&doc_href(&added["id"])))
}

async fn detail(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>,
) -> Result<Html<String>> {
    let creds = viewer.creds();
    let base = format!("/v1/convai/knowledge-base/{}", encode(&id));
    let doc = dash.api.get(&creds, &base).await?;
    let chunks = dash.api.get(&creds, &format!("{base}/chunks?page_size=100")).await?;
    let agents = dash.api.get(&creds, &format!("{base}/dependent-agents?page_size=100")).await?;
    let chunks = chunks["chunks"].as_array().cloned().unwrap_or_default();
    let agents = agents["agents"].as_array().cloned().unwrap_or_default();
    let body = html! {
        dl.facts {
            dt { "Type" } dd { (text(&doc["type"])) }
            @if let Some(url) = doc["url"].as_str() { dt { "Page" } dd { (url) } }
            @if let Some(file) = doc["filename"].as_str() { dt { "File" } dd { (file) } }
            dt { "Size" } dd { (doc["metadata"]["size_bytes"]) " bytes" }
            dt { "Created" } dd { (unix_time(&doc["metadata"]["created_at_unix_secs"])) }
            dt { "Id" } dd { code { (id) } }
        }
        div.actions { a.button.danger href={ (doc_href(&doc["id"])) "/delete" } { "Delete (and remove from agents)" } }
        h2 { "Used by" }
        @if agents.is_empty() { p.muted { "No agent uses it." } } @else {
            ul { @for a in &agents { li { a href={ "/agents/" (encode(text(&a["id"]))) } { (text(&a["name"])) } } } }
        }
        h2 { "Chunks (" (chunks.len()) ")" }
        ol.chunks { @for c in &chunks { li { details { summary { code { (text(&c["id"])) } } pre { (text(&c["content"])) } } } } }
    };
    Ok(Html(layout::page(&viewer, Section::KnowledgeBase, text(&doc["name"]), body).into_string()))
}

/// Asks before deleting: the document leaves every agent that uses it.
async fn confirm_delete(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>,
) -> Result<Html<String>> {
    let uri = format!("/v1/convai/knowledge-base/{}", encode(&id));
    let doc = dash.api.get(&viewer.creds(), &uri).await?;
    let href = doc_href(&doc["id"]);
    let page = layout::confirm_page(
        &viewer,
        Section::KnowledgeBase,
        &format!("Delete the document \"{}\"?", text(&doc["name"])),
        "It is removed from every agent that uses it, and its text and index go for good.",
        &format!("{href}/delete"),
        "Delete the document",
        &href,
    );
    Ok(Html(page.into_string()))
}

async fn delete(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Result<Redirect> {
    viewer.check(&form.csrf)?;
    let uri = format!("/v1/convai/knowledge-base/{}?force=true", encode(&id));
    dash.api.call(&viewer.creds(), Method::DELETE, &uri, None).await?;
    Ok(Redirect::to("/knowledge-base"))
}

/// A crawl's progress and every page it found, with why a page failed or was skipped.
async fn crawl(
    viewer: Viewer, State(dash): State<Dash>, Path(id): Path<String>,
) -> Result<Html<String>> {
    let creds = viewer.creds();
    let base = format!("/v1/convai/knowledge-base/crawl/{}", encode(&id));
    let job = dash.api.get(&creds, &base).await?;
    let pages = dash.api.get(&creds, &format!("{base}/pages?page_size=100")).await?;
    let pages = pages["pages"].as_array().cloned().unwrap_or_default();
    let body = html! {
        dl.facts {
            dt { "Site" } dd { (text(&job["seed_url"])) }
            dt { "Status" } dd { (layout::status(text(&job["status"]))) }
            dt { "Pages" } dd {
                (job["pages_identified"]) " found, " (job["pages_scraped"]) " read, "
                (job["pages_skipped"]) " skipped, " (job["pages_failed"]) " failed"
            }
            dt { "Documents" } dd { a href=(with_query("/knowledge-base", &[("folder", job["root_folder_id"].as_str())])) { "in its folder" } }
        }
        table {
            thead { tr { th { "Page" } th.num { "Depth" } th { "Outcome" } } }
            tbody {
                @for p in &pages {
                    tr {
                        td { @if let Some(doc) = p["document_id"].as_str() { a href=(doc_href(&json!(doc))) { (text(&p["url"])) } } @else { (text(&p["url"])) } }
                        td.num { (p["depth"]) }
                        td { (layout::status(text(&p["status"]))) @if let Some(why) = p["error"].as_str() { " " (why) } }
                    }
                }
            }
        }
    };
    Ok(Html(layout::page(&viewer, Section::KnowledgeBase, "Crawl", body).into_string()))
}

#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    q: Option<String>,
    agent_id: Option<String>,
}

/// Whether an agent's knowledge base holds a search result: the document, or a folder it is in.
fn used_by(agent: &Value, result: &Value) -> bool {
    let named: Vec<&str> = agent["conversation_config"]["agent"]["prompt"]["knowledge_base"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["id"].as_str())
        .collect();
    let doc = &result["document"];
    named.contains(&text(&doc["id"]))
        || doc["folder_path"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|f| named.contains(&text(&f["id"])))
}

async fn search(
    viewer: Viewer, State(dash): State<Dash>, Query(q): Query<SearchQuery>,
) -> Result<Html<String>> {
    let creds = viewer.creds();
    let question = q.q.as_deref().unwrap_or_default();
    let agent_id = q.agent_id.as_deref().filter(|a| !a.is_empty());
    let agents = dash.api.get(&creds, "/v1/convai/agents?page_size=100").await?;
    let mut results = Vec::new();
    if !question.trim().is_empty() {
        let uri = with_query(
            "/v1/convai/knowledge-base/search",
            &[("query", Some(question)), ("page_size", Some("20"))],
        );
        let found = dash.api.get(&creds, &uri).await?;
        results = found["results"].as_array().cloned().unwrap_or_default();
        if let Some(agent_id) = agent_id {
            let agent =
                dash.api.get(&creds, &format!("/v1/convai/agents/{}", encode(agent_id))).await?;
            results.retain(|r| used_by(&agent, r));
        }
    }
    let body = html! {
        form.filters method="get" action="/knowledge-base/search" role="search" {
            label { "Question" input type="search" name="q" value=(question) required; }
            label { "As agent" select name="agent_id" {
                option value="" { "Any (the whole workspace)" }
                @for a in agents["agents"].as_array().into_iter().flatten() {
                    option value=(text(&a["agent_id"])) selected[agent_id == a["agent_id"].as_str()] { (text(&a["name"])) }
                }
            } }
            button type="submit" { "Search" }
        }
        @if !question.trim().is_empty() && results.is_empty() { p.muted { "Nothing matches." } }
        ol.results {
            @for r in &results {
                li {
                    a href=(doc_href(&r["document"]["id"])) { (text(&r["document"]["name"])) }
                    " · score " (format!("{:.3}", r["score"].as_f64().unwrap_or(0.0)))
                    p.snippet { @for s in r["search_snippet"].as_array().into_iter().flatten() {
                        @if s["is_hit"] == true { mark { (text(&s["value"])) } } @else { (text(&s["value"])) }
                    } }
                }
            }
        }
    };
    Ok(Html(
        layout::page(&viewer, Section::KnowledgeBase, "Knowledge-base search", body).into_string(),
    ))
}
