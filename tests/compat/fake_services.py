"""Deterministic stand-ins for the outside world during compatibility tests, on one loopback port:
an OpenAI-compatible chat-completions endpoint (streamed as SSE), an OpenAI-compatible
embeddings endpoint (a bag of words hashed into 64 dimensions) and a webhook target.

The fake LLM answers by the last message (and, when asked as the test judge, passes every reply
except one echoing "FAIL"): a tool result is echoed ("Tool said: ..."); a user
message containing "weather" calls get_weather, "order status" calls check_order, "map" calls show_map, "bye" calls
end_call, "sum please" calls the MCP tool add;
anything else is echoed ("You said: ..."). A post-call analysis (a forced record_analysis call)
gets a fixed summary and title, every criterion a success. Prints the port, then serves until
killed.
"""

import json
import sys
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def reply_for(messages):
    system = messages[0].get("content") or "" if messages else ""
    last = messages[-1]
    if system.startswith("You evaluate"):
        # The test judge: a reply that answered the user passes; one that says "FAIL" fails.
        verdict = "failure" if "Agent's reply: You said: FAIL" in (last.get("content") or "") else "success"
        return {"text": json.dumps({"result": verdict, "rationale": "fake judge"})}
    if last.get("role") == "tool":
        return {"text": f"Tool said: {last.get('content')}"}
    text = last.get("content") or ""
    if isinstance(text, list):
        # A message with the user's files: its text, each file as its part's type.
        text = " ".join(p.get("text", "") if p.get("type") == "text" else f"[{p.get('type')}]" for p in text)
    for word, tool, args in [("weather", "get_weather", {"city": "Paris"}), ("order status", "check_order", {"order": "A1"}), ("map", "show_map", {"city": "Lyon"}), ("bye", "end_call", {}), ("sum please", "add", {"a": 2, "b": 3})]:
        if word in text:
            return {"call": (tool, args)}
    return {"text": f"You said: {text}"}


def analysis(schema, key=""):
    """A post-call analysis answering the forced tool's schema: a fixed summary and title,
    every criterion a success, every collected value unknown (null)."""
    kind = schema.get("type")
    if kind == "object":
        return {k: analysis(v, k) for k, v in schema.get("properties", {}).items()}
    if isinstance(kind, list):
        return None
    if kind == "integer":
        return schema.get("maximum", 0)
    if "enum" in schema:
        return "success" if "success" in schema["enum"] else schema["enum"][0]
    return {"transcript_summary": "The user and the agent talked.", "call_summary_title": "A fake call"}.get(key, "fake judge")


def bag_of_words(text):
    vector = [0.0] * 64
    for word in "".join(c if c.isalnum() else " " for c in text.lower()).split():
        h = 2166136261
        for b in word.encode():
            h = ((h ^ b) * 16777619) & 0xFFFFFFFF
        vector[h % 64] += 1.0
    return vector


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.path.endswith("/chat/completions"):
            request = json.loads(body)
            if (request.get("tool_choice") or {}).get("function", {}).get("name") == "record_analysis":
                reply = {"call": ("record_analysis", analysis(request["tools"][0]["function"]["parameters"]))}
            else:
                reply = reply_for(request["messages"])
            chunks = []
            if "text" in reply:
                for word in reply["text"].split(" "):
                    chunks.append({"choices": [{"index": 0, "delta": {"content": word + " "}}]})
            else:
                name, args = reply["call"]
                call = {"index": 0, "id": f"call_{uuid.uuid4().hex}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
                chunks.append({"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]})
            payload = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
            self._send(200, "text/event-stream", payload)
        elif self.path.endswith("/embeddings"):
            inputs = json.loads(body)["input"]
            inputs = [inputs] if isinstance(inputs, str) else inputs
            data = [{"object": "embedding", "index": i, "embedding": bag_of_words(t)} for i, t in enumerate(inputs)]
            self._send(200, "application/json", json.dumps({"object": "list", "data": data}))
        elif self.path.startswith("/weather"):
            self._send(200, "application/json", json.dumps({"forecast": "sunny", "request": json.loads(body or b"{}")}))
        else:
            self._send(404, "text/plain", "not found")

    def _send(self, status, content_type, text):
        data = text.encode()
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
