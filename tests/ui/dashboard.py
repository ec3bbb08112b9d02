"""The dashboard end to end in real headless Chromium (tests/ui/browser.py): every screen is
checked by axe-core, screenshotted at 1280x800 and 390 px, and must log no browser error.

A person signs in, sees the empty state, watches a prompt go from learning to ready to drifted
while this script posts real logs (the overview updates without a reload), finds the drift
marked on the prompt's chart with its explanation, changes a threshold (and the API's config
shows it), resets the baseline through its confirmation, publishes a model config (a wrong
weight is shown next to its field), a template and an A/B test, opens a trace's waterfall,
adds an alert channel (its secret shown once) and sends it a test, turns content capture off,
and signs out, after which the old session cookie is refused.

    dashboard.py   with DRIFTBALLOON_URL, DRIFTBALLOON_API_KEY, SCREENSHOT_DIR and TEXTS_FILE
                   (JSON {"support": [...], "biology": [...]}: real answers on two topics)
"""

import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx
from playwright.sync_api import expect, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
import browser  # noqa: E402

URL = os.environ["DRIFTBALLOON_URL"].rstrip("/")
KEY = os.environ["DRIFTBALLOON_API_KEY"]
OUT = Path(os.environ["SCREENSHOT_DIR"])
TEXTS = json.loads(Path(os.environ["TEXTS_FILE"]).read_text())
PROMPT = "support-bot"
API = httpx.Client(base_url=URL, headers={"X-API-Key": KEY}, timeout=30)
# Drift detection and the embedding worker need a few seconds on this machine's CPU.
SLOW_MS = 90_000

step = "start"


def log(texts, prompt=PROMPT):
    for i in range(0, len(texts), 10):
        logs = [{"prompt_name": prompt, "response_text": t} for t in texts[i : i + 10]]
        r = API.post("/api/v1/logs", json={"logs": logs})
        assert r.status_code == 202, r.text


def wait_processed(prompt=PROMPT):
    deadline = time.monotonic() + SLOW_MS / 1000
    while time.monotonic() < deadline:
        r = API.get(f"/api/v1/prompts/{prompt}")
        if r.status_code == 200 and r.json()["samples"]["pending"] == 0:
            return r.json()
        time.sleep(0.2)
    raise AssertionError(f"{prompt} was not processed in time")


def row_badge(page, prompt=PROMPT):
    return page.locator(f'tr[data-prompt="{prompt}"] .badge')


