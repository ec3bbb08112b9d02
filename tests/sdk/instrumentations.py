"""Real OpenTelemetry LLM instrumentations against the server: the real `openai` client calls
a small OpenAI-compatible stub (run here, answering known completions), the instrumentation
under test traces the calls, and the real OTLP/HTTP span and log exporters send them to the
server.

    instrumentations.py SETUP [--privacy]

SETUP is one of:
  openai-v2-events  opentelemetry-instrumentation-openai-v2 in its default mode: content only
                    in gen_ai.user.message / gen_ai.choice log records, sent by the real
                    OTLP/HTTP log exporter (gzip) to /v1/logs (with openai 2.x and
                    opentelemetry-util-genai 0.4b0, the last with this mode)
  openai-v2-details the same with the latest GenAI conventions, event_only: one
                    gen_ai.client.inference.operation.details log record per call
  openai-v2-spans   opentelemetry-instrumentation-openai-v2, content in span attributes
                    (latest GenAI conventions, span_only)
  openinference     openinference-instrumentation-openai
  openllmetry       OpenLLMetry's opentelemetry-instrumentation-openai

Checks: every call's span has the model and the token usage, and there is exactly one drift
sample per call whose text is the stub's completion. With --privacy the project stops capturing
content first and no sample may exist (the Rust test then searches the whole database for the
completions). Environment: DRIFTBALLOON_URL, DRIFTBALLOON_API_KEY.
"""

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import quote

import httpx

SETUP = sys.argv[1]
if SETUP == "openai-v2-events":
    # openai 2.x and opentelemetry-util-genai 0.4b0, the last that emit per-message log events
    # (see scripts/sdk-venv.sh); first on the path, before anything imports them
    sys.path.insert(0, os.path.join(sys.prefix, "openai-v2-legacy"))

URL = os.environ["DRIFTBALLOON_URL"].rstrip("/")
KEY = os.environ["DRIFTBALLOON_API_KEY"]
PRIVACY = "--privacy" in sys.argv
CALLS = 3
MODEL = "gpt-4o-mini"
ANSWERED_MODEL = "gpt-4o-mini-2024-07-18"  # fixed-date: a dated model id, not a time
USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
GPT_4O_MINI_PRICE = (0.15, 0.60)  # config/model-prices.toml, US dollars per million tokens
API = httpx.Client(base_url=URL, headers={"Authorization": f"Bearer {KEY}"}, timeout=30)


def completion(i):
    return f"STUB-COMPLETION-{SETUP}-{i}: your parcel left the depot this morning."


class Stub(BaseHTTPRequestHandler):
    """`POST /v1/chat/completions`, answering the i-th call with completion(i)."""

    calls = 0

    def do_POST(self):  # noqa: N802 (http.server's name)
        request = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        i = Stub.calls
        Stub.calls += 1
        body = json.dumps({
            "id": f"chatcmpl-{i}", "object": "chat.completion", "created": int(time.time()),
            "model": ANSWERED_MODEL if request.get("model") == MODEL else request.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": completion(i)},
                         "finish_reason": "stop", "logprobs": None}],
            "usage": USAGE,
        }).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def instrument(provider, logger_provider):
    if SETUP == "openai-v2-events":
        os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "true"
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=provider, logger_provider=logger_provider)
        return
    if SETUP == "openai-v2-details":
        os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
        os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "event_only"
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=provider, logger_provider=logger_provider)
        return
    if SETUP == "openai-v2-spans":
        os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
        os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "span_only"
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    elif SETUP == "openinference":
        from openinference.instrumentation.openai import OpenAIInstrumentor
    elif SETUP == "openllmetry":
        os.environ["TRACELOOP_TRACE_CONTENT"] = "true"
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor
    else:
        raise SystemExit(f"unknown setup {SETUP!r}")
    OpenAIInstrumentor().instrument(tracer_provider=provider)


def wait_processed(prompt):
    for _ in range(300):
        r = API.get(f"/api/v1/prompts/{quote(prompt, safe='')}")
        if r.status_code == 200 and r.json()["samples"]["pending"] == 0:
            return r.json()
        time.sleep(0.2)
    raise AssertionError(f"{prompt} not processed")


