"""Creates the tools, MCP server and agents the live-conversation compatibility tests talk to,
through the HTTP API, and prints them as shell assignments (COLLOQUY_PUBLIC_AGENT=..., ...)."""

import json
import os
import urllib.request

URL = os.environ["COLLOQUY_URL"]
KEY = os.environ["COLLOQUY_KEY"]
FAKES = os.environ["COLLOQUY_FAKES_URL"]


def post(path, body):
    req = urllib.request.Request(f"{URL}{path}", data=json.dumps(body).encode(), method="POST",
                                 headers={"xi-api-key": KEY, "content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


weather = post("/v1/convai/tools", {"tool_config": {
    "type": "webhook", "name": "get_weather", "description": "Current weather",
    "api_schema": {"url": f"{FAKES}/weather", "method": "POST",
                   "request_body_schema": {"type": "object", "properties": {"city": {"type": "string", "description": "City"}}}}}})["id"]
show_map = post("/v1/convai/tools", {"tool_config": {
    "type": "client", "name": "show_map", "description": "Shows a map", "expects_response": True, "response_timeout_secs": 10,
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City"}}}}})["id"]
prompt = {"prompt": "You are a test agent.", "llm": "gpt-4o-mini", "tool_ids": [weather, show_map],
          "built_in_tools": {"end_call": {"name": "end_call", "description": "Ends the call", "params": {"system_tool_type": "end_call"}}}}
config = {"agent": {"first_message": "Hello from Colloquy!", "prompt": prompt}}
public = post("/v1/convai/agents/create", {"name": "compat public", "conversation_config": config})["agent_id"]
private = post("/v1/convai/agents/create", {"name": "compat private", "conversation_config": config,
                                           "platform_settings": {"auth": {"enable_auth": True}}})["agent_id"]
mcp_server = post("/v1/convai/mcp-servers", {"config": {"name": "compat approvals", "url": os.environ["COLLOQUY_MCP_URL"]}})["id"]
mcp_agent = post("/v1/convai/agents/create", {"name": "compat mcp", "conversation_config": {"agent": {
    "first_message": "", "prompt": {"prompt": "Use MCP.", "llm": "gpt-4o-mini", "mcp_server_ids": [mcp_server]}}}})["agent_id"]
print(f"COLLOQUY_PUBLIC_AGENT={public}")
print(f"COLLOQUY_MCP_AGENT={mcp_agent}")
print(f"COLLOQUY_PRIVATE_AGENT={private}")
