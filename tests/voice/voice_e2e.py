"""A real speech pipeline end to end, no cloud: espeak-ng speaks the user's words, they are sent
as `user_audio_chunk`s over the conversation WebSocket, Colloquy's voice activity detector ends
the turn, the OpenAI-compatible speech server of speech_server.py recognizes them with
PocketSphinx, the fake LLM calls a webhook tool on them, and the answer comes back as `audio`
synthesized by that server's espeak-ng, or by Colloquy's built-in espeak provider for an agent
whose voice is routed to it. Reads COLLOQUY_URL, COLLOQUY_KEY, COLLOQUY_FAKES_URL and
SPEECH_LOG (the speech server's request log) from the environment.
"""

import base64
import json
import os
import subprocess
import sys
import time
import urllib.request

from websockets.sync.client import connect

BASE = os.environ["COLLOQUY_URL"]
KEY = os.environ["COLLOQUY_KEY"]
FAKES = os.environ["COLLOQUY_FAKES_URL"]
SPEECH_LOG = os.environ["SPEECH_LOG"]
checks, failures = [], []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what, flush=True)
    checks.append(what)
    if not ok:
        failures.append(what)


def api(method, path, body=None):
    request = urllib.request.Request(
        BASE + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"xi-api-key": KEY, "content-type": "application/json"},
    )
    with urllib.request.urlopen(request) as r:
        return json.loads(r.read() or b"{}")


def spoken(text, rate):
    """espeak-ng saying `text`, as 16-bit mono PCM at `rate`, with half a second of silence
    before and a second after (which ends the turn)."""
    wav = subprocess.run(["espeak-ng", "--stdout", "-v", "en-us", text], capture_output=True, check=True).stdout
    raw = subprocess.run(
        ["sox", "-t", "wav", "-", "-t", "raw", "-r", str(rate), "-e", "signed", "-b", "16", "-c", "1", "-", "pad", "0.5", "1.0"],
        input=wav, capture_output=True, check=True,
    ).stdout
    return raw


def speech_requests():
    try:
        with open(SPEECH_LOG) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def converse(agent_id, said):
    """Says `said` to the agent; the events from the start to the audio of its answer."""
    events = []
    with connect(f"{BASE.replace('http', 'ws', 1)}/v1/convai/conversation?agent_id={agent_id}", subprotocols=["convai"]) as ws:
        ws.send(json.dumps({"type": "conversation_initiation_client_data"}))

        def until(pred, timeout=30):
            deadline = time.time() + timeout
            while time.time() < deadline:
                event = json.loads(ws.recv(timeout=deadline - time.time()))
                if event["type"] == "ping":
                    ws.send(json.dumps({"type": "pong", "event_id": event["ping_event"]["event_id"]}))
                    continue
                events.append(event)
                if pred(event):
                    return event
            raise TimeoutError(f"no matching event; got {[e['type'] for e in events]}")

        meta = until(lambda e: e["type"] == "conversation_initiation_metadata")
        rate = int(meta["conversation_initiation_metadata_event"]["user_input_audio_format"].split("_")[1])
        audio = spoken(said, rate)
        step = rate // 10 * 2
        for i in range(0, len(audio), step):
            ws.send(json.dumps({"user_audio_chunk": base64.b64encode(audio[i:i + step]).decode()}))
        answer = until(lambda e: e["type"] == "agent_response" and any(x["type"] == "user_transcript" for x in events))
        turn = answer["agent_response_event"]["event_id"]
        # The answer's audio: wait until a second of silence follows the last piece.
        try:
            until(lambda e: False, timeout=3)
        except TimeoutError:
            pass
        audio_events = [e for e in events if e["type"] == "audio" and e["audio_event"]["event_id"] == turn]
        return meta["conversation_initiation_metadata_event"], events, audio_events


def audio_seconds(audio_events, fmt):
    rate = int(fmt.split("_")[1])
    samples = sum(len(base64.b64decode(e["audio_event"]["audio_base_64"])) // 2 for e in audio_events)
    return samples / rate


def monotonic(audio_events):
    for e in audio_events:
        starts = e["audio_event"]["alignment"]["char_start_times_ms"]
        if any(b < a for a, b in zip(starts, starts[1:])):
            return False
    return True


tool = api("POST", "/v1/convai/tools", {"tool_config": {
    "type": "webhook", "name": "check_order", "description": "The status of an order",
    "api_schema": {"url": f"{FAKES}/weather", "method": "POST",
                   "request_body_schema": {"type": "object", "properties": {"order": {"type": "string", "description": "Order"}}}}}})
agent = api("POST", "/v1/convai/agents/create", {"name": "Voice e2e", "conversation_config": {
    "agent": {"first_message": "", "prompt": {"prompt": "You look up orders.", "llm": "gpt-4o", "tool_ids": [tool["id"]]}},
    "asr": {"user_input_audio_format": "pcm_16000"},
    "tts": {"agent_output_audio_format": "pcm_22050"}}})

meta, events, audio = converse(agent["agent_id"], "check my order status")
transcripts = [e["user_transcription_event"]["user_transcript"] for e in events if e["type"] == "user_transcript"]
check(transcripts == ["check my order status"], f"the spoken words are recognized: {transcripts}")
check(any(e["type"] == "agent_tool_request" and e["agent_tool_request"]["tool_name"] == "check_order" for e in events),
      "the webhook tool is called from a spoken turn")
seconds = audio_seconds(audio, meta["agent_output_audio_format"])
check(1.0 < seconds < 30, f"the answer is spoken in {meta['agent_output_audio_format']}: {seconds:.2f} s")
check(monotonic(audio), "alignment times are in order")
log = speech_requests()
check(any(r.get("transcription") == "check my order status" and r["rate"] == 16000 for r in log),
      "the speech server was sent one 16 kHz WAV file of the utterance")
check(any(r.get("speech", {}).get("response_format") == "pcm" for r in log), "synthesis asked the speech server for pcm")
calls = api("GET", f"/api/tool-calls?executionId={meta['conversation_id']}")
check(any(c["toolName"] == "check_order" for c in calls), "the spoken turn's tool call is in the audit log")

# An agent whose voice is routed to the built-in espeak provider speaks with no server.
espeak_agent = api("POST", "/v1/convai/agents/create", {"name": "Espeak", "conversation_config": {
    "agent": {"first_message": "", "prompt": {"prompt": "p", "llm": "gpt-4o"}},
    "tts": {"voice_id": "espeak", "agent_output_audio_format": "ulaw_8000"}}})
before = len([r for r in speech_requests() if "speech" in r])
meta, events, audio = converse(espeak_agent["agent_id"], "hello there")
answer = [e["agent_response_event"]["agent_response"] for e in events if e["type"] == "agent_response"]
check(answer == ["You said: hello there "] or answer == ["You said: hello there"], f"the agent heard: {answer}")
seconds = len(b"".join(base64.b64decode(e["audio_event"]["audio_base_64"]) for e in audio)) / 8000
check(0.8 < seconds < 10, f"built-in espeak spoke {seconds:.2f} s of µ-law")
check(len([r for r in speech_requests() if "speech" in r]) == before, "without the speech server")

# The conversation was recorded once it ended.
for _ in range(100):
    conversation = api("GET", f"/v1/convai/conversations/{meta['conversation_id']}")
    if conversation["has_audio"]:
        break
    time.sleep(0.1)
check(conversation["has_audio"] and conversation["has_user_audio"] and conversation["has_response_audio"],
      "the conversation was recorded, both sides")

print(f"voice: {len(checks) - len(failures)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
