"""Compatibility of the official Python SDK (elevenlabs==2.78.0) with a running Colloquy.

Usage: COLLOQUY_URL=http://127.0.0.1:PORT COLLOQUY_KEY=sk_... python sdk_compat.py
Every `test_*` function runs against the server; the last line reads "N passed, M failed".
"""

import os
import sys
import time
import traceback

from elevenlabs import ElevenLabs
from elevenlabs.core.api_error import ApiError

URL = os.environ["COLLOQUY_URL"]
KEY = os.environ["COLLOQUY_KEY"]
client = ElevenLabs(api_key=KEY, base_url=URL)
agents = client.conversational_ai.agents


def raw_get(path):
    """GET through the SDK's own HTTP client, to see fields its models may not declare."""
    response = client._client_wrapper.httpx_client.request(path, method="GET")
    assert response.status_code == 200, response.text
    return response.json()


def test_create_get_drops_unknown_fields_and_keeps_exact_values():
    created = agents.create(
        name="SDK agent",
        tags=["sdk", "compat"],
        conversation_config={
            "agent": {"first_message": "Hi from the SDK", "prompt": {"prompt": "Be brief.", "temperature": 0.0}},
            "x_colloquy_extension": {"keep": [1, "two", None]},
        },
    )
    assert created.agent_id.startswith("agent_"), created
    agent = agents.get(created.agent_id)
    assert agent.agent_id == created.agent_id
    assert agent.name == "SDK agent"
    assert sorted(agent.tags) == ["compat", "sdk"]
    assert agent.conversation_config.agent.first_message == "Hi from the SDK"
    assert agent.conversation_config.agent.language == "en"
    assert agent.metadata.created_at_unix_secs > 0
    assert agent.access_info.is_creator is True
    assert agent.main_branch_id and agent.main_branch_id == agent.branch_id
    raw = raw_get(f"v1/convai/agents/{created.agent_id}")
    # Answers hold only the reference's response model: a key it does not know is accepted and
    # never comes back, as the hosted API's models drop it.
    assert "x_colloquy_extension" not in raw["conversation_config"], raw["conversation_config"]
    assert raw["conversation_config"]["agent"]["prompt"]["temperature"] == 0.0


def test_list_filters_sort_and_paging():
    ids = [agents.create(name=f"pager {i}", tags=["pager"], conversation_config={}).agent_id for i in range(7)]
    page = agents.list(page_size=3, tags=["pager"], sort_by="name", sort_direction="asc")
    assert [a.name for a in page.agents] == ["pager 0", "pager 1", "pager 2"]
    assert page.has_more and page.next_cursor
    seen = [a.agent_id for a in page.agents]
    while page.has_more:
        page = agents.list(page_size=3, tags=["pager"], sort_by="name", sort_direction="asc", cursor=page.next_cursor)
        seen += [a.agent_id for a in page.agents]
    assert sorted(seen) == sorted(ids)
    found = agents.list(search="PAGER 4")
    assert [a.agent_id for a in found.agents] == [ids[4]]
    mine = agents.list(created_by_user_id="@me", tags="pager")
    assert len(mine.agents) == 7
    summary = mine.agents[0]
    assert summary.voice_id and summary.access_info.role == "admin" and summary.archived is False


def test_update_merges_and_returns_the_agent():
    agent_id = agents.create(name="before", conversation_config={"agent": {"first_message": "keep me"}}).agent_id
    updated = agents.update(agent_id, name="after", conversation_config={"agent": {"prompt": {"prompt": "new prompt"}}})
    assert updated.name == "after"
    assert updated.conversation_config.agent.first_message == "keep me"
    assert updated.conversation_config.agent.prompt.prompt == "new prompt"


def test_duplicate_link_summaries_widget_kb_size_delete():
    agent_id = agents.create(name="original", conversation_config={"agent": {"language": "fr"}}).agent_id
    copy = agents.duplicate(agent_id, name="the copy")
    assert agents.get(copy.agent_id).name == "the copy"
    link = agents.link.get(agent_id)
    assert link.agent_id == agent_id and link.token and link.token.conversation_token
    summaries = agents.summaries.get(agent_ids=[agent_id, "agent_does_not_exist"])
    assert summaries[agent_id].status == "success" and summaries[agent_id].data.name == "original"
    assert summaries["agent_does_not_exist"].status == "failure"
    widget = agents.widget.get(agent_id)
    assert widget.agent_id == agent_id and widget.widget_config.language == "fr"
    assert agents.knowledge_base.size(agent_id).number_of_pages == 0.0
    agents.delete(agent_id)
    try:
        agents.get(agent_id)
        raise AssertionError("deleted agent still readable")
    except ApiError as e:
        assert e.status_code == 404, e


def test_validation_error_is_typed_422():
    from elevenlabs.errors import UnprocessableEntityError

    try:
        agents.create(conversation_config={"agent": {"prompt": {"temperature": "hot"}}})
        raise AssertionError("invalid body accepted")
    except UnprocessableEntityError as e:
        detail = e.body["detail"] if isinstance(e.body, dict) else e.body.detail
        first = detail[0] if isinstance(detail[0], dict) else detail[0].dict()
        assert first["loc"] == ["body", "conversation_config", "agent", "prompt", "temperature"], first


