//! The knowledge base: documents from text, files and URLs, folders, lists, chunks, search,
//! the agents that use documents, and retrieval in a live conversation.

use axum::Router;
use axum::routing::get;
use colloquy_core::protocol::InitiationData;
use serde_json::{Value, json};

use crate::fakes::{FakeLlm, text, with_llm};
use crate::helpers::{Backend, TestApp, dual_db};
use crate::ws;

const REFUNDS: &str = "# Refunds\n\nRefunds are paid within five business days. \
    The customer keeps the receipt number ZX-4471 for any claim.\n\n\
    # Shipping\n\nShipping is free above fifty euros. Parcels travel with Colissimo.";

async fn add_text(app: &TestApp, body: Value) -> String {
    let (s, b) = app.post("/v1/convai/knowledge-base/text", &app.admin_key, &body).await;
    assert_eq!(s, 200, "{b}");
    b["id"].as_str().unwrap().to_owned()
}

/// A multipart form of text fields and one file, as the SDKs send it.
fn form(fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> (String, Vec<u8>) {
    let boundary = "colloquy-test-boundary";
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
        body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
        body.extend(bytes);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A one-page PDF showing `line`, its cross-reference table computed.
fn pdf(line: &str) -> Vec<u8> {
    let stream = format!("BT /F1 12 Tf 72 720 Td ({line}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_owned(),
        format!("<< /Length {} >>\nstream\n{stream}\nendstream", stream.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for at in offsets {
        out.extend(format!("{at:010} 00000 n \n").as_bytes());
    }
    out.extend(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

fn extract_docx_type() -> &'static str {
    colloquy_engine::knowledge::extract::DOCX_TYPE
}

/// A DOCX file with a heading and a paragraph.
fn docx(heading: &str, body: &str) -> Vec<u8> {
    use std::io::Write as _;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("[Content_Types].xml", stored).unwrap();
    zip.write_all(br#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#).unwrap();
    zip.start_file("word/document.xml", stored).unwrap();
    zip.write_all(format!(r#"<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>{heading}</w:t></w:r></w:p><w:p><w:r><w:t>{body}</w:t></w:r></w:p></w:body></w:document>"#).as_bytes()).unwrap();
    zip.finish().unwrap().into_inner()
}

async fn upload(
    app: &TestApp, method: reqwest::Method, path: &str, form: (String, Vec<u8>),
) -> (u16, Value) {
    let r = app
        .client
        .request(method, app.url(path))
        .header("xi-api-key", &app.admin_key)
        .header("content-type", form.0)
        .body(form.1)
        .send()
        .await
        .unwrap();
    crate::helpers::status_json(r).await
}

async fn documents_folders_lists_and_deletion(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = &app.admin_key;
    let folder = {
        let (s, b) =
            app.post("/v1/convai/knowledge-base/folder", key, &json!({"name": "Policies"})).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["folder_path"], json!([]));
        b["id"].as_str().unwrap().to_owned()
    };
    let (s, b) = app
        .post(
            "/v1/convai/knowledge-base/text",
            key,
            &json!({"text": REFUNDS, "name": "Refund policy", "parent_folder_id": folder}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["folder_path"], json!([{"id": folder}]));
    let doc = b["id"].as_str().unwrap().to_owned();
    let other = add_text(&app, json!({"text": "Opening hours: nine to five."})).await;

    let (s, got) = app.get(&format!("/v1/convai/knowledge-base/{doc}"), key).await;
    assert_eq!(s, 200, "{got}");
    assert_eq!(got["type"], "text");
    assert_eq!(got["name"], "Refund policy");
    assert_eq!(got["folder_parent_id"], folder.as_str());
    assert_eq!(got["folder_path"], json!([{"id": folder, "name": "Policies"}]));
    assert_eq!(got["supported_usages"], json!(["prompt", "auto"]));
    assert_eq!(got["metadata"]["size_bytes"], REFUNDS.len());
    assert!(got["extracted_inner_html"].as_str().unwrap().contains("ZX-4471"));
    assert_eq!(got["access_info"]["is_creator"], true);
    let (_, untitled) = app.get(&format!("/v1/convai/knowledge-base/{other}"), key).await;
    assert_eq!(untitled["name"], "Opening hours: nine to five.");

    let (s, folder_view) = app.get(&format!("/v1/convai/knowledge-base/{folder}"), key).await;
    assert_eq!(s, 200);
    assert_eq!(
        (folder_view["children_count"].as_i64(), folder_view["document_count"].as_i64()),
        (Some(1), Some(1))
    );

    // Lists: all, by type, by parent, folders first, paged.
    let (_, all) = app.get("/v1/convai/knowledge-base", key).await;
    assert_eq!(all["documents"].as_array().unwrap().len(), 3);
    assert_eq!(all["has_more"], false);
    let (_, texts) =
        app.get("/v1/convai/knowledge-base?types=text&sort_by=name&sort_direction=asc", key).await;
    let names: Vec<&str> = texts["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Opening hours: nine to five.", "Refund policy"]);
    let (_, inside) =
        app.get(&format!("/v1/convai/knowledge-base?parent_folder_id={folder}"), key).await;
    assert_eq!(inside["documents"][0]["id"], doc.as_str());
    assert_eq!(inside["documents"][0]["folder_path"], json!([{"id": folder}]));
    let (_, first) = app.get("/v1/convai/knowledge-base?folders_first=true&page_size=1&sort_by=name&sort_direction=asc", key).await;
    assert_eq!(first["documents"][0]["type"], "folder");
    let cursor = first["next_cursor"].as_str().unwrap();
    let (s, second) = app.get(&format!("/v1/convai/knowledge-base?folders_first=true&page_size=1&sort_by=name&sort_direction=asc&cursor={cursor}"), key).await;
    assert_eq!(s, 200, "{second}");
    assert_eq!(second["documents"][0]["name"], "Opening hours: nine to five.");
    let (s, _) =
        app.get(&format!("/v1/convai/knowledge-base?page_size=1&cursor={cursor}"), key).await;
    assert_eq!(s, 422, "a cursor of another list");
    let (_, named) = app.get("/v1/convai/knowledge-base?search=refund", key).await;
    assert_eq!(named["documents"].as_array().unwrap().len(), 1);

    // Chunks and search.
    let (s, chunks) = app
        .get(
            &format!(
                "/v1/convai/knowledge-base/{doc}/chunks?embedding_model=e5_mistral_7b_instruct"
            ),
            key,
        )
        .await;
    assert_eq!(s, 200, "{chunks}");
    let chunks = chunks["chunks"].as_array().unwrap().clone();
    assert_eq!(chunks.len(), 2, "one chunk per section");
    assert!(chunks[1]["content"].as_str().unwrap().starts_with("Shipping"));
    let chunk_id = chunks[0]["id"].as_str().unwrap();
    let (s, one) = app.get(&format!("/v1/convai/knowledge-base/{doc}/chunk/{chunk_id}"), key).await;
    assert_eq!(s, 200);
    assert_eq!(one["content"], chunks[0]["content"]);
    let (s, _) =
        app.get(&format!("/v1/convai/knowledge-base/{doc}/chunks?embedding_model=ada"), key).await;
    assert_eq!(s, 422);
    let (s, found) =
        app.get("/v1/convai/knowledge-base/search?query=how%20are%20parcels%20shipped", key).await;
    assert_eq!(s, 200, "{found}");
    assert_eq!(found["results"][0]["document"]["id"], doc.as_str());
    let hits: Vec<&Value> = found["results"][0]["search_snippet"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["is_hit"] == true)
        .collect();
    assert!(!hits.is_empty(), "{found}");

    // Content, rename, new text.
    let r = app
        .client
        .get(app.url(&format!("/v1/convai/knowledge-base/{doc}/content")))
        .header("xi-api-key", key)
        .send()
        .await
        .unwrap();
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(r.text().await.unwrap().contains("<h1>Refunds</h1>"));
    let (s, renamed) = app
        .send(
            reqwest::Method::PATCH,
            &format!("/v1/convai/knowledge-base/{other}"),
            key,
            &json!({"name": "Hours", "content": "Open nine to six, Monday to Saturday."}),
        )
        .await;
    assert_eq!(s, 200, "{renamed}");
    assert_eq!(renamed["name"], "Hours");
    let (_, found) = app.get("/v1/convai/knowledge-base/search?query=saturday", key).await;
    assert_eq!(found["results"][0]["document"]["id"], other.as_str(), "the new text is indexed");

    // Agents that use a document; deleting it is refused until forced.
    let (s, b) = app.post("/v1/convai/agents/create", key, &json!({"conversation_config": {"agent": {"prompt": {
        "knowledge_base": [{"type": "folder", "name": "Policies", "id": folder}, {"type": "text", "name": "Hours", "id": other}]}}}})).await;
    assert_eq!(s, 200, "{b}");
    let agent = b["agent_id"].as_str().unwrap().to_owned();
    let (s, b) = app
        .post(
            "/v1/convai/agents/create",
            key,
            &json!({"conversation_config": {"agent": {"prompt": {
        "knowledge_base": [{"type": "text", "name": "x", "id": "kbdoc_missing"}]}}}}),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    let (_, direct) = app
        .get(
            &format!("/v1/convai/knowledge-base/{doc}/dependent-agents?dependent_type=direct"),
            key,
        )
        .await;
    assert_eq!(direct["agents"], json!([]));
    let (_, all) = app.get(&format!("/v1/convai/knowledge-base/{doc}/dependent-agents"), key).await;
    assert_eq!(all["agents"][0]["id"], agent.as_str(), "through its folder");
    assert_eq!(all["has_more"], false);
    let (s, many) = app
        .post("/v1/convai/knowledge-base/dependent-agents", key, &json!({"document_ids": [other]}))
        .await;
    assert_eq!(s, 200, "{many}");
    assert_eq!(many["agents"][0]["type"], "available");
    let (_, size) = app.get(&format!("/v1/convai/agent/{agent}/knowledge-base/size"), key).await;
    assert!(size["number_of_pages"].as_f64().unwrap() > 0.0);
    let (_, summaries) = app
        .get(
            &format!(
                "/v1/convai/knowledge-base/summaries?document_ids={other}&document_ids=kbdoc_nope"
            ),
            key,
        )
        .await;
    assert_eq!(summaries[&other]["status"], "success");
    assert_eq!(summaries[&other]["data"]["dependent_agents"][0]["id"], agent.as_str());
    assert_eq!(summaries["kbdoc_nope"]["status"], "failure");
    assert_eq!(summaries["kbdoc_nope"]["error_code"], 404);

    let (s, b) = app
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/convai/knowledge-base/{folder}"),
            key,
            &json!(null),
        )
        .await;
    assert_eq!(s, 409, "{b}");
    let (s, b) = app
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/convai/knowledge-base/{other}"),
            key,
            &json!(null),
        )
        .await;
    assert_eq!(s, 409, "{b}");
    // Moving the document out of the folder, then the folder in a folder of its own.
    let (s, _) = app
        .post(&format!("/v1/convai/knowledge-base/{doc}/move"), key, &json!({"move_to": null}))
        .await;
    assert_eq!(s, 200);
    let (_, moved) = app.get(&format!("/v1/convai/knowledge-base/{doc}"), key).await;
    assert_eq!(moved["folder_parent_id"], Value::Null);
    let (s, b) = app
        .post(
            "/v1/convai/knowledge-base/bulk-move",
            key,
            &json!({"document_ids": [folder], "move_to": folder}),
        )
        .await;
    assert_eq!(s, 400, "a folder into itself: {b}");
    let (s, b) = app
        .post(
            "/v1/convai/knowledge-base/bulk-delete",
            key,
            &json!({"document_ids": [folder, other, doc], "force": false}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b[&folder]["status"], "failure");
    assert_eq!(b[&folder]["error_code"], 409);
    assert_eq!(b[&doc]["status"], "success");
    let (s, _) = app
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/convai/knowledge-base/{other}?force=true"),
            key,
            &json!(null),
        )
        .await;
    assert_eq!(s, 200);
    let (_, agent_doc) = app.get(&format!("/v1/convai/agents/{agent}"), key).await;
    let kb = &agent_doc["conversation_config"]["agent"]["prompt"]["knowledge_base"];
    assert_eq!(
        kb.as_array().unwrap().len(),
        1,
        "the forced delete removed it from the agent: {kb}"
    );
    let (s, _) = app.get(&format!("/v1/convai/knowledge-base/{other}"), key).await;
    assert_eq!(s, 404);
    let (_, found) = app.get("/v1/convai/knowledge-base/search?query=saturday", key).await;
    assert_eq!(found["results"], json!([]), "a deleted document's chunks are gone");

    // Bad input stores nothing.
    for body in
        [json!({"text": "  "}), json!({"text": "x", "name": ""}), json!({"name": "no text"})]
    {
        let (s, b) = app.post("/v1/convai/knowledge-base/text", key, &body).await;
        assert_eq!(s, 422, "{body}: {b}");
    }
    let (s, _) = app
        .post(
            "/v1/convai/knowledge-base/text",
            key,
            &json!({"text": "x", "parent_folder_id": "kbdoc_nope"}),
        )
        .await;
    assert_eq!(s, 404);
    let (_, all) = app.get("/v1/convai/knowledge-base?types=text", key).await;
    assert_eq!(all["documents"], json!([]));

    // Another workspace sees none of it.
    let outsider = app.key("other", "o@example.com", "admin").await;
    let (s, _) = app.get(&format!("/v1/convai/knowledge-base/{folder}"), &outsider).await;
    assert_eq!(s, 404);
    let (_, theirs) = app.get("/v1/convai/knowledge-base", &outsider).await;
    assert_eq!(theirs["documents"], json!([]));
    app.stop().await;
}
dual_db!(documents_folders_lists_and_deletion);

async fn files_and_urls(backend: Backend) {
    let site = Router::new()
        .route("/faq", get(|| async { axum::response::Html("<!doctype html><html><head><script>var x=1;</script></head><body><nav>Home</nav><main><h1>FAQ</h1><p>The warranty lasts 24 months.</p></main></body></html>") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let site_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, site).await });
    let app = TestApp::spawn_with(backend, |c| {
        c.webhook_allow = "127.0.0.1".into();
        c.kb_max_file_bytes = 1000;
    })
    .await;
    let key = &app.admin_key;

    let (s, b) = app
        .post("/v1/convai/knowledge-base/url", key, &json!({"url": format!("{site_url}/faq")}))
        .await;
    assert_eq!(s, 200, "{b}");
    let url_doc = b["id"].as_str().unwrap().to_owned();
    let (_, got) = app.get(&format!("/v1/convai/knowledge-base/{url_doc}"), key).await;
    assert_eq!(got["type"], "url");
    assert_eq!(got["url"], format!("{site_url}/faq"));
    let text = got["extracted_inner_html"].as_str().unwrap();
    assert!(
        text.contains("# FAQ") && text.contains("24 months") && !text.contains("var x"),
        "{text}"
    );
    let (s, refreshed) =
        app.post(&format!("/v1/convai/knowledge-base/{url_doc}/refresh"), key, &json!({})).await;
    assert_eq!(s, 200, "{refreshed}");

    for refused in
        ["http://169.254.169.254/latest/meta-data", "http://10.1.2.3/x", "ftp://example.com/x"]
    {
        let (s, b) = app.post("/v1/convai/knowledge-base/url", key, &json!({"url": refused})).await;
        assert_eq!(s, 422, "{refused}: {b}");
    }

    let md = b"# Returns\n\nReturns are accepted for 30 days.";
    let (s, b) = upload(
        &app,
        reqwest::Method::POST,
        "/v1/convai/knowledge-base/file",
        form(&[("name", "Returns")], Some(("returns.md", md))),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let file_doc = b["id"].as_str().unwrap().to_owned();
    let (_, got) = app.get(&format!("/v1/convai/knowledge-base/{file_doc}"), key).await;
    assert_eq!(
        (got["type"].as_str(), got["filename"].as_str(), got["name"].as_str()),
        (Some("file"), Some("returns.md"), Some("Returns"))
    );
    let (s, b) = upload(
        &app,
        reqwest::Method::PATCH,
        &format!("/v1/convai/knowledge-base/{file_doc}/update-file"),
        form(&[], Some(("r.html", b"<html><body><p>Returns within 60 days.</p></body></html>"))),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert!(b["extracted_inner_html"].as_str().unwrap().contains("60 days"));
    let (s, b) = upload(
        &app,
        reqwest::Method::POST,
        "/v1/convai/knowledge-base",
        form(&[("url", &format!("{site_url}/faq"))], None),
    )
    .await;
    assert_eq!(s, 200, "{b}");

    let (s, b) = upload(
        &app,
        reqwest::Method::POST,
        "/v1/convai/knowledge-base/file",
        form(&[], Some(("manual.pdf", &pdf("The boiler needs service every 18 months.")))),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (_, got) =
        app.get(&format!("/v1/convai/knowledge-base/{}", b["id"].as_str().unwrap()), key).await;
    assert!(got["extracted_inner_html"].as_str().unwrap().contains("every 18 months"), "{got}");
    let (s, b) = upload(
        &app,
        reqwest::Method::POST,
        "/v1/convai/knowledge-base/file",
        form(&[], Some(("terms.docx", &docx("Terms", "Deposits are refundable until March.")))),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (_, got) =
        app.get(&format!("/v1/convai/knowledge-base/{}", b["id"].as_str().unwrap()), key).await;
    assert_eq!(got["extracted_inner_html"], "# Terms\n\nDeposits are refundable until March.");
    let (s, link) = app
        .get(
            &format!("/v1/convai/knowledge-base/{}/source-file-url", b["id"].as_str().unwrap()),
            key,
        )
        .await;
    assert_eq!(s, 200, "{link}");
    let signed = link["signed_url"].as_str().unwrap();
    assert!(signed.starts_with(&app.base), "{signed}");
    let file = app.client.get(signed).send().await.unwrap();
    assert_eq!(file.status(), 200, "no key needed");
    assert_eq!(file.headers()["content-type"], extract_docx_type());
    assert_eq!(file.headers()["content-security-policy"], "sandbox");
    assert_eq!(
        &file.bytes().await.unwrap()[..],
        &docx("Terms", "Deposits are refundable until March.")[..]
    );
    let middle = signed.len() - 20;
    let flipped = if &signed[middle..=middle] == "A" { "B" } else { "A" };
    let tampered = format!("{}{flipped}{}", &signed[..middle], &signed[middle + 1..]);
    assert_eq!(app.client.get(&tampered).send().await.unwrap().status(), 404);
    let (_, found) = app.get("/v1/convai/knowledge-base/search?query=boiler%20service", key).await;
    assert_eq!(found["results"][0]["document"]["name"], "manual.pdf", "{found}");

    for (name, bytes, status) in [
        ("empty.txt", &b""[..], 422),
        ("broken.pdf", &b"%PDF-1.4 binary"[..], 400),
        ("photo.png", &b"\x89PNG\r\n\x1a\n"[..], 400),
        ("big.txt", &[b'a'; 2000][..], 400),
    ] {
        let (s, b) = upload(
            &app,
            reqwest::Method::POST,
            "/v1/convai/knowledge-base/file",
            form(&[], Some((name, bytes))),
        )
        .await;
        assert_eq!(s, status, "{name}: {b}");
    }
    let (s, _) = app.post("/v1/convai/knowledge-base/file", key, &json!({"file": "x"})).await;
    assert_eq!(s, 422, "not a form");
    let (_, files) = app.get("/v1/convai/knowledge-base?types=file", key).await;
    assert_eq!(files["documents"].as_array().unwrap().len(), 3, "the refused files stored nothing");
    app.stop().await;
}
dual_db!(files_and_urls);

/// The fake LLM answers with the system prompt it was given, so the test sees what the
/// retrieval stage placed there.
async fn agents_answer_from_their_documents(backend: Backend) {
    let llm = FakeLlm::openai(|req: &Value| {
        text(req["messages"][0]["content"].as_str().unwrap_or_default())
    })
    .await;
    let app = TestApp::spawn_with(backend, with_llm(&llm)).await;
    let key = &app.admin_key;
    let refunds = add_text(&app, json!({"text": REFUNDS, "name": "Refunds"})).await;
    let filler: String = (0..40)
        .map(|i| format!("# Topic {i}\n\nParagraph {i} talks about lamps and chairs.\n\n"))
        .collect();
    let catalog = add_text(&app, json!({"text": filler, "name": "Catalog"})).await;
    let tone =
        add_text(&app, json!({"text": "Always answer in a calm voice.", "name": "Tone"})).await;
    let (s, b) = app
        .post(
            "/v1/convai/agents/create",
            key,
            &json!({"conversation_config": {"agent": {"prompt": {
        "prompt": "You are the shop assistant.",
        "rag": {"enabled": true, "max_retrieved_rag_chunks_count": 3},
        "knowledge_base": [
            {"type": "text", "name": "Refunds", "id": refunds, "usage_mode": "auto"},
            {"type": "text", "name": "Catalog", "id": catalog, "usage_mode": "auto"},
            {"type": "text", "name": "Tone", "id": tone, "usage_mode": "prompt"}]}}}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let agent = b["agent_id"].as_str().unwrap().to_owned();

    let (mut socket, conversation) =
        ws::open(&ws::url(&app.base, &format!("agent_id={agent}")), InitiationData::default())
            .await;
    let events = ws::turn(&mut socket, "What is the receipt number for my refund claim?").await;
    let answer = events.iter().find(|e| e["type"] == "agent_response").unwrap();
    let prompt = answer["agent_response_event"]["agent_response"].as_str().unwrap();
    assert!(prompt.starts_with("You are the shop assistant."), "{prompt}");
    assert!(
        prompt.contains("Always answer in a calm voice."),
        "prompt-mode document in full: {prompt}"
    );
    assert!(prompt.contains("ZX-4471"), "the chunk that answers was retrieved: {prompt}");
    assert!(!prompt.contains("Paragraph 7 talks"), "unrelated chunks were not: {prompt}");
    drop(socket);

    let secs = std::time::Duration::from_secs;
    let record = crate::helpers::poll(
        secs(10),
        secs(0) + std::time::Duration::from_millis(50),
        async || {
            let (_, c) = app.get(&format!("/v1/convai/conversations/{conversation}"), key).await;
            c["transcript"]
                .as_array()
                .filter(|t| t.iter().any(|e| e["rag_retrieval_info"].is_object()))
                .map(|_| c.clone())
        },
    )
    .await
    .expect("the turn's retrieval is recorded");
    let info = record["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| e["rag_retrieval_info"].as_object())
        .unwrap()
        .clone();
    assert_eq!(info["retrieval_query"], "What is the receipt number for my refund claim?");
    assert_eq!(info["embedding_model"], "e5_mistral_7b_instruct");
    let chunks = info["chunks"].as_array().unwrap();
    assert!(!chunks.is_empty() && chunks.len() <= 3, "{info:?}");
    assert_eq!(chunks[0]["document_id"], refunds.as_str());
    assert_eq!(chunks[0]["vector_distance"], 0.0);
    app.stop().await;
}
dual_db!(agents_answer_from_their_documents);

/// Recall@5 of lexical retrieval over the project's own documentation (`tests/retrieval/`):
/// each question is answered when one of the five best chunks holds its answer.
async fn retrieval_recall(backend: Backend) {
    use colloquy_store::KnowledgeStore as _;
    let app = TestApp::spawn(backend).await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/retrieval");
    let set: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("questions.json")).unwrap())
            .unwrap();
    let mut ids = std::collections::BTreeMap::new();
    for name in set["documents"].as_array().unwrap() {
        let name = name.as_str().unwrap();
        let text = std::fs::read_to_string(root.join("corpus").join(name)).unwrap();
        ids.insert(name.to_owned(), add_text(&app, json!({"text": text, "name": name})).await);
    }
    let store = app.db.store().await;
    let workspace = {
        use colloquy_store::WorkspaceStore as _;
        store.get_workspace_by_name("default").await.unwrap().unwrap().id
    };
    let questions = set["questions"].as_array().unwrap();
    assert!(questions.len() >= 50);
    let mut missed = Vec::new();
    for q in questions {
        let terms = colloquy_core::knowledge::search_terms(q["question"].as_str().unwrap());
        let hits = store.search_chunks(&workspace, None, &terms, 5).await.unwrap();
        let answer = q["answer"].as_str().unwrap();
        let found = hits.iter().any(|h| {
            h.document_id == ids[q["document"].as_str().unwrap()] && h.content.contains(answer)
        });
        if !found {
            missed.push(q["question"].as_str().unwrap().to_owned());
        }
    }
    let recall = 1.0 - missed.len() as f64 / questions.len() as f64;
    eprintln!(
        "retrieval recall@5 ({backend:?}, lexical): {recall:.3} over {} questions",
        questions.len()
    );
    for question in &missed {
        eprintln!("  missed: {question}");
    }
    assert!(recall >= 0.8, "recall@5 {recall:.3} is below 0.8");
    app.stop().await;
}
dual_db!(retrieval_recall);

async fn wait_indexed(app: &TestApp, doc: &str) -> Value {
    let every = std::time::Duration::from_millis(50);
    crate::helpers::poll(std::time::Duration::from_secs(20), every, async || {
        let (_, b) =
            app.get(&format!("/v1/convai/knowledge-base/{doc}/rag-index"), &app.admin_key).await;
        b["indexes"]
            .as_array()
            .and_then(|i| i.first())
            .filter(|i| i["status"] != "created" && i["status"] != "processing")
            .cloned()
    })
    .await
    .expect("the index finished")
}

/// What the agent was given for `question`, and the turn's retrieval record.
async fn ask(app: &TestApp, agent: &str, question: &str) -> (String, Value) {
    let url = ws::url(&app.base, &format!("agent_id={agent}"));
    let (mut socket, conversation) = ws::open(&url, InitiationData::default()).await;
    let events = ws::turn(&mut socket, question).await;
    let prompt = events.iter().find(|e| e["type"] == "agent_response").unwrap()["agent_response_event"]["agent_response"]
        .as_str()
        .unwrap()
        .to_owned();
    drop(socket);
    let every = std::time::Duration::from_millis(50);
    let info = crate::helpers::poll(std::time::Duration::from_secs(10), every, async || {
        let (_, c) =
            app.get(&format!("/v1/convai/conversations/{conversation}"), &app.admin_key).await;
        c["transcript"]
            .as_array()?
            .iter()
            .find_map(|e| e["rag_retrieval_info"].as_object().cloned())
    })
    .await
    .expect("the turn's retrieval is recorded");
    (prompt, Value::Object(info))
}

async fn embedding_indexes_and_hybrid_retrieval(backend: Backend) {
    let llm = FakeLlm::openai(|req: &Value| {
        text(req["messages"][0]["content"].as_str().unwrap_or_default())
    })
    .await;
    let embeddings = crate::fakes::FakeEmbeddings::start(std::time::Duration::ZERO).await;
    let configure = embeddings.configure();
    let app = TestApp::spawn_with(backend, |c| {
        with_llm(&llm)(c);
        configure(c);
    })
    .await;
    let key = &app.admin_key;
    let garage =
        add_text(&app, json!({"text": "# Garage\n\nCars: garage B.", "name": "Garage"})).await;
    let desk = add_text(&app, json!({"text": "Where is the lost and found? It is at the front desk for my guests.", "name": "Desk"})).await;
    let folder =
        app.post("/v1/convai/knowledge-base/folder", key, &json!({"name": "F"})).await.1["id"]
            .as_str()
            .unwrap()
            .to_owned();

    let (s, b) = app
        .post(
            &format!("/v1/convai/knowledge-base/{garage}/rag-index"),
            key,
            &json!({"model": "ada-002"}),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    let (s, b) = app
        .post(
            &format!("/v1/convai/knowledge-base/{garage}/rag-index"),
            key,
            &json!({"model": "multilingual_e5_large_instruct"}),
        )
        .await;
    assert_eq!(
        (s, b["detail"]["status"].as_str()),
        (400, Some("embeddings_not_configured")),
        "{b}"
    );
    assert!(b["detail"]["message"].as_str().unwrap().contains("[[embeddings.routes]]"));
    let (s, b) = app
        .post(
            &format!("/v1/convai/knowledge-base/{folder}/rag-index"),
            key,
            &json!({"model": "e5_mistral_7b_instruct"}),
        )
        .await;
    assert_eq!(s, 400, "{b}");

    let (s, b) = app.post("/v1/convai/agents/create", key, &json!({"conversation_config": {"agent": {"prompt": {
        "prompt": "Concierge.", "rag": {"enabled": true, "max_vector_distance": 0.8},
        "knowledge_base": [{"type": "text", "name": "Garage", "id": garage}, {"type": "text", "name": "Desk", "id": desk}]}}}})).await;
    assert_eq!(s, 200, "{b}");
    let agent = b["agent_id"].as_str().unwrap().to_owned();
    let question = "Where is parking for my automobile near the front?";
    let (prompt, info) = ask(&app, &agent, question).await;
    assert!(!prompt.contains("garage B"), "lexical retrieval alone does not relate them: {prompt}");
    assert!(prompt.contains("front desk"), "{prompt}");
    assert!(info["chunks"].as_array().unwrap().iter().all(|c| c["document_id"] == desk.as_str()));
    let search = format!(
        "/v1/convai/knowledge-base/search?query={}",
        question.replace(' ', "%20").replace('?', "%3F")
    );
    let found_ids = |found: &Value| -> Vec<String> {
        found["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["document"]["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, found) = app.get(&search, key).await;
    assert!(!found_ids(&found).contains(&garage), "lexical search alone does not find it: {found}");

    let (s, created) = app
        .post(
            &format!("/v1/convai/knowledge-base/{garage}/rag-index"),
            key,
            &json!({"model": "e5_mistral_7b_instruct"}),
        )
        .await;
    assert_eq!(s, 200, "{created}");
    assert!(created["id"].as_str().unwrap().starts_with("ragidx_"));
    let done = wait_indexed(&app, &garage).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["progress_percentage"], 100.0);
    assert_eq!(done["document_model_index_usage"]["used_bytes"], 64 * 4);
    let (s, batch) = app
        .post(
            "/v1/convai/knowledge-base/rag-index",
            key,
            &json!({"items": [
        {"document_id": garage, "create_if_missing": false, "model": "e5_mistral_7b_instruct"},
        {"document_id": desk, "create_if_missing": false, "model": "e5_mistral_7b_instruct"}]}),
        )
        .await;
    assert_eq!(s, 200, "{batch}");
    assert_eq!(batch[&garage]["data"]["status"], "succeeded");
    assert_eq!(
        (batch[&desk]["status"].as_str(), batch[&desk]["error_code"].as_i64()),
        (Some("failure"), Some(404))
    );
    let (_, overview) = app.get("/v1/convai/knowledge-base/rag-index", key).await;
    assert_eq!(overview["total_used_bytes"], 256);
    assert_eq!(overview["models"], json!([{"model": "e5_mistral_7b_instruct", "used_bytes": 256}]));
    assert_eq!(overview["total_max_bytes"], 1i64 << 30);

    let (prompt, info) = ask(&app, &agent, question).await;
    assert!(
        prompt.contains("garage B"),
        "vectors relate automobile parking to cars in garage B: {prompt}"
    );
    let by_vector = info["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["document_id"] == garage.as_str())
        .unwrap()
        .clone();
    let distance = by_vector["vector_distance"].as_f64().unwrap();
    assert!(distance > 0.0 && distance <= 0.8, "{info}");

    // New text queues the index again; deleting it leaves retrieval lexical.
    let (s, _) = app
        .send(
            reqwest::Method::PATCH,
            &format!("/v1/convai/knowledge-base/{garage}"),
            key,
            &json!({"content": "# Garage\n\nCars: garage C."}),
        )
        .await;
    assert_eq!(s, 200);
    let again = wait_indexed(&app, &garage).await;
    assert_eq!(again["status"], "succeeded");
    let (prompt, _) = ask(&app, &agent, question).await;
    assert!(prompt.contains("garage C") && !prompt.contains("garage B"), "{prompt}");
    let index_id = again["id"].as_str().unwrap();
    let (s, deleted) = app
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/convai/knowledge-base/{garage}/rag-index/{index_id}"),
            key,
            &json!(null),
        )
        .await;
    assert_eq!(s, 200, "{deleted}");
    assert_eq!(deleted["id"], index_id);
    let (_, none) = app.get(&format!("/v1/convai/knowledge-base/{garage}/rag-index"), key).await;
    assert_eq!(none["indexes"], json!([]));
    let (_, overview) = app.get("/v1/convai/knowledge-base/rag-index", key).await;
    assert_eq!(overview["total_used_bytes"], 0);
    let (prompt, _) = ask(&app, &agent, question).await;
    assert!(!prompt.contains("garage C"), "{prompt}");
    assert!(embeddings.requests() >= 4);
    app.stop().await;
}
dual_db!(embedding_indexes_and_hybrid_retrieval);

/// A small site on loopback: a robots.txt that keeps out `/private`, a link loop, a broken page
/// a page deeper than the crawl goes, and a sitemap that lists a page no link leads to.
async fn site() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let page = |body: &'static str| async move {
        axum::response::Html(format!("<html><body>{body}</body></html>"))
    };
    let sitemap = format!(
        r#"<?xml version="1.0"?><urlset><url><loc>{base}/a</loc></url><url><loc>{base}/hidden</loc></url><url><loc>https://other.test/x</loc></url></urlset>"#
    );
    let app = Router::new()
        .route("/robots.txt", get(|| async { "User-agent: *\nDisallow: /private\n" }))
        .route("/", get(move || page(r#"<h1>Home</h1><p>Welcome to the harbour.</p><a href="/a">A</a> <a href="/b#top">B</a> <a href="/private/secret">S</a> <a href="https://other.test/x">out</a>"#)))
        .route("/a", get(move || page(r#"<h1>Ferries</h1><p>Ferries leave hourly.</p><a href="/b">B</a> <a href="/">home</a> <a href="/a/deep">deep</a>"#)))
        .route("/b", get(move || page(r#"<h1>Tickets</h1><p>Tickets cost four euros.</p><a href="/a">A</a> <a href="/broken">broken</a>"#)))
        .route("/a/deep", get(move || page(r#"<p>The lighthouse is deep in the archive.</p><a href="/a/deeper">deeper</a>"#)))
        .route("/a/deeper", get(move || page("<p>Too deep to be read.</p>")))
        .route("/private/secret", get(move || page("<p>Staff only.</p>")))
        .route("/broken", get(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "down") }))
        .route("/hidden", get(move || page("<p>The night ferry is listed only in the sitemap.</p>")))
        .route("/sitemap.xml", get(move || async move { sitemap }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

async fn crawls_follow_the_site_within_its_rules(backend: Backend) {
    let base = site().await;
    let app = TestApp::spawn_with(backend, |c| c.webhook_allow = "127.0.0.1".into()).await;
    let key = &app.admin_key;
    for (body, status) in [
        (json!({"url": "http://169.254.169.254/"}), 422),
        (json!({"url": "ftp://example.com/"}), 422),
        (json!({"url": base, "max_depth": 6}), 422),
        (json!({"url": base, "pattern": "("}), 422),
    ] {
        let (s, b) = app.post("/v1/convai/knowledge-base/crawl", key, &body).await;
        assert_eq!(s, status, "{body}: {b}");
    }
    let (_, none) = app.get("/v1/convai/knowledge-base?types=folder", key).await;
    assert_eq!(none["documents"], json!([]), "refused crawls stored nothing");

    let (s, created) = app
        .post(
            "/v1/convai/knowledge-base/crawl",
            key,
            &json!({"url": format!("{base}/"), "max_depth": 3}),
        )
        .await;
    assert_eq!(s, 200, "{created}");
    assert_eq!(
        (created["status"].as_str(), created["type"].as_str()),
        (Some("queued"), Some("discovery"))
    );
    let id = created["id"].as_str().unwrap().to_owned();
    let folder = created["root_folder_id"].as_str().unwrap().to_owned();
    let every = std::time::Duration::from_millis(50);
    let job = crate::helpers::poll(std::time::Duration::from_secs(20), every, async || {
        let (_, job) = app.get(&format!("/v1/convai/knowledge-base/crawl/{id}"), key).await;
        (job["status"] == "succeeded" || job["status"] == "failed").then_some(job)
    })
    .await
    .expect("the crawl ended");
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(
        [
            &job["pages_identified"],
            &job["pages_scraped"],
            &job["pages_skipped"],
            &job["pages_failed"]
        ],
        [6, 4, 1, 1],
        "home, a, b and a/deep read; private skipped by robots.txt; broken failed; a/deeper too deep: {job}"
    );
    let (_, docs) = app
        .get(&format!("/v1/convai/knowledge-base?parent_folder_id={folder}&page_size=100"), key)
        .await;
    let mut urls: Vec<String> = docs["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["url"].as_str().unwrap().replace(&base, ""))
        .collect();
    urls.sort();
    assert_eq!(urls, ["/", "/a", "/a/deep", "/b"]);
    let (_, found) = app.get("/v1/convai/knowledge-base/search?query=lighthouse", key).await;
    assert!(
        found["results"][0]["document"]["url"].as_str().unwrap().ends_with("/a/deep"),
        "{found}"
    );

    let (s, pages) =
        app.get(&format!("/v1/convai/knowledge-base/crawl/{id}/pages?page_size=4"), key).await;
    assert_eq!(s, 200, "{pages}");
    let (_, rest) = app
        .get(
            &format!(
                "/v1/convai/knowledge-base/crawl/{id}/pages?page_size=4&cursor={}",
                pages["next_cursor"].as_str().unwrap()
            ),
            key,
        )
        .await;
    let all: Vec<Value> = pages["pages"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["pages"].as_array().unwrap())
        .cloned()
        .collect();
    assert_eq!(all.len(), 6, "{all:?}");
    assert_eq!(all[0]["url"], format!("{base}/"));
    let of = |path: &str| all.iter().find(|p| p["url"] == format!("{base}{path}")).unwrap().clone();
    assert_eq!(
        (of("/private/secret")["status"].as_str(), of("/private/secret")["error"].as_str()),
        (Some("skipped"), Some("disallowed by robots.txt"))
    );
    assert_eq!(of("/broken")["status"], "failed");
    assert!(of("/broken")["error"].as_str().unwrap().contains("500"), "{all:?}");
    assert!(of("/a")["document_id"].as_str().unwrap().starts_with("kbdoc_"));
    let (s, mapped) = app.post("/v1/convai/knowledge-base/crawl", key, &json!({"url": format!("{base}/"), "max_depth": 1, "sitemap_urls": [format!("{base}/sitemap.xml")]})).await;
    assert_eq!((s, mapped["type"].as_str()), (200, Some("sitemap")), "{mapped}");
    let mapped_id = mapped["id"].as_str().unwrap().to_owned();
    let mapped_job = crate::helpers::poll(std::time::Duration::from_secs(20), every, async || {
        let (_, job) = app.get(&format!("/v1/convai/knowledge-base/crawl/{mapped_id}"), key).await;
        (job["status"] == "succeeded" || job["status"] == "failed").then_some(job)
    })
    .await
    .expect("the sitemap crawl ended");
    assert_eq!(
        [&mapped_job["pages_identified"], &mapped_job["pages_scraped"]],
        [3, 3],
        "the seed, and /a and /hidden from the sitemap (other sites left out; depth 1 follows no links): {mapped_job}"
    );
    let (_, found) = app.get("/v1/convai/knowledge-base/search?query=night%20ferry", key).await;
    assert!(
        found["results"][0]["document"]["url"].as_str().unwrap().ends_with("/hidden"),
        "{found}"
    );
    let (s, listed) = app.get("/v1/convai/knowledge-base/crawl?page_size=1", key).await;
    assert_eq!(s, 200, "{listed}");
    assert_eq!(listed["crawl_jobs"][0]["id"], mapped_id.as_str(), "newest first");
    assert!(listed["next_cursor"].is_string());
    let (s, b) =
        app.post(&format!("/v1/convai/knowledge-base/crawl/{id}/cancel"), key, &json!({})).await;
    assert_eq!((s, &b), (200, &json!({})));
    let (_, after) = app.get(&format!("/v1/convai/knowledge-base/crawl/{id}"), key).await;
    assert_eq!(after["status"], "succeeded", "an ended crawl stays as it ended");
    let (s, _) = app.get("/v1/convai/knowledge-base/crawl/crawl_nope", key).await;
    assert_eq!(s, 404);
    let outsider = app.key("other", "o@example.com", "admin").await;
    let (s, _) = app.get(&format!("/v1/convai/knowledge-base/crawl/{id}"), &outsider).await;
    assert_eq!(s, 404);
    app.stop().await;
}
dual_db!(crawls_follow_the_site_within_its_rules);

/// The `knowledge_base_rag` system tool searches the agent's documents, and its call is in the
/// tool's execution log like any other.
async fn the_knowledge_base_rag_tool_searches_the_agents_documents(backend: Backend) {
    let llm = FakeLlm::openai(|req: &Value| {
        let last = req["messages"].as_array().unwrap().last().unwrap().clone();
        if last["role"] == "tool" {
            return text(&format!("Tool said {}", last["content"].as_str().unwrap()));
        }
        crate::fakes::call("knowledge_base_rag", json!({"query": "receipt number for a refund"}))
    })
    .await;
    let app = TestApp::spawn_with(backend, with_llm(&llm)).await;
    let key = &app.admin_key;
    let refunds = add_text(&app, json!({"text": REFUNDS, "name": "Refunds"})).await;
    let (s, tool) = app
        .post(
            "/v1/convai/tools",
            key,
            &json!({"tool_config": {"type": "system", "name": "knowledge_base_rag",
        "description": "Look things up", "params": {"system_tool_type": "knowledge_base_rag"}}}),
        )
        .await;
    assert_eq!(s, 200, "{tool}");
    let (s, b) = app.post("/v1/convai/agents/create", key, &json!({"conversation_config": {"agent": {"prompt": {
        "prompt": "Help.", "tool_ids": [tool["id"]],
        "knowledge_base": [{"type": "text", "name": "Refunds", "id": refunds, "usage_mode": "auto"}]}}}})).await;
    assert_eq!(s, 200, "{b}");
    let agent = b["agent_id"].as_str().unwrap().to_owned();
    let (mut socket, _) =
        ws::open(&ws::url(&app.base, &format!("agent_id={agent}")), InitiationData::default())
            .await;
    let events = ws::turn(&mut socket, "I lost my receipt").await;
    let answer = events.iter().find(|e| e["type"] == "agent_response").unwrap()["agent_response_event"]["agent_response"]
        .as_str()
        .unwrap()
        .to_owned();
    let result: Value = serde_json::from_str(answer.strip_prefix("Tool said ").unwrap()).unwrap();
    assert_eq!(result["result_type"], "knowledge_base_rag_success");
    assert_eq!(result["status"], "success");
    assert_eq!(result["chunks"][0]["document_id"], refunds.as_str());
    assert!(result["chunks"][0]["content"].as_str().unwrap().contains("ZX-4471"), "{result}");
    drop(socket);
    let every = std::time::Duration::from_millis(50);
    let tool_id = tool["id"].as_str().unwrap();
    let logged = crate::helpers::poll(std::time::Duration::from_secs(10), every, async || {
        let (_, page) = app.get(&format!("/v1/convai/tools/{tool_id}/executions"), key).await;
        page["executions"].as_array().filter(|e| !e.is_empty()).cloned()
    })
    .await
    .expect("the call is in the execution log");
    assert_eq!(logged[0]["is_error"], false, "{logged:?}");
    app.stop().await;
}
dual_db!(the_knowledge_base_rag_tool_searches_the_agents_documents);

/// With `query_rewrite_prompt_override`, the agent's LLM turns the conversation into the query;
/// the user's own words stay in it.
async fn queries_are_rewritten_when_the_agent_asks(backend: Backend) {
    let llm = FakeLlm::openai(|req: &Value| {
        let system = req["messages"][0]["content"].as_str().unwrap_or_default();
        if system.starts_with("Rewrite") {
            return text("boiler maintenance interval");
        }
        text(system)
    })
    .await;
    let app = TestApp::spawn_with(backend, with_llm(&llm)).await;
    let key = &app.admin_key;
    let manual = add_text(&app, json!({"text": "# Boiler\n\nThe boiler needs maintenance every 18 months.", "name": "Boiler"})).await;
    let (s, b) = app.post("/v1/convai/agents/create", key, &json!({"conversation_config": {"agent": {"prompt": {
        "prompt": "Help.", "rag": {"enabled": true, "query_rewrite_prompt_override": "Rewrite the user's last question as a search query."},
        "knowledge_base": [{"type": "text", "name": "Boiler", "id": manual}]}}}})).await;
    assert_eq!(s, 200, "{b}");
    let (prompt, info) = ask(&app, b["agent_id"].as_str().unwrap(), "and how often?").await;
    assert!(prompt.contains("every 18 months"), "the rewritten query found the chunk: {prompt}");
    assert_eq!(info["retrieval_query"], "boiler maintenance interval and how often?");
    let asked = llm
        .requests()
        .iter()
        .find(|r| r["messages"][0]["content"].as_str().unwrap_or_default().starts_with("Rewrite"))
        .cloned()
        .unwrap();
    assert!(
        asked["messages"][1]["content"].as_str().unwrap().contains("user: and how often?"),
        "{asked}"
    );
    app.stop().await;
}
dual_db!(queries_are_rewritten_when_the_agent_asks);

/// A page on loopback whose answer the test changes.
#[derive(Clone, Default)]
struct Page(std::sync::Arc<std::sync::Mutex<(u16, String)>>);

impl Page {
    fn set(&self, status: u16, body: &str) {
        *self.0.lock().unwrap() = (status, body.to_owned());
    }
}

async fn changing_site() -> (String, Page, Page, Page) {
    let (news, gone, flaky) = (Page::default(), Page::default(), Page::default());
    news.set(200, "<p>The ferry leaves at nine.</p>");
    gone.set(200, "<p>Old timetable.</p>");
    flaky.set(200, "<p>Harbour fees.</p>");
    let serve = |page: Page| {
        get(move || {
            let (status, body) = page.0.lock().unwrap().clone();
            async move {
                let status = axum::http::StatusCode::from_u16(status).unwrap();
                (status, axum::response::Html(format!("<html><body>{body}</body></html>")))
            }
        })
    };
    let router = Router::new()
        .route("/news", serve(news.clone()))
        .route("/gone", serve(gone.clone()))
        .route("/flaky", serve(flaky.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (base, news, gone, flaky)
}

/// `enable_auto_sync`: URL documents (and the folders bounding them) keep their settings in
/// `auto_sync_info`; once due, a worker reads the page again (new text replaces the old), a
/// page that is gone removes a document with `auto_remove`, a failed read is counted and tried
/// again within the hour; PATCH turns it on and off; bad settings change nothing.
async fn url_documents_sync_on_their_own(backend: Backend) {
    use colloquy_store::{AutoSync, DAY_SECS, DocumentSyncStore};
    let (base, news, gone, flaky) = changing_site().await;
    let app = TestApp::spawn_with(backend, |c| c.webhook_allow = "127.0.0.1".into()).await;
    let key = &app.admin_key;
    let (_, me) = app.get("/api/whoami", key).await;
    let workspace = colloquy_core::ids::WorkspaceId::from(me["workspace"]["id"].as_str().unwrap());
    let now = colloquy_core::time::now_secs();
    let close = |v: &Value, to: i64| v.as_i64().is_some_and(|t| (t - to).abs() < 60);

    let (s, folder) = app
        .post(
            "/v1/convai/knowledge-base/folder",
            key,
            &json!({"name": "News", "enable_auto_sync": true, "minimum_frequency_days": 3}),
        )
        .await;
    assert_eq!(s, 200, "{folder}");
    let folder_id = folder["id"].as_str().unwrap();
    let (_, got) = app.get(&format!("/v1/convai/knowledge-base/{folder_id}"), key).await;
    assert_eq!(
        got["auto_sync_info"],
        json!({"minimum_frequency_days": 3, "auto_remove": false, "consec_failures": 0, "next_refresh_by": null})
    );
    let add = |path: &str, extra: Value| {
        let mut body = json!({"url": format!("{base}{path}"), "parent_folder_id": folder_id});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    let (s, doc) = app
        .post(
            "/v1/convai/knowledge-base/url",
            key,
            &add("/news", json!({"enable_auto_sync": true, "minimum_frequency_days": 7})),
        )
        .await;
    assert_eq!(s, 200, "{doc}");
    let news_id = doc["id"].as_str().unwrap().to_owned();
    let (_, got) = app.get(&format!("/v1/convai/knowledge-base/{news_id}"), key).await;
    let info = &got["auto_sync_info"];
    assert_eq!(info["minimum_frequency_days"], 3, "tightened to the folder's: {got}");
    assert!(close(&info["next_refresh_by"], now + 3 * DAY_SECS), "{info}");
    let (_, plain) = app
        .post("/v1/convai/knowledge-base/url", key, &json!({"url": format!("{base}/news")}))
        .await;
    let (_, got) =
        app.get(&format!("/v1/convai/knowledge-base/{}", plain["id"].as_str().unwrap()), key).await;
    assert_eq!(got["auto_sync_info"], Value::Null);
    let (s, bad) = app
        .post(
            "/v1/convai/knowledge-base/url",
            key,
            &add("/news", json!({"enable_auto_sync": true, "minimum_frequency_days": 0})),
        )
        .await;
    assert_eq!(s, 422, "{bad}");

    // Due: the worker reads the page again.
    let store = app.db.store().await;
    let due = |id: String, auto_remove: bool| {
        let (store, workspace) = (&store, &workspace);
        async move {
            let sync = Some(AutoSync { days: 3, auto_remove });
            let id = colloquy_core::ids::DocumentId::from(id.as_str());
            store.set_document_sync(workspace, &id, sync, now - 4 * DAY_SECS).await.unwrap();
        }
    };
    news.set(200, "<p>The ferry now leaves at ten.</p>");
    due(news_id.clone(), false).await;
    let synced = crate::helpers::poll(
        std::time::Duration::from_secs(10),
        std::time::Duration::from_millis(100),
        async || {
            // The new text and the next due time are two writes: wait for both.
            let (_, got) = app.get(&format!("/v1/convai/knowledge-base/{news_id}"), key).await;
            let read = got["extracted_inner_html"].as_str().unwrap_or_default().contains("ten");
            let due = got["auto_sync_info"]["next_refresh_by"].as_i64().unwrap_or_default();
            (read && due > now + DAY_SECS).then_some(got)
        },
    )
    .await
    .expect("the page is read again");
    assert_eq!(synced["auto_sync_info"]["consec_failures"], 0);
    assert!(close(&synced["auto_sync_info"]["next_refresh_by"], now + 3 * DAY_SECS), "{synced}");
    let (_, found) = app.get("/v1/convai/knowledge-base/search?query=ferry%20ten", key).await;
    assert_eq!(
        found["results"][0]["document"]["id"],
        news_id.as_str(),
        "the new text ranks first: {found}"
    );

    // A page that is gone removes a document with auto_remove; a failing one is tried again.
    let (_, doc) = app
        .post(
            "/v1/convai/knowledge-base/url",
            key,
            &add("/gone", json!({"enable_auto_sync": true, "auto_remove": true})),
        )
        .await;
    let gone_id = doc["id"].as_str().unwrap().to_owned();
    let (_, doc) = app
        .post(
            "/v1/convai/knowledge-base/url",
            key,
            &add("/flaky", json!({"enable_auto_sync": true, "auto_remove": true})),
        )
        .await;
    let flaky_id = doc["id"].as_str().unwrap().to_owned();
    gone.set(404, "not here");
    flaky.set(503, "busy");
    due(gone_id.clone(), true).await;
    due(flaky_id.clone(), true).await;
    crate::helpers::poll(
        std::time::Duration::from_secs(10),
        std::time::Duration::from_millis(100),
        async || {
            let (s, _) = app.get(&format!("/v1/convai/knowledge-base/{gone_id}"), key).await;
            (s == 404).then_some(())
        },
    )
    .await
    .expect("the document whose page is gone is removed");
    let failed = crate::helpers::poll(
        std::time::Duration::from_secs(10),
        std::time::Duration::from_millis(100),
        async || {
            let (_, got) = app.get(&format!("/v1/convai/knowledge-base/{flaky_id}"), key).await;
            (got["auto_sync_info"]["consec_failures"] == 1).then_some(got)
        },
    )
    .await
    .expect("the failed read is counted");
    let retry = colloquy_core::time::now_secs() + 3600;
    assert!(close(&failed["auto_sync_info"]["next_refresh_by"], retry), "{failed}");
    assert!(
        failed["extracted_inner_html"].as_str().unwrap().contains("Harbour fees"),
        "the old text stays"
    );

    // PATCH: off, on again with new settings; refused where it does not apply.
    let path = format!("/v1/convai/knowledge-base/{news_id}");
    let (s, got) =
        app.send(reqwest::Method::PATCH, &path, key, &json!({"enable_auto_sync": false})).await;
    assert_eq!((s, &got["auto_sync_info"]), (200, &Value::Null), "{got}");
    let (s, got) = app
        .send(
            reqwest::Method::PATCH,
            &path,
            key,
            &json!({"enable_auto_sync": true, "minimum_frequency_days": 30, "auto_remove": true}),
        )
        .await;
    assert_eq!(s, 200, "{got}");
    assert_eq!(got["auto_sync_info"]["minimum_frequency_days"], 30);
    assert_eq!(got["auto_sync_info"]["auto_remove"], true);
    let (s, got) = app
        .send(
            reqwest::Method::PATCH,
            &path,
            key,
            &json!({"minimum_frequency_days": 60, "tighten_only": true}),
        )
        .await;
    assert_eq!((s, &got["auto_sync_info"]["minimum_frequency_days"]), (200, &json!(30)), "{got}");
    let (s, got) =
        app.send(reqwest::Method::PATCH, &path, key, &json!({"minimum_frequency_days": 200})).await;
    assert_eq!(s, 422, "{got}");
    let text_id = add_text(&app, json!({"text": "Plain words."})).await;
    let (s, got) = app
        .send(
            reqwest::Method::PATCH,
            &format!("/v1/convai/knowledge-base/{text_id}"),
            key,
            &json!({"enable_auto_sync": true}),
        )
        .await;
    assert_eq!(s, 400, "{got}");
    app.stop().await;
}
dual_db!(url_documents_sync_on_their_own);
