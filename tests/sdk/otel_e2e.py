"""An app instrumented only with OpenTelemetry (no Fallom or DriftBalloon SDK) exporting
spans with the real OTLP/HTTP protobuf exporter. Checks that GenAI spans arrive with model and
token usage parsed and that their completion text becomes drift samples.

Environment: API_KEY, SERVER_URL. Exits non-zero on any failure.
"""

import json
import os
import time

import httpx
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

KEY = os.environ["API_KEY"]
BASE = os.environ["SERVER_URL"]
ANSWERS = [
    "Your order ships within two business days.",
    "Refunds reach your card in five to seven days.",
    "You can change the delivery address until the parcel leaves.",
]
SPANS = 36


class CountingExporter(OTLPSpanExporter):
    """The stock exporter, remembering whether every export succeeded."""

    results = []

    def export(self, spans):
        result = super().export(spans)
        self.results.append(result)
        return result


def main():
    exporter = CountingExporter(
        endpoint=f"{BASE}/v1/traces",
        headers={"Authorization": f"Bearer {KEY}"},
        compression=Compression.Gzip,
    )
    provider = TracerProvider(resource=Resource.create({"service.name": "shop-assistant"}))
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=10))
    tracer = provider.get_tracer("shop.llm")

    trace_ids = []
    for i in range(SPANS):
        with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT) as span:
            span.set_attribute("gen_ai.operation.name", "chat")
            span.set_attribute("gen_ai.system", "openai")
            span.set_attribute("gen_ai.request.model", "gpt-4o-mini")
            span.set_attribute("gen_ai.response.model", "gpt-4o-mini-2024-07-18")  # fixed-date: a model id
            span.set_attribute("gen_ai.prompt.name", "order-faq")
            span.set_attribute("gen_ai.usage.input_tokens", 40 + i)
            span.set_attribute("gen_ai.usage.output_tokens", 12)
            span.set_attribute("session.id", f"otel-session-{i % 3}")
            span.set_attribute("gen_ai.input.messages", json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": f"question {i}"}]}]))
            span.set_attribute("gen_ai.output.messages", json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": ANSWERS[i % 3]}],
                  "finish_reason": "stop"}]))
            span.set_status(Status(StatusCode.OK))
            trace_ids.append(format(span.get_span_context().trace_id, "032x"))
    # Content in span events, as GenAI instrumentations following the 2024 conventions send it.
    with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT) as span:
        span.set_attribute("gen_ai.request.model", "gpt-4o-mini")
        span.set_attribute("gen_ai.prompt.name", "order-faq-events")
        span.add_event("gen_ai.content.prompt", {"gen_ai.prompt": json.dumps([{"role": "user", "content": "Hi?"}])})
        span.add_event("gen_ai.content.completion",
                       {"gen_ai.completion": json.dumps([{"role": "assistant", "content": ANSWERS[0]}])})
        events_trace = format(span.get_span_context().trace_id, "032x")
    # One span that failed and one without any content: stored, not sampled.
    with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT) as span:
        span.set_attribute("gen_ai.request.model", "gpt-4o-mini")
        span.set_status(Status(StatusCode.ERROR, "rate limited"))
        failed_trace = format(span.get_span_context().trace_id, "032x")
    assert provider.force_flush(10_000), "flush timed out"
    provider.shutdown()
    assert exporter.results and all(r == SpanExportResult.SUCCESS for r in exporter.results), exporter.results

    client = httpx.Client(base_url=BASE, headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
    trace = client.get(f"/api/v1/traces/{trace_ids[5]}").json()
    span = trace["spans"][0]
    assert span["source"] == "otlp" and span["kind"] == "llm", span
    assert span["model"] == "gpt-4o-mini-2024-07-18", span  # fixed-date: a model id
    assert span["usage"] == {"input_tokens": 45, "output_tokens": 12, "total_tokens": 57}, span
    assert span["response_text"] == ANSWERS[5 % 3] and span["session_id"] == "otel-session-2", span
    assert trace["resources"][str(span["resource_id"])]["service.name"] == "shop-assistant", trace
    assert span["attributes"]["otel.scope.name"] == "shop.llm", span
    assert span["sample_id"] is not None, span

    from_events = client.get(f"/api/v1/traces/{events_trace}").json()["spans"][0]
    assert from_events["response_text"] == ANSWERS[0] and "Hi?" in from_events["request"], from_events
    assert client.get("/api/v1/prompts/order-faq-events").json()["samples"]["total"] == 1

    failed = client.get(f"/api/v1/traces/{failed_trace}").json()["spans"][0]
    assert (failed["status"], failed["error_message"], failed["sample_id"]) == ("ERROR", "rate limited", None), failed
    errors = client.get("/api/v1/traces?status=ERROR").json()["traces"]
    assert [t["trace_id"] for t in errors] == [failed_trace], errors

    # Every completion became a sample of the prompt named by gen_ai.prompt.name, and the
    # baseline learns from them like from logged samples.
    deadline = time.time() + 60
    while True:
        prompt = client.get("/api/v1/prompts/order-faq").json()
        if prompt.get("samples", {}).get("pending") == 0 or time.time() > deadline:
            break
        time.sleep(0.2)
    assert prompt["samples"]["total"] == SPANS, prompt
    assert prompt["samples"]["pending"] == 0, prompt
    assert prompt["baseline_status"] == "ready", prompt
    print("otel: ok")


if __name__ == "__main__":
    main()