def test_secrets_crud():
    secrets = client.conversational_ai.secrets
    created = secrets.create(name="sdk-secret", value="s3cr3t-value")
    assert created.secret_id and created.name == "sdk-secret"
    listed = secrets.list()
    assert any(s.secret_id == created.secret_id for s in listed.secrets)
    got = secrets.get(created.secret_id)
    assert got.name == "sdk-secret" and "s3cr3t-value" not in got.json()
    secrets.update(created.secret_id, name="renamed", value="other")
    assert secrets.get(created.secret_id).name == "renamed"
    deps = secrets.get_dependencies(created.secret_id, "tools")
    assert deps.dependencies == []
    secrets.delete(created.secret_id)


def test_environments_and_environment_variables():
    from elevenlabs.environment_variables import (
        EnvironmentVariablesCreateRequestBody_Secret,
        EnvironmentVariablesCreateRequestBody_String,
    )

    names = [e.name for e in client.environments.list().environments]
    assert names[0] == "production", names
    staging = client.environments.create(name="sdk-staging")
    assert staging.name == "sdk-staging"
    variables = client.environment_variables
    url = variables.create(
        request=EnvironmentVariablesCreateRequestBody_String(
            label="SDK_URL", values={"production": "https://p.example", "sdk-staging": "https://s.example"}
        )
    )
    assert url.id and url.type == "string" and url.values["sdk-staging"] == "https://s.example"
    secret = client.conversational_ai.secrets.create(name="sdk-env-secret", value="env-s3cr3t")
    token = variables.create(
        request=EnvironmentVariablesCreateRequestBody_Secret(
            label="SDK_TOKEN", values={"production": {"secret_id": secret.secret_id}}
        )
    )
    assert token.type == "secret" and "env-s3cr3t" not in token.json()
    try:
        variables.create(
            request=EnvironmentVariablesCreateRequestBody_String(label="SDK_URL", values={"production": "x"})
        )
        raise AssertionError("a second SDK_URL was accepted")
    except ApiError as e:
        assert e.status_code == 409, e.status_code
    listed = variables.list(environment="sdk-staging")
    assert [v.label for v in listed.environment_variables] == ["SDK_URL"], listed
    assert listed.environment_variables[0].values == {"sdk-staging": "https://s.example"}
    assert variables.list(label="SDK_TOKEN", type="secret").environment_variables[0].id == token.id
    updated = variables.update(url.id, values={"sdk-staging": None, "production": "https://p2.example"})
    assert updated.values == {"production": "https://p2.example"}, updated.values
    assert variables.get(url.id).values == {"production": "https://p2.example"}
    variables.delete(url.id)
    variables.delete(token.id)
    client.environments.delete("sdk-staging")
    assert "sdk-staging" not in [e.name for e in client.environments.list().environments]
    client.conversational_ai.secrets.delete(secret.secret_id)


def test_review_tags_users_and_live_count():
    conversations = client.conversational_ai.conversations
    agent_id = os.environ["COLLOQUY_PUBLIC_AGENT"]
    live_before = client.conversational_ai.analytics.live_count.get(agent_id=agent_id).count
    assert live_before >= 0
    listed = conversations.list(agent_id=agent_id)
    assert listed.conversations, "the live-conversation tests ran first"
    conversation_id = listed.conversations[0].conversation_id
    tags = conversations.tags
    tag = tags.create(title="SDK refund", description="made by the SDK")
    assert tag.tag_id and tag.title == "SDK refund" and tag.description == "made by the SDK"
    assert tags.get(tag.tag_id).title == "SDK refund"
    assert tags.update(tag.tag_id, title="SDK refunds").title == "SDK refunds"
    assert any(t.tag_id == tag.tag_id for t in tags.list(page_size=100).conversation_tags)
    tags.assign(conversation_id, tag_ids=[tag.tag_id])
    assert tag.tag_id in conversations.get(conversation_id).tag_ids
    try:
        tags.assign(conversation_id, tag_ids=["ctag_nope"])
        raise AssertionError("an unknown tag was assigned")
    except ApiError as e:
        assert e.status_code == 422, e.status_code
    tags.unassign(conversation_id, tag.tag_id)
    assert tag.tag_id not in conversations.get(conversation_id).tag_ids
    tags.delete(tag.tag_id)
    users = client.conversational_ai.users.list(agent_id=agent_id, sort_by="conversation_count")
    assert users.has_more in (True, False) and isinstance(users.users, list)
    count = client.conversational_ai.analytics.live_count.get(agent_ids=[agent_id]).count
    assert count >= 0
    found = conversations.messages.text_search(text_query="weather", agent_id=agent_id, page_size=5)
    assert found.results and "weather" in found.results[0].chunk_text.lower(), found
    assert any(h.is_hit for h in found.results[0].chunk_highlights)
    # By meaning with the fake embeddings of fake_services.py, once the node's worker has
    # embedded the conversation (in the background after it ended).
    for _ in range(50):
        smart = conversations.messages.search(text_query="weather", agent_id=agent_id, page_size=5)
        if smart.results:
            break
        time.sleep(0.2)
    assert smart.results and smart.results[0].conversation_id, smart
    topics = conversations.topics.get(agent_id, sort_by="success_rate", include_evaluation_criteria=False)
    assert isinstance(topics.topics, list) and topics.window_end_unix_secs > topics.window_start_unix_secs
    try:
        conversations.resolve(agent_id=agent_id, reference="https://acme.zendesk.com/agent/tickets/1")
        raise AssertionError("resolved a ticket no conversation is about")
    except ApiError as e:
        assert e.status_code == 404, e


