"""End-to-end check of the real `fallom` SDK against a running server.

Environment: FALLOM_API_KEY, SERVER_URL. Usage: fallom_e2e.py main|privacy|down.
- main: model configs (proportions, stickiness, pinning, targeting, fallback), session records,
  traces (send_trace_sync and a wrapped client), custom metrics, prompt templates and A/B tests.
- privacy: the SDK's own privacy mode (FALLOM_CAPTURE_CONTENT=false) sends no content, and the
  server stores the span without a drift sample.
- down: with no server answering, models.get returns the fallback within 2.5 s.
The management calls go through the server's REST API with httpx; everything the app does goes
through the SDK. Exits non-zero on any failure.
"""

import hashlib
import os
import socket
import sys
import time
import uuid

import httpx

KEY = os.environ["FALLOM_API_KEY"]
BASE = os.environ.get("SERVER_URL", "")


def api():
    return httpx.Client(base_url=BASE, headers={"Authorization": f"Bearer {KEY}"}, timeout=10)


def publish(client, path, body):
    r = client.post(path, json=body)
    assert r.status_code == 201, f"{path}: {r.status_code} {r.text}"
    return r.json()


def poll(what, fetch, done, timeout=30.0):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fetch()
        if done(last):
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what}: not seen in {timeout}s; last: {last}")


def bucket_model(variants, session_id):
    """The SDK's documented assignment, recomputed here to check what it returned."""
    h = int.from_bytes(hashlib.md5(session_id.encode()).digest()[:4], "big") % 1_000_000
    cumulative = 0.0
    for v in variants:
        cumulative += float(v["weight"]) * 10000
        if h < cumulative:
            return v["model"]
    return variants[-1]["model"]


class _Obj:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class StandInLLM:
    """Stands in for the LLM provider (no network here): the shape of an OpenAI client whose
    chat.completions.create answers like the real API. The SDK wraps it exactly as it would
    wrap `openai.OpenAI()`."""

    def __init__(self, answer):
        self.answer = answer
        self.chat = _Obj(completions=_Obj(create=self._create))

    def _create(self, **params):
        message = _Obj(content=self.answer, tool_calls=None, function_call=None)
        return _Obj(
            id="chatcmpl-1",
            model=params["model"] + "-2024-08-06",  # fixed-date: a dated model id, not a time
            choices=[_Obj(message=message, finish_reason="stop")],
            usage=_Obj(prompt_tokens=21, completion_tokens=8, total_tokens=29),
        )


def publish_model_configs(client):
    """Published before the SDK starts: it fetches configs at init and then every 30 s."""
    v1 = publish(client, "/api/v1/model-configs", {
        "key": "summarizer",
        "variants": [{"model": "gpt-4o", "weight": 70}, {"model": "claude-3-5-sonnet", "weight": 30}],
    })
    v2 = publish(client, "/api/v1/model-configs", {
        "key": "summarizer",
        "variants": [{"model": "gpt-4o-mini", "weight": 25}, {"model": "claude-3-5-haiku", "weight": 75}],
        "targeting": {
            "enabled": True,
            "individualTargets": [{"field": "customerId", "value": "vip-1", "variantIndex": 0}],
            "rules": [{"conditions": [{"field": "plan", "operator": "in", "value": ["enterprise"]}],
                       "variantIndex": 0}],
        },
    })
    assert (v1["version"], v2["version"]) == (1, 2), (v1, v2)
    publish(client, "/api/v1/model-configs", {
        "key": "sticky-check", "variants": [{"model": "m-a", "weight": 50}, {"model": "m-b", "weight": 50}],
    })


