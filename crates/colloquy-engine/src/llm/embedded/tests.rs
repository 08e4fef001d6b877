//! The embedded provider on the tiny model: reading, tokenizing, templating, greedy decoding
//! (pinned), streaming, cancelling, the queue, and a forced call it cannot write.

use std::time::Duration;

use tokio::sync::mpsc;

use super::*;
use crate::llm::{ChatMessage, Role, ToolSpec};

fn tiny_model() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    tiny::write(&path).unwrap();
    (dir, path)
}

fn request(max_tokens: u64) -> ChatRequest {
    ChatRequest {
        model: "tiny".into(),
        messages: vec![
            ChatMessage::text(Role::System, "You are terse."),
            ChatMessage::text(Role::User, "What is the weather in the west?"),
        ],
        temperature: Some(0.0),
        max_tokens: Some(max_tokens),
        ..Default::default()
    }
}

#[test]
fn the_file_brings_its_tokenizer_and_template() {
    let (_dir, path) = tiny_model();
    let model = Loaded::open(&path).unwrap();
    assert_eq!(model.weights.shape().architecture, "qwen2");
    assert_eq!((model.weights.shape().heads, model.weights.shape().kv_heads), (4, 2));
    let encoding =
        model.tokenizer.encode("<|im_start|>user\nsee the weather<|im_end|>", false).unwrap();
    let tokens: Vec<&str> = encoding.get_tokens().iter().map(String::as_str).collect();
    assert_eq!(tokens[0], "<|im_start|>");
    assert!(tokens.contains(&"Ġthe") && tokens.contains(&"Ġw"), "{tokens:?}");
    assert_eq!(tokens.last(), Some(&"<|im_end|>"));
    let text = model.tokenizer.decode(encoding.get_ids(), false).unwrap();
    assert_eq!(text, "<|im_start|>user\nsee the weather<|im_end|>");
    let im_end = model.tokenizer.token_to_id("<|im_end|>").unwrap();
    assert!(model.stops.contains(&im_end));
    let prompt = model.template.render(&request(1)).unwrap();
    assert_eq!(
        prompt,
        "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nWhat is the weather in the west?<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[tokio::test]
async fn greedy_decoding_is_deterministic_and_streams_what_it_returns() {
    let (_dir, path) = tiny_model();
    let provider = Embedded::new(path, 1);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let answer = provider.chat(&request(12), Some(&tx)).await.unwrap();
    drop(tx);
    let mut streamed = String::new();
    while let Some(piece) = rx.recv().await {
        streamed.push_str(&piece);
    }
    assert_eq!(answer.text, PINNED);
    assert_eq!(streamed.trim(), answer.text);
    assert_eq!(answer.output_tokens, Some(12));
    assert_eq!(answer.finish_reason.as_deref(), Some("length"));
    assert!(answer.input_tokens.is_some_and(|n| n > 20));
    let again = provider.chat(&request(12), None).await.unwrap();
    assert_eq!(again.text, answer.text);
}

/// What the tiny model says first, greedily.
const PINNED: &str = "4{H)qqon!w\\:0";

#[tokio::test]
async fn a_generation_stops_when_its_listener_goes_away() {
    let (_dir, path) = tiny_model();
    let provider = Embedded::new(path, 1);
    let (tx, rx) = mpsc::unbounded_channel();
    drop(rx);
    let answer = provider.chat(&request(400), Some(&tx)).await.unwrap();
    assert_eq!(answer.finish_reason.as_deref(), Some("cancelled"));
    assert!(answer.output_tokens.is_some_and(|n| n < 10), "{answer:?}");
}

#[tokio::test]
async fn generations_beyond_the_concurrency_wait_in_line() {
    let (_dir, path) = tiny_model();
    let provider = Arc::new(Embedded::new(path, 1));
    provider.loaded().await.unwrap();
    let stats = provider.stats();
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let provider = provider.clone();
            tokio::spawn(async move { provider.chat(&request(60), None).await })
        })
        .collect();
    let mut queued = false;
    for _ in 0..2000 {
        if stats.running.load(Ordering::Relaxed) == 1 && stats.waiting.load(Ordering::Relaxed) == 1
        {
            queued = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for run in runs {
        run.await.unwrap().unwrap();
    }
    assert!(queued, "the second generation never waited for the first");
    assert_eq!(stats.running.load(Ordering::Relaxed), 0);
    assert_eq!(stats.waiting.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_forced_call_the_model_cannot_write_fails_with_what_it_wrote() {
    let (_dir, path) = tiny_model();
    let provider = Embedded::new(path, 1);
    let mut forced = request(8);
    forced.tools = vec![ToolSpec {
        name: "verdict".into(),
        description: "The verdict".into(),
        parameters: serde_json::json!({"type": "object", "properties": {"ok": {"type": "boolean"}}}),
    }];
    forced.force_tool = Some("verdict".into());
    let error = provider.chat(&forced, None).await.unwrap_err();
    assert!(matches!(error, LlmError::Protocol(_)), "{error}");
    assert!(error.to_string().contains("valid JSON arguments for verdict"), "{error}");
}

#[tokio::test]
async fn a_file_that_is_not_a_model_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.gguf");
    std::fs::write(&path, b"not a model").unwrap();
    let error = Embedded::new(path, 1).chat(&request(4), None).await.unwrap_err();
    assert!(matches!(error, LlmError::Embedded(_)), "{error}");
    assert!(error.to_string().contains("notes.gguf"), "{error}");
}

#[tokio::test]
async fn a_later_turn_reads_only_what_is_new_and_answers_as_a_fresh_read_would() {
    let (_dir, path) = tiny_model();
    let warm = Embedded::new(path.clone(), 1);
    let first = warm.chat(&request(12), None).await.unwrap();
    let mut next = request(12);
    next.messages.push(ChatMessage::text(Role::Assistant, first.text.clone()));
    next.messages.push(ChatMessage::text(Role::User, "And in the east?"));

    let model = warm.loaded().await.unwrap();
    let prompt = model.template.render(&next).unwrap();
    let tokens = model.tokenizer.encode(prompt.as_str(), false).unwrap().get_ids().to_vec();
    let (cache, shared) = model.reusable(&tokens).unwrap();
    assert!(shared > 20 && shared < tokens.len(), "{shared} of {} tokens kept", tokens.len());
    assert_eq!(cache.len, shared);
    model.keep(tokens[..shared].to_vec(), cache);

    let again = warm.chat(&next, None).await.unwrap();
    let fresh = Embedded::new(path, 1).chat(&next, None).await.unwrap();
    assert_eq!(again.text, fresh.text);
    assert_eq!(again.input_tokens, fresh.input_tokens);
    // The same prompt twice: everything but its last token is kept.
    let repeat = warm.chat(&next, None).await.unwrap();
    assert_eq!(repeat.text, fresh.text);
}