def test_review_triage_tickets():
    triage = client.conversational_ai.triage_tickets
    agent_id = os.environ["COLLOQUY_PUBLIC_AGENT"]
    conversation_id = client.conversational_ai.conversations.list(agent_id=agent_id).conversations[0].conversation_id
    ticket = triage.create(
        conversation_id=conversation_id,
        title="SDK finding",
        qa_comment="The agent guessed the weather",
        turn_comments=[{"turn_index": 0, "comment": "Should have asked the city"}],
        priority="high",
    )
    tid = ticket.agentqa_ticket_id
    assert ticket.status == "open" and ticket.source == "qa" and ticket.conversation_ids == [conversation_id]
    assert ticket.turn_comments[0].turn_index == 0 and ticket.turn_comments[0].comment == "Should have asked the city"
    manual = triage.create_manual(agent_id, qa_comment="Write the weather article", priority="low")
    assert manual.source == "manual" and manual.conversation_ids == []
    users = triage.list_assignable_users(agent_id)
    assert users and users[0].has_access
    updated = triage.update(tid, status="in_progress", assignee_user_id=users[0].user_id)
    assert updated.status == "in_progress" and updated.assignee_user_id == users[0].user_id
    assert triage.add_comment(tid, comment="Looking into it").ticket_comments[-1].comment == "Looking into it"
    turned = triage.add_turn_comment(tid, turn_index=1, comment="The answer was fine")
    assert turned.turn_comments[-1].turn_index == 1
    try:
        triage.add_turn_comment(tid, turn_index=999, comment="x")
        raise AssertionError("a turn past the transcript was accepted")
    except ApiError as e:
        assert e.status_code == 422, e.status_code
    page = triage.list(agent_id, sort_by="priority", page_size=1)
    assert page.agent_conversation_tickets[0].agentqa_ticket_id == tid and page.has_more
    following = triage.list(agent_id, sort_by="priority", page_size=1, cursor=page.next_cursor)
    assert following.agent_conversation_tickets[0].agentqa_ticket_id == manual.agentqa_ticket_id
    assert [t.agentqa_ticket_id for t in triage.list_for_workspace(assignee_user_id="unassigned", search="weather article").agent_conversation_tickets] == [manual.agentqa_ticket_id]
    merged = triage.merge(tid, source_ticket_ids=[manual.agentqa_ticket_id])
    assert merged.agentqa_ticket_id == tid
    assert triage.get(manual.agentqa_ticket_id).status == "merged"
    triage.delete(manual.agentqa_ticket_id)
    triage.delete(tid)
    try:
        triage.get(tid)
        raise AssertionError("a deleted ticket was found")
    except ApiError as e:
        assert e.status_code == 404, e.status_code


def test_tools_crud_dependents_and_executions():
    tools = client.conversational_ai.tools
    body = {
        "tool_config": {
            "type": "webhook",
            "name": "sdk_weather",
            "description": "Current weather for a city",
            "api_schema": {
                "url": "https://weather.example.com/v1/current",
                "method": "POST",
                "request_body_schema": {
                    "type": "object",
                    "properties": {"city": {"type": "string", "description": "City name"}},
                    "required": ["city"],
                },
            },
        },
        "response_mocks": [
            {"mock_result": "{\"temp\": 20}", "parameter_conditions": [{"path": "city", "eval": {"type": "exact", "expected_value": "Paris"}}]}
        ],
    }
    created = tools.create(request=body)
    assert created.id.startswith("tool_") and created.tool_config.name == "sdk_weather"
    assert created.usage_stats.total_calls == 0
    got = tools.get(created.id)
    assert got.tool_config.api_schema.url == "https://weather.example.com/v1/current"
    assert got.response_mocks and got.response_mocks[0].mock_result == '{"temp": 20}'
    listed = tools.list(search="sdk_", types=["webhook"], sort_by="name", sort_direction="asc")
    assert [t.id for t in listed.tools] == [created.id] and listed.has_more is False
    body["tool_config"]["description"] = "Updated"
    assert tools.update(created.id, request=body).tool_config.description == "Updated"

    agent_id = agents.create(name="uses tool", conversation_config={"agent": {"prompt": {"tool_ids": [created.id]}}}).agent_id
    deps = tools.get_dependent_agents(created.id)
    assert [a.id for a in deps.agents] == [agent_id]
    assert [t.id for t in tools.list(used_by_agent_id=agent_id).tools] == [created.id]
    try:
        tools.delete(created.id)
        raise AssertionError("deleted a tool in use")
    except ApiError as e:
        assert e.status_code == 409, e
    executions = tools.executions.get(created.id, page_size=10, is_error=False, start_time=0.0, end_time=4102444800.5)
    assert executions.executions == [] and executions.has_more is False
    tools.delete(created.id, force=True)
    assert agents.get(agent_id).conversation_config.agent.prompt.tool_ids == []


