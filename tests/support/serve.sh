# Sourced by the end-to-end test scripts (tests/compat/run, tests/dashboard/run): starts, on
# loopback, the deterministic fakes (tests/compat/fake_services.py: an OpenAI-compatible LLM and
# a webhook target), the Python MCP test server over SSE, and a fresh debug server in a temp
# directory; exports their URLs and stops them all on exit.
#
# `SERVE_EXTRA_TOML`, when set, is added to the server's colloquy.toml; exported variables
# (COLLOQUY_ASR_URL, ...) reach the server. With `COLLOQUY_BUILT` set (scripts/test, after its
# build) target/debug/colloquy is used as it is, not built first.
#
# After `serve_all`: $work (the server's directory), $key (its admin key), COLLOQUY_URL,
# COLLOQUY_KEY, COLLOQUY_FAKES_URL, COLLOQUY_MCP_URL.

serve_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until a file has content (a child printing its port).
wait_for_file() {
  for _ in $(seq 1 100); do [ -s "$1" ] && return 0; sleep 0.1; done
  echo "timed out waiting for $1" >&2
  return 1
}

serve_all() {
  [ -n "${COLLOQUY_BUILT:-}" ] || cargo build --quiet --locked -p colloquy
  work=$(mktemp -d)
  key="sk_e2e_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  local port
  port=$(free_port)
  python3 -u "$serve_root/tests/compat/fake_services.py" >"$work/fakes.port" &
  serve_pids="$!"
  wait_for_file "$work/fakes.port"
  local fakes_url="http://127.0.0.1:$(head -n1 "$work/fakes.port")"
  "$serve_root/target/mcp-venv/bin/python" -u "$serve_root/crates/colloquy/tests/api/mcp_server.py" sse >"$work/mcp.port" 2>"$work/mcp.log" &
  serve_pids="$serve_pids $!"
  wait_for_file "$work/mcp.port"
  printf '[embeddings.providers.fake]\nkind = "openai"\nbase_url = "%s/v1"\n\n[[embeddings.routes]]\nmodel = "e5_mistral_7b_instruct"\nprovider = "fake"\nprovider_model = "bag-of-words"\n' "$fakes_url" >"$work/colloquy.toml"
  printf '%s\n' "${SERVE_EXTRA_TOML:-}" >>"$work/colloquy.toml"
  (cd "$work" && COLLOQUY_BOOTSTRAP_API_KEY="$key" COLLOQUY_WEBHOOK_ALLOW=127.0.0.1 OPENAI_BASE_URL="$fakes_url/v1" OPENAI_API_KEY=sk-fake \
    RUST_LOG=warn exec "$serve_root/target/debug/colloquy" serve --listen "127.0.0.1:$port" >"$work/server.log" 2>&1) &
  serve_pids="$serve_pids $!"
  trap 'kill $serve_pids 2>/dev/null || true; wait $serve_pids 2>/dev/null || true; rm -rf "$work"' EXIT
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  export COLLOQUY_URL="http://127.0.0.1:$port" COLLOQUY_KEY="$key" COLLOQUY_FAKES_URL="$fakes_url"
  export COLLOQUY_MCP_URL="http://127.0.0.1:$(head -n1 "$work/mcp.port")/sse"
}

# `colloquy keys create ...` against the running server's database.
server_key() {
  (cd "$work" && "$serve_root/target/debug/colloquy" keys create "$@")
}
