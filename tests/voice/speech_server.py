"""An OpenAI-compatible speech server on loopback, built on real speech engines with no cloud:

- POST /v1/audio/transcriptions recognizes the uploaded WAV file with PocketSphinx (its PyPI
  wheel ships the en-US model), constrained to a small grammar of the test phrases
  (PHRASES): free decoding of synthetic speech is unreliable, a grammar makes it exact.
- POST /v1/audio/speech speaks the input with Debian's espeak-ng and answers OpenAI's `pcm`
  (24 kHz, 16-bit, mono) or a WAV file, as `response_format` asks.

Prints its port, then serves until killed. Every request is appended to the file named by the
first argument (one JSON line each), for the test to read.
"""

import warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)
import audioop  # noqa: E402 - deprecated in 3.11, present until 3.13; Debian 12 has 3.11
import io
import json
import subprocess
import sys
import tempfile
import threading
import wave
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pocketsphinx import Decoder

PHRASES = [
    "hello there",
    "check my order status",
    "what is the weather in paris",
    "stop please",
    "goodbye",
]

GRAMMAR = "#JSGF V1.0;\ngrammar phrases;\npublic <phrase> = " + " | ".join(PHRASES) + ";\n"
LOG = sys.argv[1] if len(sys.argv) > 1 else None


def decoder():
    with tempfile.NamedTemporaryFile("w", suffix=".jsgf", delete=False) as f:
        f.write(GRAMMAR)
    return Decoder(samprate=16000, jsgf=f.name, loglevel="ERROR")


DECODER = decoder()
DECODER_LOCK = threading.Lock()


def pcm16k(wav_bytes):
    """The file's audio as 16 kHz 16-bit mono PCM, and its original rate."""
    with wave.open(io.BytesIO(wav_bytes)) as w:
        rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
        pcm = w.readframes(w.getnframes())
    if channels > 1:
        pcm = audioop.tomono(pcm, width, 0.5, 0.5)
    if width != 2:
        pcm = audioop.lin2lin(pcm, width, 2)
    if rate != 16000:
        pcm, _ = audioop.ratecv(pcm, 2, 1, rate, 16000, None)
    return pcm, rate


def transcribe(pcm):
    # PocketSphinx finalizes a phrase's last word only after about a second of silence, more
    # than a caller that trims its utterances sends: it gets that silence here.
    pcm = bytes(16000) + pcm + bytes(32000)
    with DECODER_LOCK:
        DECODER.start_utt()
        DECODER.process_raw(pcm, full_utt=True)
        DECODER.end_utt()
        hyp = DECODER.hyp()
        return hyp.hypstr if hyp else ""


def speak(text, response_format):
    wav = subprocess.run(["espeak-ng", "--stdout", "-v", "en-us"], input=text.encode(), capture_output=True, check=True).stdout
    with wave.open(io.BytesIO(wav)) as w:
        rate = w.getframerate()
        pcm = w.readframes(w.getnframes())
    if response_format == "wav":
        return "audio/wav", wav
    pcm, _ = audioop.ratecv(pcm, 2, 1, rate, 24000, None)
    return "audio/pcm", pcm


def log(entry):
    if LOG:
        with open(LOG, "a") as f:
            f.write(json.dumps(entry) + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.path == "/v1/audio/transcriptions":
            message = BytesParser(policy=HTTP).parsebytes(
                b"content-type: " + self.headers["content-type"].encode() + b"\r\n\r\n" + body
            )
            fields = {part.get_param("name", header="content-disposition"): part.get_payload(decode=True) for part in message.iter_parts()}
            try:
                pcm, rate = pcm16k(fields["file"])
            except Exception as e:  # noqa: BLE001 - any unreadable upload is the client's error
                return self._send(400, "application/json", json.dumps({"error": {"message": f"not a WAV file: {e}"}}).encode())
            text = transcribe(pcm)
            log({"transcription": text, "rate": rate, "seconds": len(pcm) / 32000, "model": (fields.get("model") or b"").decode()})
            self._send(200, "application/json", json.dumps({"text": text}).encode())
        elif self.path == "/v1/audio/speech":
            request = json.loads(body)
            log({"speech": request})
            content_type, audio = speak(request["input"], request.get("response_format", "mp3"))
            self._send(200, content_type, audio)
        else:
            self._send(404, "text/plain", b"not found")

    def _send(self, status, content_type, data):
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