def _live(agent_id, requires_auth):
    import threading
    import time

    from elevenlabs.conversational_ai.conversation import ClientTools, Conversation

    tools = ClientTools()
    tools.register("show_map", lambda params: f"map of {params['city']}")
    responses = []
    conversation = Conversation(
        client,
        agent_id,
        requires_auth=requires_auth,
        client_tools=tools,
        callback_agent_response=responses.append,
    )

    def wait_for(predicate):
        deadline = time.time() + 10
        while time.time() < deadline:
            if any(predicate(r) for r in responses):
                return
            time.sleep(0.05)
        raise AssertionError(f"no matching agent response in {responses}")

    conversation.start_session()
    try:
        wait_for(lambda r: r == "Hello from Colloquy!")
        conversation.send_user_message("what is the weather")
        wait_for(lambda r: "sunny" in r)
        conversation.send_user_message("show me a map")
        wait_for(lambda r: "map of Lyon" in r)
    finally:
        conversation.end_session()
    conversation_id = conversation.wait_for_session_end()
    assert conversation_id, "the SDK learned the conversation id"
    deadline = time.time() + 5
    while True:
        got = client.conversational_ai.conversations.get(conversation_id)
        if got.status == "done" or time.time() > deadline:
            break
        time.sleep(0.1)
    assert got.agent_id == agent_id and got.status == "done", got.status
    messages = [t.message for t in got.transcript if t.role == "agent"]
    assert "Hello from Colloquy!" in messages
    listed = client.conversational_ai.conversations.list(agent_id=agent_id)
    assert any(c.conversation_id == conversation_id for c in listed.conversations)


def test_live_conversation_public_agent():
    _live(os.environ["COLLOQUY_PUBLIC_AGENT"], requires_auth=False)


def test_live_conversation_private_agent_signed_url():
    _live(os.environ["COLLOQUY_PRIVATE_AGENT"], requires_auth=True)


def test_agent_tests_and_folders():
    tests = client.conversational_ai.tests
    folder = tests.folders.create(name="sdk folder")
    created = tests.create(request={"type": "llm", "name": "sdk greets", "success_condition": "The agent greets",
                                    "chat_history": [{"role": "user", "message": "hi", "time_in_call_secs": 0}],
                                    "parent_folder_id": folder.id})
    got = tests.get(created.id)
    assert got.name == "sdk greets" and got.type == "llm"
    updated = tests.update(created.id, request={"type": "llm", "name": "sdk greets politely", "success_condition": "polite"})
    assert updated.name == "sdk greets politely"
    sim = tests.create(request={"type": "simulation", "name": "sdk sim", "success_conditions": ["solved"], "simulation_max_turns": 3})
    listed = tests.list(search="sdk", types=["llm", "simulation"], page_size=10)
    assert {t.id for t in listed.tests} >= {created.id, sim.id}
    summaries = tests.summaries(test_ids=[created.id, sim.id])
    assert set(summaries.tests) == {created.id, sim.id}
    assert tests.folders.get(folder.id).name == "sdk folder"
    assert tests.folders.update(folder.id, name="renamed").name == "renamed"
    tests.move(entity_ids=[sim.id], move_to=folder.id)
    assert tests.folders.get(folder.id).children_count == 1
    agent_id = agents.create(name="tested", conversation_config={}, platform_settings={"testing": {"attached_tests": [{"test_id": created.id}]}}).agent_id
    assert agents.get(agent_id).platform_settings.testing.attached_tests[0].test_id == created.id
    tests.delete(created.id)
    tests.folders.delete(folder.id, force=True)


def _agent_with_llm(name):
    config = {"agent": {"first_message": "Hello", "prompt": {"prompt": "You are a test agent.", "llm": "gpt-4o-mini"}}}
    return agents.create(name=name, conversation_config=config).agent_id


def _wait_finished(invocation_id):
    invocations = client.conversational_ai.tests.invocations
    for _ in range(300):
        got = invocations.get(invocation_id)
        if all(run.status not in ("pending", "running") for run in got.test_runs):
            return got
        time.sleep(0.1)
    raise AssertionError(f"invocation {invocation_id} did not finish")


def test_run_tests_invocations_rename_resubmit():
    tests = client.conversational_ai.tests
    invocations = tests.invocations
    chat = [{"role": "user", "message": "hello there", "time_in_call_secs": 0}]
    passing = tests.create(request={"type": "llm", "name": "sdk run passes", "success_condition": "answers", "chat_history": chat}).id
    failing = tests.create(request={"type": "llm", "name": "sdk run fails", "success_condition": "answers",
                                    "chat_history": [{"role": "user", "message": "FAIL", "time_in_call_secs": 0}]}).id
    agent_id = _agent_with_llm("sdk run-tests")
    started = agents.run_tests(agent_id, tests=[{"test_id": passing}, {"test_id": failing}], repeat_count=2)
    assert len(started.test_runs) == 4 and started.agent_id == agent_id
    done = _wait_finished(started.id)
    by_test = {}
    for run in done.test_runs:
        by_test.setdefault(run.test_id, set()).add(run.status)
    assert by_test == {passing: {"passed"}, failing: {"failed"}}, by_test
    listed = invocations.list(agent_id=agent_id, page_size=10)
    assert [i.id for i in listed.results] == [started.id], listed
    assert invocations.update(started.id, name="sdk renamed").id == started.id
    failed_run = next(run.test_run_id for run in done.test_runs if run.test_id == failing)
    invocations.resubmit(started.id, test_run_ids=[failed_run], agent_id=agent_id)
    again = _wait_finished(started.id)
    assert len(again.test_runs) == 4
    invocations.cancel(started.id)