def check_models(client, fallom_models):
    v1 = client.get("/api/v1/model-configs/summarizer/versions/1").json()
    v2_variants = [{"model": "gpt-4o-mini", "weight": 25}, {"model": "claude-3-5-haiku", "weight": 75}]

    # Assignments reach /sessions: a separate config, each session asked for twice.
    for i in range(40):
        for _ in range(2):
            fallom_models.get("sticky-check", f"sc-{i}")

    def summary():
        return client.get("/api/v1/model-configs/sticky-check/summary").json()

    def settled(s):
        return sum(v["assignments"] for v in s["variants"]) == 80

    s = poll("sticky-check assignments", summary, settled)
    assert sum(v["sessions"] for v in s["variants"]) == 40, s
    for v in s["variants"]:
        expected = sum(1 for i in range(40) if bucket_model(
            [{"model": "m-a", "weight": 50}, {"model": "m-b", "weight": 50}], f"sc-{i}") == v["model"])
        assert v["sessions"] == expected, (v, expected)

    # Proportions over 10,000 sessions, within 2 percentage points of the weights.
    n = 10_000
    counts = {}
    for i in range(n):
        sid = f"user-{i}"
        model = fallom_models.get("summarizer", sid)
        assert model == bucket_model(v2_variants, sid), (sid, model)
        counts[model] = counts.get(model, 0) + 1
    for v in v2_variants:
        share = 100.0 * counts.get(v["model"], 0) / n
        assert abs(share - v["weight"]) <= 2.0, f"{v['model']}: {share:.2f}% vs {v['weight']}%"
    print(f"proportions over {n} sessions: {counts}")

    # Sticky: the same session gets the same model every time.
    for i in range(0, n, 50):
        assert fallom_models.get("summarizer", f"user-{i}") == bucket_model(v2_variants, f"user-{i}")

    # Version pinning serves the pinned version's variants, right after that burst and at the
    # server's default settings: each pinned call fetches /configs/{key}/version/1, and a refused
    # fetch would make the SDK raise ValueError (or answer its fallback) here.
    v1_models = {"gpt-4o", "claude-3-5-sonnet"}
    for i in range(1_000):
        sid = f"pinned-{i}"
        pinned = fallom_models.get("summarizer", sid, version=1)
        assert pinned in v1_models and pinned == bucket_model(v1["variants"], sid), (sid, pinned)

    # Targeting: an individual target and a rule both pick variant 0.
    assert fallom_models.get("summarizer", "user-x", customer_id="vip-1") == "gpt-4o-mini"
    assert fallom_models.get("summarizer", "user-y", context={"plan": "enterprise"}) == "gpt-4o-mini"

    # Unknown key: the fallback if given, else the SDK's ValueError.
    assert fallom_models.get("no-such-config", "s1", fallback="gpt-4o-mini") == "gpt-4o-mini"
    try:
        fallom_models.get("no-such-config", "s1")
        raise AssertionError("an unknown key without a fallback must raise")
    except ValueError:
        pass

    # Those 10,000 assignments are each a fire-and-forget POST with a 1 s timeout from its own
    # thread; report how many arrived once the count stops moving (exact delivery is checked
    # above on a burst the SDK can deliver).
    def v2_sessions():
        # the burst shares this key's rate limit: wait out a 429 (or a 503 while it drains)
        while True:
            r = client.get("/api/v1/model-configs/summarizer/summary?version=2")
            if r.status_code not in (429, 503):
                break
            time.sleep(float(r.headers.get("retry-after", "1")))
        assert r.status_code == 200, r.text
        return sum(v["sessions"] for v in r.json()["variants"])

    arrived, previous = v2_sessions(), -1
    while arrived != previous:
        time.sleep(2)
        previous, arrived = arrived, v2_sessions()
    print(f"assignments recorded from the 10,000-session burst: {arrived}")


