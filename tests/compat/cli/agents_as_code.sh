#!/usr/bin/env bash
# The agents-as-code flow of the official CLI (@elevenlabs/cli) against a running Colloquy:
# init, add an agent from each template, push, pull, push again. The CLI checks after each push
# that every field it sent was persisted and warns otherwise; any such warning fails the test.
# Branches: a branch is pulled into its own file (--all-branches) and pushed to alone.
# Needs: ELEVENLABS_BIN, COLLOQUY_URL, COLLOQUY_KEY.
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export ELEVENLABS_API_KEY="$COLLOQUY_KEY" ELEVENLABS_BASE_URL="$COLLOQUY_URL"
cli() { "$ELEVENLABS_BIN" "$@" 2>&1 | tee -a "$work/all.log"; }

passed=0
failed=0
check() {
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "ok   $name"; else failed=$((failed + 1)); echo "FAIL $name"; fi
}

cli agents init >/dev/null
for template in default minimal voice-only text-only customer-service assistant; do
  cli agents add "cli $template" --template "$template" >/dev/null
done
check "every agent was created" test "$(grep -c '"id": "agent_' agents.json)" -eq 6
cli agents push >/dev/null
cli agents pull --update --yes >/dev/null
cli agents push >/dev/null
check "pushes persisted every field" bash -c "! grep -q 'were not persisted' '$work/all.log'"
check "no errors" bash -c "! grep -qi 'error' '$work/all.log'"

# A field edited locally reaches the server and comes back on pull.
config=$(ls agent_configs/cli-default*.json | head -n1)
python3 - "$config" <<'PY'
import json, sys
path = sys.argv[1]
doc = json.load(open(path))
doc["conversation_config"]["agent"]["first_message"] = "Edited locally"
doc["conversation_config"]["agent"]["prompt"]["temperature"] = 0.0
json.dump(doc, open(path, "w"), indent=4)
PY
cli agents push >/dev/null
agent_id=$(python3 -c "import json; print([a['id'] for a in json.load(open('agents.json'))['agents'] if a['config'] == '$config'][0])")
check "edit visible through the API" bash -c "'$ELEVENLABS_BIN' agents get --agent-id '$agent_id' --format json | grep -q 'Edited locally'"
check "still no persistence warning" bash -c "! grep -q 'were not persisted' '$work/all.log'"

# Tests as code: add from templates, edit one locally, push, pull.
for template in basic-llm conversation-flow customer-service; do
  cli tests add "cli test $template" --template "$template" >/dev/null
done
check "every test was created" test "$(grep -c '"id": "test_' tests.json)" -eq 3
test_config=$(ls test_configs/cli-test-basic-llm*.json | head -n1)
python3 - "$test_config" <<'PY'
import json, sys
path = sys.argv[1]
doc = json.load(open(path))
doc["success_condition"] = "Edited locally by the CLI test"
json.dump(doc, open(path, "w"), indent=4)
PY
cli tests push >/dev/null
test_id=$(python3 -c "import json; print([t['id'] for t in json.load(open('tests.json'))['tests'] if t['config'] == '$test_config'][0])")
check "test edit visible through the API" bash -c "curl -fs -H 'xi-api-key: $COLLOQUY_KEY' '$COLLOQUY_URL/v1/convai/agent-testing/$test_id' | grep -q 'Edited locally by the CLI test'"
cli tests pull --update --yes >/dev/null
check "pulled test keeps the edit" grep -q "Edited locally by the CLI test" "$test_config"
check "tests: no errors" bash -c "! grep -qi 'error' '$work/all.log'"

# `agents test` runs an agent's attached tests and polls the invocation: exit 0 only when they
# pass. The fake judge fails a reply to "FAIL" and passes the others.
failing_test=$(curl -fs -H "xi-api-key: $COLLOQUY_KEY" -H 'content-type: application/json' \
  -d '{"name": "cli failing", "success_condition": "answers", "chat_history": [{"role": "user", "message": "FAIL", "time_in_call_secs": 0}]}' \
  "$COLLOQUY_URL/v1/convai/agent-testing/create" | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
python3 - "$test_id" "$failing_test" <<'PY'
import json, sys
passing, failing = sys.argv[1], sys.argv[2]
for path, tests in [("agent_configs/cli-default.json", [passing]), ("agent_configs/cli-minimal.json", [passing, failing])]:
    doc = json.load(open(path))
    doc.setdefault("platform_settings", {}).setdefault("testing", {})["attached_tests"] = [{"test_id": t} for t in tests]
    json.dump(doc, open(path, "w"), indent=4)
PY
cli agents push >/dev/null
check "agents test passes" "$ELEVENLABS_BIN" agents test "cli default"
check "agents test fails for a failing test" bash -c "! '$ELEVENLABS_BIN' agents test 'cli minimal' >/dev/null 2>&1"

# Branches as code: a branch made through the API is pulled beside its agent, edited locally and
# pushed to that branch alone, as a version with the push's description; main keeps its config.
branch_id=$(curl -fs -H "xi-api-key: $COLLOQUY_KEY" "$COLLOQUY_URL/v1/convai/agents/$agent_id" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["version_id"])' \
  | xargs -I{} curl -fs -H "xi-api-key: $COLLOQUY_KEY" -H 'content-type: application/json' \
      -d '{"parent_version_id": "{}", "name": "staging", "description": "from the CLI test"}' \
      "$COLLOQUY_URL/v1/convai/agents/$agent_id/branches" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["created_branch_id"])')
cli agents pull --agent "$agent_id" --all-branches --update --yes >/dev/null
branch_config=$(ls agent_configs/*.staging.json | head -n1)
check "the branch was pulled into its own file" test -f "$branch_config"
check "agents.json records the branch" grep -q "$branch_id" agents.json
python3 - "$branch_config" <<'PY'
import json, sys
path = sys.argv[1]
doc = json.load(open(path))
doc["conversation_config"]["agent"]["first_message"] = "Staged by the CLI"
json.dump(doc, open(path, "w"), indent=4)
PY
cli agents push --version-description "staged from the CLI" >/dev/null
at() { curl -fs -H "xi-api-key: $COLLOQUY_KEY" "$COLLOQUY_URL/v1/convai/agents/$agent_id$1"; }
on_branch=$(at "?branch_id=$branch_id")
on_main=$(at "")
branch_version=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["version_id"])' "$on_branch")
check "the branch head has the edit" grep -q 'Staged by the CLI' <<<"$on_branch"
check "main does not" test "$(grep -c 'Staged by the CLI' <<<"$on_main")" -eq 0
check "the push's description is on the version" grep -q 'staged from the CLI' <<<"$(at "/versions/$branch_version")"
check "branches: no persistence warning or error" bash -c "! grep -qiE 'were not persisted|error' '$work/all.log'"

if [ "$failed" -gt 0 ]; then
  echo "--- CLI output ---"; cat "$work/all.log"
fi
echo "cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