def test_simulate_conversation_and_llm_usage():
    agent_id = _agent_with_llm("sdk simulate")
    result = agents.simulate_conversation(
        agent_id,
        simulation_specification={"simulated_user_config": {"first_message": "hello agent"}},
        extra_evaluation_criteria=[{"id": "greets", "name": "greets", "conversation_goal_prompt": "The agent answers"}],
        new_turns_limit=4,
    )
    assert result.simulated_conversation, result
    assert result.simulated_conversation[0].role in ("agent", "user")
    assert "greets" in result.analysis.evaluation_criteria_results
    usage = client.conversational_ai.llm_usage.calculate(prompt_length=1000, number_of_pages=0, rag_enabled=False)
    assert usage.llm_prices and all(p.price_per_minute >= 0 for p in usage.llm_prices)
    per_agent = agents.llm_usage.calculate(agent_id)
    assert per_agent.llm_prices


def test_mcp_servers_registry_and_a_live_mcp_call():
    import time

    from elevenlabs.conversational_ai.conversation import Conversation

    mcp = client.conversational_ai.mcp_servers
    created = mcp.create(config={"name": "compat-mcp", "url": os.environ["COLLOQUY_MCP_URL"]})
    server_id = created.id
    assert created.config.transport == "SSE" and created.config.approval_policy == "require_approval_all"
    assert any(s.id == server_id for s in mcp.list().mcp_servers)
    assert mcp.get(server_id).config.name == "compat-mcp"
    assert mcp.update(server_id, response_timeout_secs=10).config.response_timeout_secs == 10
    policy = mcp.approval_policy.update(server_id, approval_policy="require_approval_per_tool")
    assert policy.config.approval_policy == "require_approval_per_tool"
    approved = mcp.tool_approvals.create(server_id, tool_name="add", tool_description="Adds two integers.", approval_policy="auto_approved")
    assert [h.tool_name for h in approved.config.tool_approval_hashes] == ["add"]
    assert mcp.tool_approvals.delete(server_id, "add").config.tool_approval_hashes == []
    mcp.tool_configs.create(server_id, tool_name="add", response_timeout_secs=15)
    assert mcp.tool_configs.get(server_id, "add").response_timeout_secs == 15
    mcp.tool_configs.update(server_id, "add", response_timeout_secs=20)
    assert mcp.tool_configs.get(server_id, "add").response_timeout_secs == 20
    mcp.tool_configs.delete(server_id, "add")
    listed = mcp.tools.list(server_id)
    assert listed.success and "add" in [t.name for t in listed.tools], listed
    mcp.update(server_id, approval_policy="auto_approve_all")

    agent_id = agents.create(
        name="SDK MCP agent",
        conversation_config={"agent": {"first_message": "Hi", "prompt": {"prompt": "Use MCP.", "llm": "gpt-4o", "mcp_server_ids": [server_id]}}},
    ).agent_id
    assert [a.id for a in mcp.get(server_id).dependent_agents] == [agent_id]
    responses = []
    conversation = Conversation(client, agent_id, requires_auth=False, callback_agent_response=responses.append)
    conversation.start_session()
    try:
        deadline = time.time() + 10
        while "Hi" not in responses and time.time() < deadline:
            time.sleep(0.05)
        conversation.send_user_message("sum please")
        while not any("Tool said: 5" in r for r in responses) and time.time() < deadline + 10:
            time.sleep(0.05)
        assert any("Tool said: 5" in r for r in responses), responses
    finally:
        conversation.end_session()
    conversation_id = conversation.wait_for_session_end()
    calls = client._client_wrapper.httpx_client.request(f"api/tool-calls?executionId={conversation_id}", method="GET").json()
    assert [(c["toolName"], c["status"]) for c in calls] == [("add", "success")], calls
    try:
        mcp.delete(server_id)
        raise AssertionError("deleted an MCP server in use")
    except ApiError as e:
        assert e.status_code == 409, e
    agents.delete(agent_id)
    mcp.delete(server_id)


def _serve_page(html):
    """A page on loopback for URL documents; returns its URL."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Page(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            body = html.encode()
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/guide"


def _pdf(line):
    """A one-page PDF showing `line`, its cross-reference table computed."""
    stream = f"BT /F1 12 Tf 72 720 Td ({line}) Tj ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = b"%PDF-1.4\n", []
    for i, body in enumerate(objects):
        offsets.append(len(out))
        out += f"{i + 1} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{at:010} 00000 n \n".encode() for at in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def _docx(heading, body):
    """A DOCX file with a heading and a paragraph."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>')
        z.writestr(
            "word/document.xml",
            '<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
            f'<w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>{heading}</w:t></w:r></w:p>'
            f"<w:p><w:r><w:t>{body}</w:t></w:r></w:p></w:body></w:document>",
        )
    return buffer.getvalue()