def check_traces(client, fallom_trace):
    from fallom.trace import TraceData
    import fallom

    trace_id = uuid.uuid4().hex
    now = time.time()
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1e6) % 1_000_000:06d}+00:00"
    fallom_trace.send_trace_sync(TraceData(
        config_key="summarizer", session_id="user-1", trace_id=trace_id, span_id=uuid.uuid4().hex[:16],
        name="chat.completions.create", start_time=iso(now - 1.5), end_time=iso(now), duration_ms=1500,
        status="OK", customer_id="cust-1", kind="llm", model="gpt-4o-mini",
        time_to_first_token_ms=300, is_streaming=True, metadata={"region": "eu"}, tags=["nightly"],
        attributes={
            "fallom.raw.request": '{"messages": [{"role": "user", "content": "Summarise the memo."}]}',
            "fallom.raw.response": '{"text": "The memo asks for the report by Friday.", "finishReason": "stop"}',
            "fallom.raw.usage": '{"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}',
        },
        prompt_key="onboarding", prompt_version=2,
    ))
    r = client.get(f"/api/v1/traces/{trace_id}")
    assert r.status_code == 200, r.text
    span = r.json()["spans"][0]
    assert span["usage"] == {"input_tokens": 12, "output_tokens": 5, "total_tokens": 17}, span
    assert span["response_text"] == "The memo asks for the report by Friday.", span
    assert (span["model"], span["session_id"], span["customer_id"]) == ("gpt-4o-mini", "user-1", "cust-1"), span
    assert (span["duration_ms"], span["time_to_first_token_ms"], span["is_streaming"]) == (1500, 300, True), span
    assert (span["metadata"], span["tags"], span["prompt_version"]) == ({"region": "eu"}, ["nightly"], 2), span
    assert span["sample_id"] is not None, "the response became a drift sample"
    # its cost at the shipped gpt-4o-mini price (US dollars per million tokens: 0.15 in, 0.60 out)
    assert span["cost"]["status"] == "priced", span["cost"]
    assert abs(span["cost"]["usd"] - (12 * 0.15 + 5 * 0.60) / 1e6) < 1e-12, span["cost"]

    # A client wrapped by the SDK: the trace is sent in the background.
    session = fallom.session(config_key="support-bot", session_id="conv-1", customer_id="cust-9",
                             metadata={"tier": "pro"}, tags=["beta"])
    llm = session.wrap_openai(StandInLLM("You can reset it under Settings."))
    llm.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "How do I reset?"}])
    listed = poll("wrapped client's trace", lambda: client.get("/api/v1/traces?session_id=conv-1").json(),
                  lambda b: len(b["traces"]) == 1)
    detail = client.get(f"/api/v1/traces/{listed['traces'][0]['trace_id']}").json()
    span = detail["spans"][0]
    assert span["kind"] == "llm" and span["model"] == "gpt-4o-2024-08-06", span  # fixed-date: a model id
    assert span["usage"]["total_tokens"] == 29 and span["customer_id"] == "cust-9", span
    assert span["response_text"] == "You can reset it under Settings.", span
    # the dated snapshot finds gpt-4o's price (2.50 in, 10.00 out), in the span and the trace list
    gpt_4o_usd = (21 * 2.50 + 8 * 10.00) / 1e6
    assert abs(span["cost"]["usd"] - gpt_4o_usd) < 1e-12, span["cost"]
    assert abs(listed["traces"][0]["cost"]["usd"] - gpt_4o_usd) < 1e-12, listed["traces"][0]["cost"]
    assert "How do I reset?" in span["request"], span
    sample = client.get("/api/v1/prompts/support-bot").json()
    assert sample["samples"]["total"] == 1, sample


def check_metrics(client, fallom_trace, fallom_models):
    # user-1's assignment may have been one the burst above lost; asking again records it.
    fallom_models.get("summarizer", "user-1")
    fallom_trace.span({"csat": 4, "resolved": False}, config_key="summarizer", session_id="user-1")
    path = "/api/v1/metrics?config_key=summarizer&session_id=user-1"
    poll("first metrics", lambda: client.get(path).json(),
         lambda b: b["sessions"] and b["sessions"][0]["metrics"].get("csat") == 4)
    fallom_trace.span({"csat": 5}, config_key="summarizer", session_id="user-1")
    body = poll("latest metric", lambda: client.get(path).json(),
                lambda b: b["sessions"][0]["metrics"].get("csat") == 5)
    assert body["sessions"][0]["metrics"]["resolved"] is False, "fields not sent again keep their value"
    user1_model = bucket_model([{"model": "gpt-4o-mini", "weight": 25}, {"model": "claude-3-5-haiku", "weight": 75}],
                               "user-1")

    def user1_row():
        s = client.get("/api/v1/model-configs/summarizer/summary").json()
        return next(v for v in s["variants"] if v["model"] == user1_model)

    row = poll("user-1's variant in the summary", user1_row, lambda r: r["metrics"].get("csat") is not None)
    assert row["metrics"]["csat"] == 5.0 and row["traces"] >= 1, row


