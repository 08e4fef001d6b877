//! The prompt a chat request becomes: the model's own chat template (the Jinja text in its
//! GGUF file, `tokenizer.chat_template`), rendered as Hugging Face's `apply_chat_template`
//! does, with the tools in OpenAI's shape. Files without a template get ChatML with tools in
//! the Qwen format, which is what the models this provider runs were trained on.

use minijinja::{Environment, Error, ErrorKind, Value as Jinja, context};
use serde_json::{Value, json};

use crate::llm::{ChatMessage, ChatRequest, Role};

/// ChatML, tools listed in the system message, calls and results tagged as Qwen2.5 does.
const CHATML: &str = r#"{%- if tools -%}
<|im_start|>system
{% if messages[0].role == "system" %}{{ messages[0].content }}{% else %}You are a helpful assistant.{% endif %}

# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{%- for tool in tools %}
{{ tool | tojson }}
{%- endfor %}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call><|im_end|>
{% elif messages[0].role == "system" -%}
<|im_start|>system
{{ messages[0].content }}<|im_end|>
{% endif -%}
{%- for message in messages -%}
{%- if message.role == "system" and loop.first -%}
{%- elif message.role == "tool" -%}
{% if loop.first or loop.previtem.role != "tool" %}<|im_start|>user{% endif %}
<tool_response>
{{ message.content }}
</tool_response>
{%- if loop.last or loop.nextitem.role != "tool" %}<|im_end|>
{% endif -%}
{%- else -%}
<|im_start|>{{ message.role }}
{%- if message.content or not message.tool_calls %}
{{ message.content }}
{%- endif %}
{%- for call in message.tool_calls or [] %}
<tool_call>
{"name": "{{ call.function.name }}", "arguments": {{ call.function.arguments | tojson }}}
</tool_call>
{%- endfor %}<|im_end|>
{% endif -%}
{%- endfor -%}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif -%}"#;

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos: String,
    eos: String,
}

impl ChatTemplate {
    /// Compiles `source` (the file's template), or ChatML when the file has none.
    pub fn new(source: Option<&str>, bos: &str, eos: &str) -> Result<ChatTemplate, String> {
        let mut env = Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_filter("tojson", tojson);
        env.add_function("raise_exception", |message: String| -> Result<Jinja, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, message))
        });
        env.add_template_owned("chat", source.unwrap_or(CHATML).to_owned())
            .map_err(|e| format!("the model's chat template does not compile: {e}"))?;
        Ok(ChatTemplate { env, bos: bos.to_owned(), eos: eos.to_owned() })
    }

    /// The prompt for `request`, ending where the assistant's answer begins.
    pub fn render(&self, request: &ChatRequest) -> Result<String, String> {
        let messages: Vec<Value> = request.messages.iter().map(message).collect();
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.parameters,
                }})
            })
            .collect();
        let template = self.env.get_template("chat").map_err(|e| e.to_string())?;
        template
            .render(context! {
                messages => Jinja::from_serialize(&messages),
                tools => (!tools.is_empty()).then(|| Jinja::from_serialize(&tools)),
                add_generation_prompt => true,
                // Qwen3's thinking would spend the reply's time budget before a word is said.
                enable_thinking => false,
                bos_token => &self.bos,
                eos_token => &self.eos,
            })
            .map_err(|e| format!("the model's chat template failed: {e}"))
    }
}

/// One message in the shape templates expect (OpenAI's).
fn message(m: &ChatMessage) -> Value {
    let role = match m.role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    };
    let mut content = m.content.clone();
    for file in &m.attachments {
        // The text models this provider runs read neither images nor PDFs.
        content.push_str(&format!(
            "\n[attached file {} ({}), not readable by this model]",
            file.filename, file.mime_type
        ));
    }
    let mut out = json!({"role": role, "content": content});
    if !m.tool_calls.is_empty() {
        out["tool_calls"] = m
            .tool_calls
            .iter()
            .map(|c| {
                let arguments = serde_json::from_str::<Value>(&c.arguments)
                    .unwrap_or_else(|_| Value::String(c.arguments.clone()));
                json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": arguments}})
            })
            .collect();
    }
    if let Some(id) = &m.tool_call_id {
        out["tool_call_id"] = json!(id);
    }
    out
}

/// Python's `json.dumps` (what Hugging Face's templates call): `", "` and `": "` between
/// items, no HTML escaping, keys in their order.
fn tojson(value: &Jinja) -> Result<Jinja, Error> {
    let value: Value = serde_json::to_value(value)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
    let mut out = String::new();
    python_json(&value, &mut out);
    Ok(Jinja::from_safe_string(out))
}

fn python_json(value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                python_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push_str(": ");
                python_json(item, out);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{ToolCall, ToolSpec};

    fn request() -> ChatRequest {
        ChatRequest {
            messages: vec![
                ChatMessage::text(Role::System, "Be brief."),
                ChatMessage::text(Role::User, "Weather in Paris?"),
                ChatMessage::calls(
                    "",
                    vec![ToolCall {
                        id: "c1".into(),
                        name: "get_weather".into(),
                        arguments: r#"{"city":"Paris"}"#.into(),
                    }],
                ),
                ChatMessage::tool_result("c1", r#"{"temp": 21}"#),
            ],
            tools: vec![ToolSpec {
                name: "get_weather".into(),
                description: "Weather <now>".into(),
                parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn chatml_lists_tools_and_replays_calls_and_results() {
        let prompt = ChatTemplate::new(None, "", "<|im_end|>").unwrap().render(&request()).unwrap();
        let want = "<|im_start|>system\nBe brief.\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Weather <now>\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}}}}\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\n{\"temp\": 21}\n</tool_response><|im_end|>\n<|im_start|>assistant\n";
        assert_eq!(prompt, want);
    }

    #[test]
    fn a_file_template_with_python_methods_renders() {
        let source = "{% for m in messages %}{{ m.role.upper() }}: {{ m.content.strip() }}\n{% endfor %}{% if tools %}{{ tools | length }} tools{% endif %}{{ eos_token }}";
        let prompt =
            ChatTemplate::new(Some(source), "", "</s>").unwrap().render(&request()).unwrap();
        assert!(prompt.starts_with("SYSTEM: Be brief.\nUSER: Weather in Paris?\n"), "{prompt}");
        assert!(prompt.ends_with("1 tools</s>"), "{prompt}");

        let raising = "{{ raise_exception('roles must alternate') }}";
        let error =
            ChatTemplate::new(Some(raising), "", "").unwrap().render(&request()).unwrap_err();
        assert!(error.contains("roles must alternate"), "{error}");
        assert!(ChatTemplate::new(Some("{% if %}"), "", "").is_err());
    }
}