def test_knowledge_base_pdf_and_docx_uploads_and_source_file_url():
    import urllib.request

    docs = client.conversational_ai.knowledge_base.documents
    pdf = docs.create_from_file(file=("manual.pdf", _pdf("The boiler needs service every 18 months."), "application/pdf"))
    assert "every 18 months" in docs.get(pdf.id).extracted_inner_html
    word = _docx("Terms", "Deposits are refundable until March.")
    docx = docs.create_from_file(file=("terms.docx", word, "application/vnd.openxmlformats-officedocument.wordprocessingml.document"))
    assert docs.get(docx.id).extracted_inner_html == "# Terms\n\nDeposits are refundable until March."
    link = docs.get_source_file_url(docx.id)
    with urllib.request.urlopen(link.signed_url) as response:  # no API key: the link is the key
        assert response.read() == word
    try:
        docs.create_from_file(file=("broken.pdf", b"%PDF-1.4 not really", "application/pdf"))
        raise AssertionError("a corrupt PDF was stored")
    except ApiError as e:
        assert e.status_code == 400, e
    docs.delete(pdf.id)
    docs.delete(docx.id)


def test_knowledge_base_every_document_operation():
    kb = client.conversational_ai.knowledge_base
    docs = kb.documents
    folder = docs.create_folder(name="SDK folder")
    text = docs.create_from_text(text="# Returns\n\nReturns are accepted within 45 days.", name="Returns", parent_folder_id=folder.id)
    assert [s.id for s in text.folder_path] == [folder.id]
    md = docs.create_from_file(file=("notes.md", b"# Notes\n\nThe lighthouse opens at dawn.", "text/markdown"), name="Notes")
    page = docs.create_from_url(url=_serve_page("<html><body><h1>Guide</h1><p>Kayaks launch from pier nine.</p></body></html>"))
    added = client.conversational_ai.add_to_knowledge_base(file=("old.txt", b"Legacy upload about harbours.", "text/plain"))
    got = docs.get(text.id)
    assert got.type == "text" and got.name == "Returns" and "45 days" in got.extracted_inner_html
    assert got.folder_path[0].id == folder.id
    assert docs.get(md.id).filename == "notes.md"
    assert docs.get(page.id).url.endswith("/guide")
    renamed = docs.update(text.id, name="Returns policy")
    assert renamed.name == "Returns policy"
    assert "<h1>Returns</h1>" in docs.get_content(text.id)
    listed = kb.list(page_size=2, types=["text", "file"], sort_by="name", sort_direction="asc")
    assert len(listed.documents) == 2 and listed.has_more and listed.next_cursor
    names = [d.name for d in listed.documents]
    while listed.has_more:
        listed = kb.list(page_size=2, types=["text", "file"], sort_by="name", sort_direction="asc", cursor=listed.next_cursor)
        names += [d.name for d in listed.documents]
    assert names == sorted(names) and "Returns policy" in names, names
    inside = kb.list(parent_folder_id=folder.id)
    assert [d.id for d in inside.documents] == [text.id]
    chunks = docs.chunks.list(text.id, embedding_model="e5_mistral_7b_instruct")
    assert chunks.chunks and "45 days" in chunks.chunks[0].content
    assert docs.chunk.get(text.id, chunks.chunks[0].id).content == chunks.chunks[0].content
    found = kb.search(query="where do kayaks launch")
    hit = next(r for r in found.results if r.document.id == page.id)
    assert any(seg.is_hit for seg in hit.search_snippet), hit
    agent_id = agents.create(name="kb user", conversation_config={"agent": {"prompt": {"knowledge_base": [
        {"type": "folder", "name": "SDK folder", "id": folder.id}, {"type": "file", "name": "Notes", "id": md.id}]}}}).agent_id
    assert [a.id for a in docs.get_agents(text.id).agents] == [agent_id]
    assert docs.get_agents(text.id, dependent_type="direct").agents == []
    assert [a.id for a in docs.get_bulk_agents(document_ids=[md.id]).agents] == [agent_id]
    assert agents.knowledge_base.size(agent_id).number_of_pages > 0
    summaries = docs.summaries.get(document_ids=[md.id, "kbdoc_missing"])
    assert summaries[md.id].status == "success" and summaries[md.id].data.dependent_agents[0].id == agent_id
    assert summaries["kbdoc_missing"].status == "failure"
    kb.document.update_file(md.id, file=("notes.md", b"# Notes\n\nThe lighthouse opens at noon.", "text/markdown"))
    assert "noon" in docs.get(md.id).extracted_inner_html
    assert "pier nine" in kb.document.refresh(page.id).extracted_inner_html
    docs.move(text.id, move_to=None)
    docs.bulk_move(document_ids=[text.id, added.id], move_to=folder.id)
    assert sorted(d.id for d in kb.list(parent_folder_id=folder.id).documents) == sorted([text.id, added.id])
    try:
        docs.delete(md.id)
        raise AssertionError("a document in use was deleted")
    except ApiError as e:
        assert e.status_code == 409, e
    result = docs.bulk_delete(document_ids=[page.id, folder.id], force=True)
    assert result[page.id].status == "success" and result[folder.id].status == "success"
    docs.delete(md.id, force=True)
    assert agents.get(agent_id).conversation_config.agent.prompt.knowledge_base == []
    try:
        docs.get(text.id)
        raise AssertionError("a document of a deleted folder is still readable")
    except ApiError as e:
        assert e.status_code == 404, e