def check_prompts(client, fallom_prompts):
    r = client.get("/prompts")
    assert r.status_code == 200, r.text
    got = fallom_prompts.get("onboarding", variables={"bot": "Ada", "name": "Sam"})
    assert (got.version, got.system, got.user) == (2, "You are Ada, version two.", "Hi Sam, welcome back."), got
    old = fallom_prompts.get("onboarding", variables={"bot": "Ada", "name": "Sam"}, version=1)
    assert (old.version, old.system) == (1, "You are Ada."), old
    seen = set()
    for i in range(200):
        sid = f"ab-{i}"
        result = fallom_prompts.get_ab("onboarding-test", sid, variables={"bot": "Ada", "name": "Sam"})
        h = int.from_bytes(hashlib.md5(sid.encode()).digest()[:4], "big") % 1_000_000
        expected_index = 0 if h < 500_000 else 1
        assert result.variant_index == expected_index, (sid, result)
        assert result.version == (1 if expected_index == 0 else 2), result
        assert result.ab_test_key == "onboarding-test"
        seen.add(result.version)
    assert seen == {1, 2}, seen


def main():
    import fallom
    from fallom import models, prompts, trace

    client = api()
    # Configs and templates exist before the SDK starts, as in an app deployed after they were
    # published.
    publish_model_configs(client)
    publish(client, "/api/v1/prompt-templates",
            {"key": "onboarding", "system_prompt": "You are {{bot}}.", "user_template": "Hi {{name}}"})
    publish(client, "/api/v1/prompt-templates", {"key": "onboarding", "system_prompt": "You are {{bot}}, version two.",
                                                  "user_template": "Hi {{ name }}, welcome back."})
    publish(client, "/api/v1/prompt-ab-tests", {"key": "onboarding-test", "variants": [
        {"prompt_key": "onboarding", "prompt_version": 1, "weight": 50},
        {"prompt_key": "onboarding", "weight": 50}]})

    fallom.init(api_key=KEY, traces_url=BASE, configs_url=BASE, prompts_url=BASE)
    check_models(client, models)
    check_traces(client, trace)
    check_metrics(client, trace, models)
    check_prompts(client, prompts)
    print("fallom main: ok")


def privacy():
    import fallom

    assert os.environ.get("FALLOM_CAPTURE_CONTENT") == "false"
    client = api()
    fallom.init(api_key=KEY, traces_url=BASE, configs_url=BASE, prompts_url=BASE)
    session = fallom.session(config_key="private-bot", session_id="p-1")
    llm = session.wrap_openai(StandInLLM("A confidential answer."))
    llm.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "secret question"}])
    listed = poll("private trace", lambda: client.get("/api/v1/traces?session_id=p-1").json(),
                  lambda b: len(b["traces"]) == 1)
    span = client.get(f"/api/v1/traces/{listed['traces'][0]['trace_id']}").json()["spans"][0]
    assert span["request"] is None and span["response_text"] is None, span
    assert "fallom.raw.response" not in span["attributes"], span
    assert span["usage"]["total_tokens"] == 29 and span["sample_id"] is None, span
    assert client.get("/api/v1/prompts/private-bot").status_code == 404, "no drift sample without content"
    print("fallom privacy: ok")


def down():
    from fallom import models

    # A port that accepts connections but never answers (the worst kind of outage), then a
    # closed port.
    hanging = socket.socket()
    hanging.bind(("127.0.0.1", 0))
    hanging.listen(16)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    for url in (f"http://127.0.0.1:{hanging.getsockname()[1]}", f"http://127.0.0.1:{closed_port}"):
        models._config_cache.clear()
        models.init(api_key=KEY, base_url=url)
        started = time.time()
        model = models.get("summarizer", "user-1", fallback="gpt-4o-mini")
        elapsed = time.time() - started
        assert model == "gpt-4o-mini", model
        assert elapsed < 2.5, f"fallback took {elapsed:.2f}s with the server at {url}"
        print(f"fallback from {url} in {elapsed:.2f}s")
    print("fallom down: ok")


if __name__ == "__main__":
    {"main": main, "privacy": privacy, "down": down}[sys.argv[1]]()
