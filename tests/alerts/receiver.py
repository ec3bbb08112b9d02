"""Webhook receiver for the alert integration tests (tests/alerts).

The Rust tests spawn it as `.venv-sdk/bin/python tests/alerts/receiver.py` with a piped stdin,
read the first stdout line `listening http://127.0.0.1:PORT`, point DriftBalloon's alert webhooks
at that address, and inspect what arrived. Signatures are checked with the `standardwebhooks`
package, so the server's signing is verified by an implementation independent of its own.
The process exits when its stdin reaches EOF, so it never outlives the test that spawned it.

Control API (JSON):
  POST /_control/config   {"secrets": ["whsec_..."], "plan": [500, 410], "hang_first": 0,
                           "retry_after": "2"|null}  -> {"ok": true}; omitted fields keep their value.
      secrets: a webhook verifies if it verifies with any of them.
      plan: status codes for successive webhook requests (each pops one; empty -> 200).
      hang_first: the next N webhook requests are held 60 s unanswered (then get 200, plan untouched).
      retry_after: Retry-After header value added to non-2xx answers taken from the plan.
  GET  /_control/received -> {"requests": [{"path", "headers" (lowercased names), "body",
                           "json", "verified", "verify_error", "received_at", "answered"}, ...]}
Any other POST path is a webhook request.
"""

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook

HANG_SECONDS = 60
lock = threading.Lock()
state = {"secrets": [], "plan": [], "hang_first": 0, "retry_after": None, "requests": []}


def verify(body, headers):
    """Returns (verified, error): verified if any configured secret accepts the request."""
    with lock:
        secrets = list(state["secrets"])
    if not secrets:
        return False, "no secrets configured"
    errors = []
    for secret in secrets:
        try:
            Webhook(secret).verify(body, headers, json_parse=False)
            return True, None
        except Exception as e:  # malformed headers raise ValueError etc., not only WebhookVerificationError
            errors.append(f"{type(e).__name__}: {e}")
    return False, "; ".join(dict.fromkeys(errors))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                chunk = self.rfile.read(size + 2)[:size]
                if size == 0:
                    break
                chunks.append(chunk)
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def answer(self, status, payload, extra_headers=()):
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra_headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (e.g. timed out on a hanging request)
            self.close_connection = True

    def do_GET(self):
        if self.path == "/_control/received":
            with lock:
                payload = json.loads(json.dumps({"requests": state["requests"]}))
            self.answer(200, payload)
        else:
            self.answer(404, {"error": "not found"})

    def do_POST(self):
        body = self.read_body()
        if self.path == "/_control/config":
            try:
                config = json.loads(body or b"{}")
                if not isinstance(config, dict):
                    raise ValueError("config must be a JSON object")
            except ValueError as e:
                return self.answer(400, {"error": str(e)})
            with lock:
                for key in ("secrets", "plan", "hang_first", "retry_after"):
                    if key in config:
                        state[key] = list(config[key]) if key in ("secrets", "plan") else config[key]
            return self.answer(200, {"ok": True})
        if self.path.startswith("/_control"):
            return self.answer(404, {"error": "unknown control endpoint"})
        self.webhook(body)

    def webhook(self, body):
        headers = {name.lower(): value for name, value in self.headers.items()}
        text = body.decode("utf-8", errors="replace")
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        verified, verify_error = verify(body, headers)
        record = {"path": self.path, "headers": headers, "body": text, "json": parsed,
                  "verified": verified, "verify_error": verify_error,
                  "received_at": time.time(), "answered": None}
        with lock:
            state["requests"].append(record)
            hang = state["hang_first"] > 0
            if hang:
                state["hang_first"] -= 1
                status = 200
            else:
                status = state["plan"].pop(0) if state["plan"] else 200
            retry_after = state["retry_after"]
        if hang:
            time.sleep(HANG_SECONDS)
        extra = []
        if not 200 <= status < 300 and retry_after is not None and not hang:
            extra.append(("Retry-After", str(retry_after)))
        with lock:
            record["answered"] = status
        ok = 200 <= status < 300
        self.answer(status, {"received": True} if ok else {"error": "planned failure"}, extra)


def exit_on_stdin_eof():
    while sys.stdin.buffer.read(4096):
        pass
    os._exit(0)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"listening http://127.0.0.1:{server.server_address[1]}", flush=True)
    threading.Thread(target=exit_on_stdin_eof, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