def test_knowledge_base_crawls_and_embedding_indexes():
    kb = client.conversational_ai.knowledge_base
    site = _serve_page('<html><body><h1>Tram</h1><p>The tram stops at the harbour.</p><a href="/guide">again</a></body></html>')
    job = kb.crawl_jobs.create(url=site, max_depth=2, max_pages=5)
    assert job.status == "queued" and job.root_folder_id
    for _ in range(200):
        got = kb.crawl_jobs.get(job.id)
        if got.status in ("succeeded", "failed"):
            break
        time.sleep(0.05)
    assert got.status == "succeeded" and got.pages_scraped == 1, got
    assert job.id in [j.id for j in kb.crawl_jobs.list(page_size=5).crawl_jobs]
    kb.crawl_jobs.cancel(job.id)
    crawled = kb.list(parent_folder_id=job.root_folder_id).documents
    assert len(crawled) == 1 and crawled[0].type == "url"

    doc = kb.documents.create_from_text(text="Trams run every ten minutes from the harbour.", name="Trams")
    index = kb.document.compute_rag_index(doc.id, model="e5_mistral_7b_instruct")
    assert index.model == "e5_mistral_7b_instruct" and index.id
    for _ in range(200):
        indexes = client.conversational_ai.get_document_rag_indexes(doc.id).indexes
        if indexes and indexes[0].status == "succeeded":
            break
        time.sleep(0.05)
    assert indexes[0].status == "succeeded" and indexes[0].progress_percentage == 100, indexes
    batch = kb.get_or_create_rag_indexes(items=[{"document_id": doc.id, "create_if_missing": False, "model": "e5_mistral_7b_instruct"}])
    assert batch[doc.id].status == "success"
    overview = client.conversational_ai.rag_index_overview()
    assert overview.total_used_bytes > 0 and overview.models[0].model == "e5_mistral_7b_instruct"
    deleted = client.conversational_ai.delete_document_rag_index(doc.id, index.id)
    assert deleted.id == index.id
    assert client.conversational_ai.get_document_rag_indexes(doc.id).indexes == []


def test_versions_branches_drafts_merges_and_deployments():
    branches = agents.branches
    agent_id = agents.create(name="sdk versions", conversation_config={"agent": {"first_message": "v1", "prompt": {"prompt": "p1"}}}).agent_id
    first = agents.get(agent_id)
    main, v1 = first.main_branch_id, first.version_id
    assert v1.startswith("agtvrsn_") and first.branch_id == main
    second = agents.update(agent_id, conversation_config={"agent": {"first_message": "v2"}}, version_description="second")
    assert second.version_id != v1
    assert agents.get(agent_id, version_id=v1).conversation_config.agent.first_message == "v1"
    meta = agents.versions.get(agent_id, second.version_id)
    assert meta.seq_no_in_branch == 2 and meta.version_description == "second"
    assert meta.parents.in_branch_parent_id == v1

    created = branches.create(agent_id, parent_version_id=second.version_id, name="sdk branch", description="d",
                              conversation_config={"agent": {"prompt": {"prompt": "branch prompt"}}})
    branch = created.created_branch_id
    assert created.created_version_id.startswith("agtvrsn_")
    on_branch = agents.get(agent_id, branch_id=branch)
    assert on_branch.branch_id == branch and on_branch.conversation_config.agent.prompt.prompt == "branch prompt"
    updated = agents.update(agent_id, branch_id=branch, conversation_config={"agent": {"first_message": "from branch"}})
    assert updated.branch_id == branch and updated.conversation_config.agent.first_message == "from branch"
    listed = branches.list(agent_id, include_commit_status=True)
    summary = next(b for b in listed.results if b.id == branch)
    assert summary.commits_ahead == 2 and summary.commits_behind == 0 and summary.parent_branch_id == main
    got = branches.get(agent_id, branch)
    assert got.name == "sdk branch" and got.parent_branch.id == main and got.most_recent_versions
    renamed = branches.update(agent_id, branch, name="sdk renamed", description="new")
    assert renamed.name == "sdk renamed"

    drafted = agents.drafts.create(agent_id, branch_id=branch, conversation_config={"agent": {"first_message": "drafted"}},
                                   platform_settings={}, workflow={}, name="sdk versions")
    assert drafted is not None
    assert next(b for b in branches.list(agent_id).results if b.id == branch).draft_exists is True
    agents.drafts.delete(agent_id, branch_id=branch)
    assert next(b for b in branches.list(agent_id).results if b.id == branch).draft_exists is False

    agents.update(agent_id, conversation_config={"agent": {"language": "de"}})
    preview = branches.preview_rebase(agent_id, branch)
    assert preview.conversation_config.agent.language == "de", preview.conversation_config.agent
    assert preview.conversation_config.agent.first_message == "from branch"
    branches.rebase(agent_id, branch)
    assert agents.get(agent_id, branch_id=branch).conversation_config.agent.language == "de"

    merge_preview = branches.preview_merge(agent_id, branch, target_branch_id=main)
    assert merge_preview.overridden_fields == [] and merge_preview.conversation_config.agent.first_message == "from branch"
    branches.merge(agent_id, branch, target_branch_id=main, archive_source_branch=False)
    assert agents.get(agent_id).conversation_config.agent.prompt.prompt == "branch prompt"

    deployed = agents.deployments.create(agent_id, deployment_request={"requests": [
        {"branch_id": main, "deployment_strategy": {"type": "percentage", "traffic_percentage": 0.5}},
        {"branch_id": branch, "deployment_strategy": {"type": "percentage", "traffic_percentage": 0.5}},
    ]})
    assert deployed.traffic_percentage_branch_id_map == {main: 0.5, branch: 0.5}
    history = agents.deployments.list(agent_id)
    assert history.results[0].is_active and history.results[0].traffic_percentage_branch_id_map[branch] == 0.5
    try:
        agents.deployments.create(agent_id, deployment_request={"requests": [
            {"branch_id": main, "deployment_strategy": {"type": "percentage", "traffic_percentage": 0.3}}]})
        raise AssertionError("a split that is not the whole traffic was accepted")
    except ApiError as e:
        assert e.status_code == 422
    archived = branches.update(agent_id, branch, is_archived=True)
    assert archived.is_archived is True
    assert next(b for b in branches.list(agent_id).results if b.id == main).current_live_percentage == 1.0