def main():
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if PRIVACY:
        r = API.patch("/api/v1/project", json={"capture_content": False})
        assert r.status_code == 200, r.text
    stub = HTTPServer(("127.0.0.1", 0), Stub)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    service = f"shop-{SETUP}"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = OTLPSpanExporter(endpoint=f"{URL}/v1/traces", headers={"Authorization": f"Bearer {KEY}"})
    provider.add_span_processor(BatchSpanProcessor(exporter))
    logger_provider = LoggerProvider(resource=Resource.create({"service.name": service}))
    log_exporter = OTLPLogExporter(
        endpoint=f"{URL}/v1/logs", headers={"Authorization": f"Bearer {KEY}"}, compression=Compression.Gzip
    )
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
    instrument(provider, logger_provider)

    import openai

    client = openai.OpenAI(base_url=f"http://127.0.0.1:{stub.server_port}/v1", api_key="stub-key")
    for i in range(CALLS):
        answer = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"Where is parcel {i}?"}]
        )
        assert answer.choices[0].message.content == completion(i)
    # the logs go first here, so the server joins them to spans it has not seen yet
    logger_provider.force_flush()
    logger_provider.shutdown()
    provider.force_flush()
    provider.shutdown()

    # the spans: one LLM call each, with its model and usage
    llm_spans = []
    for _ in range(100):
        traces = API.get("/api/v1/traces?limit=100").json()["traces"]
        llm_spans = []
        for t in traces:
            trace = API.get(f"/api/v1/traces/{t['trace_id']}").json()
            for s in trace["spans"]:
                resource = trace["resources"].get(str(s["resource_id"]), {})
                if s["kind"] == "llm" and resource.get("service.name") == service:
                    llm_spans.append(s)
        if len(llm_spans) >= CALLS:
            break
        time.sleep(0.2)
    assert len(llm_spans) == CALLS, f"{len(llm_spans)} LLM spans: {json.dumps(llm_spans)[:2000]}"
    for s in llm_spans:
        assert s["model"] in (MODEL, ANSWERED_MODEL), s
        usage = s["usage"]
        assert (usage["input_tokens"], usage["output_tokens"]) == (11, 7), s
        assert usage["total_tokens"] == 18, s

    # each call's cost at the shipped gpt-4o-mini price (the dated snapshot finds it too), in
    # the span, its trace and the trace list
    call_usd = (11 * GPT_4O_MINI_PRICE[0] + 7 * GPT_4O_MINI_PRICE[1]) / 1e6
    calls_per_trace = {}
    for s in llm_spans:
        assert s["cost"]["status"] == "priced" and abs(s["cost"]["usd"] - call_usd) < 1e-12, s["cost"]
        calls_per_trace[s["trace_id"]] = calls_per_trace.get(s["trace_id"], 0) + 1
    listed = {t["trace_id"]: t for t in API.get("/api/v1/traces?limit=100").json()["traces"]}
    for trace_id, calls in calls_per_trace.items():
        detail = API.get(f"/api/v1/traces/{trace_id}").json()
        for cost in (detail["cost"], listed[trace_id]["cost"]):
            assert cost["status"] == "priced" and abs(cost["usd"] - calls * call_usd) < 1e-12, cost

    # the content events are stored with their call's trace (without a body when capture is off)
    event = {"openai-v2-events": "gen_ai.choice", "openai-v2-details": "gen_ai.client.inference.operation.details"}
    if SETUP in event:
        for s in llm_spans:
            records = API.get(f"/api/v1/traces/{s['trace_id']}/logs").json()["log_records"]
            mine = [r for r in records if r["span_id"] == s["span_id"]]
            assert event[SETUP] in {r["event_name"] for r in mine}, records
            if PRIVACY:
                assert all(r["body"] is None and r["response_text"] is None for r in mine), mine

    prompts = [p["name"] for p in API.get("/api/v1/prompts").json()["prompts"] if p["name"].startswith(service)]
    if PRIVACY:
        assert prompts == [], f"samples were taken with content capture off: {prompts}"
        assert all(s["response_text"] is None and s["request"] is None for s in llm_spans), llm_spans
        print(f"{SETUP} (privacy): {CALLS} spans with model and usage, no content, no sample")
        return
    assert prompts == [f"{service}/chat"] or prompts == [f"{service}/llm"], prompts
    wait_processed(prompts[0])
    samples = API.get(f"/api/v1/prompts/{quote(prompts[0], safe='')}/samples?limit=50").json()["samples"]
    texts = sorted(s["response_text"] for s in samples)
    assert texts == sorted(completion(i) for i in range(CALLS)), texts
    print(f"{SETUP}: {CALLS} spans with model and usage, {CALLS} samples under {prompts[0]!r} equal to the completions")


if __name__ == "__main__":
    main()