def otlp_trace():
    """Two spans of one trace: a root and an LLM call under it."""
    now = time.time_ns()
    attr = lambda k, v: {"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}}  # noqa: E731
    spans = [
        {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "handle request",
         "startTimeUnixNano": str(now - 900_000_000), "endTimeUnixNano": str(now), "status": {"code": 1}},
        {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b175", "parentSpanId": "eee19b7ec3c1b174",
         "name": "chat gpt-4o-mini", "startTimeUnixNano": str(now - 700_000_000), "endTimeUnixNano": str(now - 100_000_000),
         "attributes": [attr("gen_ai.request.model", "gpt-4o-mini"), attr("gen_ai.usage.input_tokens", 42),
                        attr("gen_ai.usage.output_tokens", 17)],
         "status": {"code": 2, "message": "rate limited once"}},
    ]
    return {"resourceSpans": [{"resource": {"attributes": [attr("service.name", "shop")]},
                               "scopeSpans": [{"spans": spans}]}]}


def otlp_logs():
    """The LLM call's answer as a gen_ai.choice log record, and an application warning."""
    now = time.time_ns()
    record = lambda span, **fields: {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": span,  # noqa: E731
                                     "observedTimeUnixNano": str(now), **fields}
    choice = {"kvlistValue": {"values": [
        {"key": "index", "value": {"intValue": "0"}},
        {"key": "message", "value": {"kvlistValue": {"values": [
            {"key": "role", "value": {"stringValue": "assistant"}},
            {"key": "content", "value": {"stringValue": "Your parcel left the depot."}}]}}}]}}
    records = [
        record("eee19b7ec3c1b175", eventName="gen_ai.choice", body=choice),
        record("eee19b7ec3c1b174", severityNumber=13, severityText="WARN", body={"stringValue": "carrier API slow"}),
    ]
    return {"resourceLogs": [{"scopeLogs": [{"logRecords": records}]}]}


def fallom_span(session, model, duration_ms, error=False):
    """A span as the Fallom SDK sends it, for a session of the `summarizer` config."""
    start = time.time() - 5
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}+00:00"  # noqa: E731
    return {"config_key": "summarizer", "session_id": session, "trace_id": f"{abs(hash(session)):032x}"[:32],
            "span_id": f"{abs(hash(session + 's')):016x}"[:16], "name": "chat.completions.create",
            "start_time": iso(start), "end_time": iso(start + duration_ms / 1000), "duration_ms": duration_ms,
            "status": "ERROR" if error else "OK", "kind": "llm", "model": model,
            "attributes": {"fallom.raw.usage": json.dumps({"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42})}}


class Receiver(BaseHTTPRequestHandler):
    """A webhook receiver for the alert channel's test send."""

    received = []

    def do_POST(self):  # noqa: N802 (the http.server API)
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        Receiver.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    global step
    receiver = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hook_url = f"http://127.0.0.1:{receiver.server_port}/hook"

    with sync_playwright() as p:
        b = browser.launch(p)
        with browser.Session(b, URL) as s:
            page = s.page
            page.set_default_timeout(SLOW_MS)
            expect.set_options(timeout=SLOW_MS)

            step = "sign in"
            page.goto("/")
            expect(page).to_have_url(re.compile(r"/ui/sign-in$"))
            s.visit("sign-in", OUT)
            # by keyboard alone, with the focus visible on the way
            for _ in range(5):
                page.keyboard.press("Tab")
                if page.evaluate("document.activeElement.name") == "api_key":
                    break
            assert page.evaluate("document.activeElement.name") == "api_key", "Tab never reached the key field"
            outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
            assert outline not in ("none", ""), f"the focused field shows no outline ({outline})"
            page.keyboard.type(KEY)
            page.keyboard.press("Enter")
            expect(page.get_by_role("heading", level=1)).to_have_text("Prompts")

            step = "empty state"
            expect(page.locator("#empty-prompts")).to_contain_text("point the SDK at this server")
            expect(page.locator("#empty-prompts pre")).to_contain_text("DRIFTBALLOON_API_KEY")
            s.visit("prompts-empty", OUT)

            step = "a learning prompt appears"
            log(TEXTS["support"][:10])
            wait_processed()
            page.reload()
            expect(row_badge(page)).to_have_text("learning 10/30")
            # from here on the page is never reloaded: the overview updates itself
            page.evaluate("window.__sameDocument = true")

            step = "learning to ready, live"
            log(TEXTS["support"][10:60])
            wait_processed()
            expect(row_badge(page)).to_have_text("ready")
            assert page.evaluate("window.__sameDocument === true"), "the overview reloaded instead of updating"

            step = "ready to drifted, live"
            log(TEXTS["biology"][:60])
            wait_processed()
            expect(row_badge(page)).to_have_text("drifted")
            expect(page.locator(f'tr[data-prompt="{PROMPT}"]')).to_contain_text(" drift")
            assert page.evaluate("window.__sameDocument === true"), "the overview reloaded instead of updating"

            step = "sort and filter"
            log(TEXTS["support"][:3], prompt="billing-bot")
            log(TEXTS["support"][:60], prompt="faq-bot")
            wait_processed("billing-bot")
            wait_processed("faq-bot")
            page.reload()
            expect(row_badge(page, "faq-bot")).to_have_text("ready")
            s.visit("prompts", OUT)
            page.get_by_label("Name contains").fill("billing")
            page.get_by_role("button", name="Apply").click()
            expect(page.locator("#prompts tbody tr")).to_have_count(1)
            page.goto("/?sort=name&dir=asc")
            expect(page.locator("#prompts tbody tr th").first).to_have_text("billing-bot")
            page.locator("#prompts thead a").first.click()  # the name column again: descending
            expect(page.locator("#prompts tbody tr th").first).to_have_text(PROMPT)

            step = "prompt detail: the drift on the chart, with its explanation"
            page.get_by_role("link", name=PROMPT).click()
            expect(page.get_by_role("heading", level=1)).to_contain_text(PROMPT)
            assert page.locator("svg .marker-drift").count() >= 1, "no drift marker on the chart"
            # The topic change fires the semantic and the distribution detectors, one event each.
            expect(page.locator("#events details").filter(has_text="semantic drift")).to_have_count(1)
            expect(page.locator("#events details").filter(has_text="distribution drift")).to_have_count(1)
            expect(page.locator("#events")).to_contain_text("Recent responses farthest from the baseline")
            expect(page.locator("#sample-table tbody tr")).to_have_count(25)
            s.visit("prompt-detail", OUT)

            step = "samples are paged"
            page.get_by_role("link", name="Next →").last.click()
            expect(page.locator("#sample-table tbody tr")).to_have_count(25)

            step = "a wrong threshold is shown next to its field"
            page.get_by_label("Semantic threshold").fill("2")
            s.expect_status(422, f"/ui/prompts/{PROMPT}/settings")
            page.get_by_role("button", name="Save settings").click()
            expect(page.locator("#err-drift_threshold")).to_contain_text("from 0 to 1")
            s.visit("prompt-settings-error", OUT)
            s.clear_expected()

            step = "change a threshold and see it in the config"
            page.get_by_label("Semantic threshold").fill("0.42")
            page.get_by_role("button", name="Save settings").click()
            expect(page.locator(".notice")).to_contain_text("Settings saved")
            config = API.get("/api/v1/config").json()["prompts"][PROMPT]
            assert config["drift_threshold"] == 0.42, config

            step = "reset the baseline after confirming"
            page.get_by_role("link", name="Reset baseline…").click()
            expect(page.get_by_role("heading", level=1)).to_contain_text("Reset the baseline")
            s.visit("reset-confirm", OUT)
            page.get_by_role("button", name="Reset baseline").click()
            expect(page.locator(".notice")).to_contain_text("Baseline reset")
            config = API.get("/api/v1/config").json()["prompts"][PROMPT]
            assert (config["baseline_status"], config["status"]) == ("learning", "active"), config

            step = "model configs: a validation problem next to its field, then publish"
            page.get_by_role("link", name="Model configs").click()
            expect(page.locator("#empty-configs")).to_be_visible()
            page.get_by_label("Key").fill("summarizer")
            page.get_by_label("Model 1").fill("gpt-4o")
            page.get_by_label("Weight 1 (%)").fill("70")
            page.get_by_label("Model 2").fill("claude-3-5-sonnet")
            page.get_by_label("Weight 2 (%)").fill("20")
            s.expect_status(422, "/ui/model-configs")
            page.get_by_role("button", name="Publish").click()
            expect(page.locator(".field-error").first).to_contain_text("100")
            s.visit("model-config-error", OUT)
            s.clear_expected()
            page.get_by_label("Weight 2 (%)").fill("30")
            page.get_by_role("button", name="Publish").click()
            expect(page.get_by_role("heading", level=1)).to_contain_text("summarizer")
            expect(page.locator("#variant-summary")).to_contain_text("claude-3-5-sonnet")
            assert API.get("/api/v1/model-configs/summarizer").json()["latest_version"] == 1
            for i in range(6):
                model = "gpt-4o" if i < 4 else "claude-3-5-sonnet"
                r = API.post("/sessions", json={"config_key": "summarizer", "config_version": 1,
                                                "session_id": f"s{i}", "assigned_model": model})
                assert r.status_code == 202, r.text
                r = API.post("/v1/traces", json=fallom_span(f"s{i}", model, 800 + 150 * i, error=(i == 5)))
                assert r.status_code == 202, r.text
            page.reload()
            summary = page.locator("#variant-summary")
            expect(summary.locator("tr", has_text="Sessions")).to_contain_text("4")
            expect(summary.locator("tr", has_text="Error rate")).to_contain_text("50.0%")
            expect(page.locator("svg .chart-bar")).to_have_count(4)  # latency and error rate per variant
            s.visit("model-config", OUT)

            step = "templates and A/B tests"
            page.get_by_role("link", name="Templates").click()
            s.visit("templates-empty", OUT)
            page.locator("#key").fill("onboarding")
            page.get_by_label("User template").fill("Welcome, {{name}}!")
            page.get_by_role("button", name="Publish template").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("onboarding")
            s.visit("template", OUT)
            page.get_by_role("link", name="Templates").first.click()
            page.locator("#ab_key").fill("onboarding-test")
            page.locator("#ab_prompt_key_0").fill("onboarding")
            page.locator("#ab_weight_0").fill("100")
            page.get_by_role("button", name="Publish A/B test").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("onboarding-test")
            assert API.get("/api/v1/prompt-ab-tests/onboarding-test").status_code == 200

            step = "a trace's waterfall"
            r = API.post("/v1/traces", json=otlp_trace())
            assert r.status_code == 200, r.text
            r = API.post("/v1/logs", json=otlp_logs())
            assert r.status_code == 200 and r.json()["partialSuccess"] is None, r.text
            page.get_by_role("link", name="Traces").click()
            expect(page.locator("#trace-list tbody tr")).to_have_count(7)
            s.visit("traces", OUT)
            page.get_by_role("link", name="handle request").click()
            expect(page.locator("#waterfall svg.waterfall")).to_have_count(2)
            expect(page.locator("#waterfall")).to_contain_text("gpt-4o-mini")
            # 42 in, 17 out at gpt-4o-mini's shipped price (0.15 / 0.60 US dollars per million tokens)
            expect(page.locator("#waterfall")).to_contain_text("$0.0000165")
            expect(page.locator("details.span").last).to_contain_text("rate limited once")
            page.locator("details.span").last.locator("details.attributes summary").click()
            expect(page.locator("details.span").last.locator("details.attributes pre")).to_contain_text("gen_ai.usage.input_tokens")
            # the answer logged as a gen_ai.choice record joined its span; the records are listed
            expect(page.locator("details.span").last).to_contain_text("Your parcel left the depot.")
            expect(page.locator("#log-records")).to_be_visible()
            expect(page.get_by_role("row").filter(has_text="gen_ai.choice")).to_have_count(1)
            expect(page.get_by_role("row").filter(has_text="WARN")).to_contain_text("eee19b7ec3c1b174")
            s.visit("trace", OUT)

            step = "an alert channel: the secret once, a test send, its delivery"
            page.get_by_role("link", name="Alerts").click()
            page.get_by_label("URL").fill(hook_url)
            page.get_by_role("button", name="Add channel").click()
            secret = page.locator("#channel-secret").inner_text()
            assert secret.startswith("whsec_"), secret
            s.visit("alert-channel-created", OUT)
            page.get_by_role("link", name="Open the channel").click()
            assert secret not in page.content(), "the secret is shown again"
            page.get_by_role("button", name="Send a test alert").click()
            expect(page.locator(".notice")).to_contain_text("Test alert queued")
            deadline = time.monotonic() + 30
            while not Receiver.received and time.monotonic() < deadline:
                time.sleep(0.2)
            assert Receiver.received and Receiver.received[0]["type"] == "test", Receiver.received
            page.reload()
            expect(page.locator("#delivery-list")).to_contain_text("delivered")
            s.visit("alert-channel", OUT)

            step = "project settings: content capture and retention"
            page.get_by_role("link", name="Project").click()
            page.get_by_label("Capture prompt and response content from traces").uncheck()
            page.get_by_label("Traces, spans and log records").fill("3")
            page.get_by_label("Custom metrics").fill("")
            page.get_by_role("button", name="Save").click()
            expect(page.locator(".notice")).to_contain_text("saved")
            project = API.get("/api/v1/project").json()
            assert project["capture_content"] is False, project
            assert project["retention"]["traces_days"] == 3, project
            assert project["retention"]["metrics_days"] == project["retention_defaults"]["metrics_days"], project
            expect(page.get_by_label("Traces, spans and log records")).to_have_value("3")
            s.visit("project", OUT)

            step = "errors are pages, not JSON"
            s.expect_status(404, "/ui/prompts/no-such-prompt")
            page.goto("/ui/prompts/no-such-prompt")
            expect(page.get_by_role("alert")).to_contain_text("no-such-prompt")
            s.clear_expected()

            step = "no page breaks its Content-Security-Policy"
            # the checks above inject axe, so they run with the policy bypassed; here it holds
            strict = b.new_context(base_url=URL)
            strict.add_cookies(s.context.cookies())
            sp = strict.new_page()
            problems = []
            sp.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            sp.on("pageerror", lambda e: problems.append(str(e)))
            for path in [f"/ui/prompts/{PROMPT}", "/ui/model-configs/summarizer", "/ui/templates", "/ui/traces",
                         "/ui/alerts", "/ui/project", "/"]:
                sp.goto(path)
                sp.wait_for_load_state("load")
            before = sp.locator("#prompt-results").get_attribute("data-live-updated")
            sp.wait_for_function("() => document.querySelector('#prompt-results').dataset.liveUpdated")
            assert before is None and not problems, problems
            strict.close()

            step = "sign out, and the old session is refused"
            cookie = [c for c in s.context.cookies() if c["name"] == "db_session"][0]
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict", cookie
            page.goto("/")
            page.get_by_role("button", name="Sign out").click()
            expect(page).to_have_url(re.compile(r"/ui/sign-in$"))
            s.context.add_cookies([cookie])
            page.goto(f"/ui/prompts/{PROMPT}")
            expect(page).to_have_url(re.compile(r"/ui/sign-in$"))
            s.assert_no_console_errors(step)
    receiver.shutdown()
    print("dashboard walkthrough passed")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # name the step that failed
        print(f"FAILED at step {step!r}: {e}", file=sys.stderr)
        raise