def _receiver():
    """A webhook receiver on loopback: returns its URL and the (body, signature) it got."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    got = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the stdlib's name
            body = self.rfile.read(int(self.headers["content-length"])).decode()
            got.append((body, self.headers["ElevenLabs-Signature"]))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/post-call", got


def test_settings_webhooks_and_a_signed_post_call_delivery():
    from elevenlabs import ConvAiWebhooks, WebhookHmacSettings
    from elevenlabs.conversational_ai.dashboard.settings.types import (
        PatchConvAiDashboardSettingsRequestChartsItem_CallSuccess,
    )

    url, got = _receiver()
    created = client.webhooks.create(settings=WebhookHmacSettings(name="CRM", webhook_url=url))
    assert created.webhook_id and created.webhook_secret, created
    settings = client.conversational_ai.settings
    updated = settings.update(
        webhooks=ConvAiWebhooks(post_call_webhook_id=created.webhook_id, events=["transcript"]),
        rag_retention_period_days=7,
    )
    assert updated.webhooks.post_call_webhook_id == created.webhook_id, updated
    assert settings.get().rag_retention_period_days == 7
    dashboard = client.conversational_ai.dashboard.settings
    charts = dashboard.update(
        charts=[PatchConvAiDashboardSettingsRequestChartsItem_CallSuccess(name="Success")]
    ).charts
    assert [c.name for c in charts] == ["Success"], charts
    listed = client.webhooks.list(include_usages=True).webhooks
    mine = [w for w in listed if w.webhook_id == created.webhook_id]
    assert mine and mine[0].usage[0].usage_type == "ConvAI Settings", listed
    try:
        _live(os.environ["COLLOQUY_PUBLIC_AGENT"], requires_auth=False)
        deadline = time.time() + 10
        while not got and time.time() < deadline:
            time.sleep(0.05)
        assert got, "the post-call webhook was called"
        body, signature = got[0]
        event = client.webhooks.construct_event(body, signature, created.webhook_secret)
        assert event["type"] == "post_call_transcription", event
        assert event["data"]["agent_id"] == os.environ["COLLOQUY_PUBLIC_AGENT"]
        # The webhook waited for the analysis, and the SDK reads it back.
        assert event["data"]["analysis"]["call_summary_title"] == "A fake call", event
        conversation_id = event["data"]["conversation_id"]
        conversations = client.conversational_ai.conversations
        summary = conversations.get_summary(conversation_id, max_messages=200)
        assert summary.call_summary_title == "A fake call", summary
        assert summary.transcript_summary == "The user and the agent talked.", summary
        assert any(m.role == "user" for m in summary.messages or []), summary
        ran = conversations.analysis.run(conversation_id)
        assert ran.analysis.transcript_summary == "The user and the agent talked.", ran.analysis
        try:
            conversations.analysis.run_evaluation(conversation_id, evaluation_id="nope")
            raise AssertionError("an unknown criterion was run")
        except ApiError as e:
            assert e.status_code == 422, e
        try:
            client.webhooks.construct_event(body, signature, "wsec_not_it")
            raise AssertionError("a wrong secret verified")
        except ApiError as e:
            assert e.status_code == 400
    finally:
        settings.update(webhooks=ConvAiWebhooks(post_call_webhook_id=None))
        client.webhooks.update(created.webhook_id, is_disabled=True, name="CRM (off)")
        assert client.webhooks.delete(created.webhook_id).status == "ok"


def test_bad_key_is_401():
    bad = ElevenLabs(api_key="sk_wrong", base_url=URL)
    try:
        bad.conversational_ai.agents.list()
        raise AssertionError("accepted a wrong key")
    except ApiError as e:
        assert e.status_code == 401


def main():
    tests = [(name, fn) for name, fn in sorted(globals().items()) if name.startswith("test_")]
    failed = 0
    for name, fn in tests:
        try:
            fn()
            print(f"ok   {name}")
        except Exception:  # noqa: BLE001 - report every failure and carry on
            failed += 1
            print(f"FAIL {name}")
            traceback.print_exc()
    print(f"python-sdk: {len(tests) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
