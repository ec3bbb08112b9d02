#!/usr/bin/env python3
"""Measure drift-detection quality end to end through a running server's HTTP API.

Plays the stable streams and drift scenarios of bench-data/manifest.json
(built by scripts/quality-data.sh) against the server, one fresh prompt per
run, and reports

  * stable streams: drift events per 1,000 samples scored after the baseline
    (every event is a false alarm there),
  * scenarios: detection delay = index of the sample that triggered the first
    drift event at or after the change, minus the index of the first changed
    sample (0 = the first changed sample triggered it); events before the
    change are false alarms; no event after the change = missed.

Only events of version "a" count: after a drift event the server may switch
the prompt to version "b", which then learns a baseline of its own, so b's
events say nothing about the change that was planted in a's stream. All
events, of both versions, are kept in the --out JSON.

Standard library only. Exit status: 0 when every run was measured (whatever
the numbers), 1 on an HTTP error or a run that could not be measured.

Example:
  python3 scripts/quality_bench.py --base-url http://127.0.0.1:8080 \\
      --api-key "$KEY" --data bench-data --out bench-data/quality-results.json
"""

import argparse
import concurrent.futures
import fnmatch
import json
import os
import random
import re
import secrets
import statistics
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request


class BenchError(Exception):
    """An HTTP error or an unexpected answer: the run cannot be measured."""


# ---------------------------------------------------------------- HTTP

# The server runs on this machine: never send its traffic through a proxy
# that happens to be configured in the environment.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Api:
    def __init__(self, base_url, api_key, timeout=60):
        self.base = base_url.rstrip("/")
        self.key = api_key
        self.timeout = timeout

    def _call(self, method, path, body=None, idempotent=False):
        """One JSON request. Retries only where that cannot duplicate data:
        429/503 (the server refused the request) and, for GETs, connection errors."""
        url = self.base + path
        data = json.dumps(body).encode("utf-8") if body is not None else None
        headers = {"X-API-Key": self.key, "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in range(6):
            req = urllib.request.Request(url, data=data, method=method, headers=headers)
            try:
                with OPENER.open(req, timeout=self.timeout) as resp:
                    raw = resp.read()
                    return resp.status, (json.loads(raw) if raw else None)
            except urllib.error.HTTPError as e:
                text = e.read().decode("utf-8", "replace")[:300]
                if e.code in (429, 503) and attempt < 5:
                    time.sleep(retry_after(e.headers.get("Retry-After"), attempt))
                    continue
                raise BenchError("%s %s: HTTP %d: %s" % (method, path, e.code, text)) from None
            except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
                if idempotent and attempt < 5:
                    time.sleep(retry_after(None, attempt))
                    continue
                raise BenchError("%s %s: %s" % (method, path, e)) from None
        raise AssertionError("unreachable")

    def post_logs(self, prompt, texts):
        """POST one batch; returns the log ids in request order."""
        body = {"logs": [{"prompt_name": prompt, "response_text": t, "input_text": None,
                          "model": "bench"} for t in texts]}
        status, answer = self._call("POST", "/api/v1/logs", body)
        ids = (answer or {}).get("log_ids")
        if status != 202 or not isinstance(ids, list) or len(ids) != len(texts):
            raise BenchError("POST /api/v1/logs: unexpected answer %d %r" % (status, answer))
        return ids

    def prompt_samples(self, prompt):
        """The prompt's {"total", "pending", "done", "failed"} counts, or None while unknown."""
        path = "/api/v1/prompts/" + urllib.parse.quote(prompt, safe="")
        try:
            _, answer = self._call("GET", path, idempotent=True)
        except BenchError as e:
            if ": HTTP 404:" in str(e):  # not created yet: keep polling
                return None
            raise
        samples = find_key(answer, "samples")
        if not isinstance(samples, dict) or "pending" not in samples:
            raise BenchError("GET %s: no samples.pending in %r" % (path, answer))
        return samples

    def drift_events(self, prompt):
        path = "/api/v1/prompts/%s/drift-events" % urllib.parse.quote(prompt, safe="")
        _, answer = self._call("GET", path, idempotent=True)
        events = answer.get("events") if isinstance(answer, dict) else answer
        if not isinstance(events, list):
            raise BenchError("GET %s: no events list in %r" % (path, answer))
        return events


def retry_after(header, attempt):
    try:
        return min(30.0, float(header))
    except (TypeError, ValueError):
        return min(30.0, 0.5 * 2 ** attempt)


def find_key(obj, key):
    """obj[key], or the first obj[..][key] one level down (the prompt JSON may nest it)."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for v in obj.values():
            if isinstance(v, dict) and key in v:
                return v[key]
    return None


# ---------------------------------------------------------------- sequences

def load_streams(data_dir, manifest):
    streams = {}
    for name, s in manifest["streams"].items():
        with open(os.path.join(data_dir, s["file"]), encoding="utf-8") as f:
            streams[name] = [line.rstrip("\n") for line in f if line.strip()]
    return streams


def take(pool, n, rng):
    """n texts from pool in order; if the pool runs out, go on with a fresh shuffle of it
    (quality-data.sh checks the sizes, so this only guards hand-edited manifests)."""
    out, pool = [], list(pool)
    if not pool:
        raise BenchError("empty stream")
    while len(out) < n:
        out.extend(pool[:n - len(out)])
        rng.shuffle(pool)
    return out


FIRST_SENTENCE = re.compile(r"^(.+?[.!?])(\s|$)")


def apply_transform(transform, pool, n, rng):
    """Build n changed samples from the shuffled pool.
    join:K           K consecutive texts joined by a space (K times longer)
    truncate_words:N the first N words of each text
    first_sentence   each text up to its first . ! or ?"""
    if not transform:
        return take(pool, n, rng)
    op, _, arg = transform.partition(":")
    if op == "join":
        k = int(arg)
        texts = take(pool, n * k, rng)
        return [" ".join(texts[i * k:(i + 1) * k]) for i in range(n)]
    if op == "truncate_words":
        return [" ".join(t.split()[:int(arg)]) for t in take(pool, n, rng)]
    if op == "first_sentence":
        out = []
        for t in take(pool, n, rng):
            m = FIRST_SENTENCE.match(t)
            out.append(m.group(1) if m else t)
        return out
    raise BenchError("unknown transform %r" % transform)


def stable_run(spec, streams, seed):
    rng = random.Random("stable:%s:%d" % (spec["stream"], seed))
    texts = list(streams[spec["stream"]])
    rng.shuffle(texts)
    return {"type": "stable", "name": spec["name"], "stream": spec["stream"], "seed": seed,
            "kind": "none", "change_index": None, "texts": take(texts, spec["samples"], rng)}


def scenario_run(sc, streams, seed):
    """baseline + stable stretch from the 'before' stream, then change_len changed samples.
    When both parts use the same stream, the changed part draws only from texts the
    first part did not use, so no sample is repeated."""
    rng = random.Random("scenario:%s:%d" % (sc["name"], seed))
    before = list(streams[sc["before"]["stream"]])
    rng.shuffle(before)
    n_before = sc["change_index"]
    first = apply_transform(sc["before"].get("transform"), before, n_before, rng)
    if sc["after"]["stream"] == sc["before"]["stream"]:
        used = set(before[:n_before])
        pool = [t for t in before if t not in used]
    else:
        pool = list(streams[sc["after"]["stream"]])
        rng.shuffle(pool)
    second = apply_transform(sc["after"].get("transform"), pool, sc["change_len"], rng)
    return {"type": "scenario", "name": sc["name"], "stream": sc["before"]["stream"],
            "seed": seed, "kind": sc["kind"], "change_index": n_before, "texts": first + second}


def plan_runs(manifest, streams, args):
    runs = []
    if not args.skip_stable:
        for spec in manifest["stable"]:
            runs += [stable_run(spec, streams, seed) for seed in range(args.stable_seeds)]
    if not args.skip_scenarios:
        for sc in manifest["scenarios"]:
            runs += [scenario_run(sc, streams, seed) for seed in range(args.runs_per_scenario)]
    if args.only:
        pats = [p.strip() for p in args.only.split(",") if p.strip()]
        runs = [r for r in runs if any(fnmatch.fnmatch(r["name"], p) for p in pats)]
    for r in runs:
        # unique per invocation so reruns never append to an older prompt's samples
        r["prompt"] = "q-%s-%d-%s" % (r["name"], r["seed"], secrets.token_hex(4))
    return runs


# ---------------------------------------------------------------- one run

def execute(api, run, args):
    """Send the run's samples in order, wait until the server scored them, read the events."""
    started = time.time()
    texts = run["texts"]
    log_ids = []
    # In order and one batch at a time: the server scores a prompt's samples in id order.
    for i in range(0, len(texts), args.batch_size):
        log_ids += api.post_logs(run["prompt"], texts[i:i + args.batch_size])
    samples = wait_processed(api, run["prompt"], len(texts), args)
    events = api.drift_events(run["prompt"])
    index_of = {sid: i for i, sid in enumerate(log_ids)}
    for e in events:
        e["index"] = index_of.get(e.get("sample_id"))
    result = {k: v for k, v in run.items() if k != "texts"}
    result.update({"samples": len(texts), "sample_status": samples, "events": events,
                   "seconds": round(time.time() - started, 2)})
    result.update(evaluate(run, events, args.within))
    return result


def wait_processed(api, prompt, sent, args):
    """Poll until nothing of the prompt is pending. The timeout counts from the last
    progress, so a slow but working server (many runs in flight) is not cut off."""
    last_done, last_progress = -1, time.time()
    while True:
        s = api.prompt_samples(prompt)
        if s is not None:
            if s.get("pending") == 0 and s.get("total", sent) >= sent:
                return s
            done = (s.get("done") or 0) + (s.get("failed") or 0)
            if done != last_done:
                last_done, last_progress = done, time.time()
        if time.time() - last_progress > args.wait_timeout:
            raise BenchError("prompt %s: no progress for %d s (last status %r)"
                             % (prompt, args.wait_timeout, s))
        time.sleep(args.poll_interval)


def evaluate(run, events, within):
    """Metrics from version-a events (see the module docstring for why a only)."""
    a_events = [e for e in events if e.get("version", "a") == "a"]
    unmapped = [e for e in a_events if e["index"] is None]
    mapped = [e for e in a_events if e["index"] is not None]
    if run["type"] == "stable":
        return {"a_events": len(a_events), "false_alarms": len(a_events),
                "unmapped_events": len(unmapped)}
    change = run["change_index"]
    before = [e for e in mapped if e["index"] < change]
    after = [e for e in mapped if e["index"] >= change]
    first = min(after, key=lambda e: e["index"]) if after else None
    delay = first["index"] - change if first else None
    # Each detector's own first event after the change.
    by_kind = {}
    for e in sorted(after, key=lambda e: e["index"]):
        by_kind.setdefault(e.get("kind"), e["index"] - change)
    return {"a_events": len(a_events), "false_alarms": len(before),
            "unmapped_events": len(unmapped), "delay": delay,
            "detected_within": delay is not None and delay < within,
            "first_event_kind": first.get("kind") if first else None,
            "delay_by_kind": by_kind,
            "missed": first is None}


# ---------------------------------------------------------------- reporting

def summarize(results, manifest, within):
    stable_rows, scenario_rows = [], []
    for spec in manifest["stable"]:
        rs = [r for r in results if r["type"] == "stable" and r["name"] == spec["name"]]
        if not rs:
            continue
        scored = sum(r["samples"] - manifest["baseline"] for r in rs)
        events = sum(r["false_alarms"] for r in rs)
        stable_rows.append({"stream": spec["stream"], "runs": len(rs), "scored": scored,
                            "events": events,
                            "per_1000": round(1000.0 * events / scored, 2) if scored else None})
    for sc in manifest["scenarios"]:
        rs = [r for r in results if r["type"] == "scenario" and r["name"] == sc["name"]]
        if not rs:
            continue
        delays = [r["delay"] for r in rs if r["delay"] is not None]
        kinds = {}
        for r in rs:
            if r["first_event_kind"]:
                kinds[r["first_event_kind"]] = kinds.get(r["first_event_kind"], 0) + 1
        scenario_rows.append({
            "scenario": sc["name"], "change": sc["kind"], "runs": len(rs),
            "detected_within": sum(1 for r in rs if r["detected_within"]),
            "median_delay": statistics.median(delays) if delays else None,
            "max_delay": max(delays) if delays else None,
            "missed": sum(1 for r in rs if r["missed"]),
            "false_alarms_before_change": sum(r["false_alarms"] for r in rs),
            "first_event_kinds": kinds,
            "by_detector": by_detector(rs)})
    return {"stable": stable_rows, "scenarios": scenario_rows, "within": within}


def by_detector(rs):
    """kind -> (runs in which that detector fired after the change, its median delay)."""
    delays = {}
    for r in rs:
        for kind, d in (r.get("delay_by_kind") or {}).items():
            delays.setdefault(kind, []).append(d)
    return {k: (len(v), statistics.median(v)) for k, v in sorted(delays.items())}


def fmt(v):
    return "-" if v is None else ("%g" % v if isinstance(v, float) else str(v))


def print_tables(summary):
    w = summary["within"]
    print("\n### Stable streams\n")
    print("| stream | runs | samples scored after baseline | drift events | false alarms / 1,000 |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in summary["stable"]:
        print("| %s | %d | %d | %d | %s |" % (r["stream"], r["runs"], r["scored"], r["events"],
                                              fmt(r["per_1000"])))
    print("\n### Drift scenarios\n")
    print("| scenario | change | runs | detected within %d | median delay | max delay | missed "
          "| false alarms before change | first event kind | each detector: runs fired, median delay |" % w)
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    for r in summary["scenarios"]:
        kinds = ", ".join("%s %d" % kv for kv in sorted(r["first_event_kinds"].items())) or "-"
        detectors = ", ".join("%s %d (%s)" % (k, n, fmt(d)) for k, (n, d) in r["by_detector"].items()) or "-"
        print("| %s | %s | %d | %d/%d | %s | %s | %d | %d | %s | %s |" % (
            r["scenario"], r["change"], r["runs"], r["detected_within"], r["runs"],
            fmt(r["median_delay"]), fmt(r["max_delay"]), r["missed"],
            r["false_alarms_before_change"], kinds, detectors))
    print("\ndelay = samples after the change until the one that triggered the first version-a "
          "event (0 = the first changed sample); within %d = delay 0..%d." % (w, w - 1))


def write_out(path, payload):
    if not path:
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=1, ensure_ascii=False)
    os.replace(path + ".tmp", path)


# ---------------------------------------------------------------- main

def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base-url", default="http://127.0.0.1:8080")
    ap.add_argument("--api-key", default=os.environ.get("DRIFTBALLOON_API_KEY"),
                    help="default: $DRIFTBALLOON_API_KEY")
    ap.add_argument("--data", default="bench-data", help="directory with manifest.json")
    ap.add_argument("--runs-per-scenario", type=int, default=10)
    ap.add_argument("--stable-seeds", type=int, default=3)
    ap.add_argument("--out", default=None, help="write per-run results (JSON) here")
    ap.add_argument("--concurrency", type=int, default=4, help="runs in flight at once")
    ap.add_argument("--batch-size", type=int, default=10, help="logs per POST")
    ap.add_argument("--within", type=int, default=40, help="detection target, in samples")
    ap.add_argument("--wait-timeout", type=float, default=600,
                    help="give up on a run after this many seconds without scoring progress")
    ap.add_argument("--poll-interval", type=float, default=0.5)
    ap.add_argument("--only", default=None,
                    help="comma-separated run names or globs, e.g. 'stable-en-*,language_*'")
    ap.add_argument("--skip-stable", action="store_true")
    ap.add_argument("--skip-scenarios", action="store_true")
    args = ap.parse_args()
    if not args.api_key:
        ap.error("--api-key (or DRIFTBALLOON_API_KEY) is required")
    return args


def main():
    args = parse_args()
    with open(os.path.join(args.data, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    streams = load_streams(args.data, manifest)
    runs = plan_runs(manifest, streams, args)
    if not runs:
        sys.exit("no runs selected")
    api = Api(args.base_url, args.api_key)
    total_samples = sum(len(r["texts"]) for r in runs)
    print("%d runs, %d samples, %d in flight" % (len(runs), total_samples, args.concurrency),
          file=sys.stderr)

    started = time.time()
    results, errors, lock = [], [], threading.Lock()
    stop = threading.Event()

    def one(run):
        if stop.is_set():  # an earlier run hit an HTTP error: don't start new ones
            return
        try:
            r = execute(api, run, args)
        except BenchError as e:
            stop.set()
            with lock:
                errors.append({"name": run["name"], "seed": run["seed"],
                               "prompt": run["prompt"], "error": str(e)})
            print("ERROR %s seed %d: %s" % (run["name"], run["seed"], e), file=sys.stderr)
            return
        with lock:
            results.append(r)
            n = len(results)
        note = ("events=%d" % r["false_alarms"] if r["type"] == "stable" else
                "delay=%s false_alarms=%d" % (fmt(r["delay"]), r["false_alarms"]))
        print("[%d/%d] %s seed %d: %s (%.1f s)" % (n, len(runs), r["name"], r["seed"], note,
                                                   r["seconds"]), file=sys.stderr)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.concurrency)) as pool:
        list(pool.map(one, runs))

    order = {(r["name"], r["seed"]): i for i, r in enumerate(runs)}
    results.sort(key=lambda r: order[(r["name"], r["seed"])])
    elapsed = time.time() - started
    summary = summarize(results, manifest, args.within)
    write_out(args.out, {
        "base_url": args.base_url,
        "data": os.path.abspath(args.data),
        "config": {k: v for k, v in vars(args).items() if k != "api_key"},
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(elapsed, 1),
        "samples_sent": sum(r["samples"] for r in results),
        "summary": summary,
        "errors": errors,
        "runs": results,
    })
    print_tables(summary)
    print("\n%d runs, %d samples in %.0f s (%.1f samples/s)%s" % (
        len(results), sum(r["samples"] for r in results), elapsed,
        sum(r["samples"] for r in results) / max(elapsed, 1e-9),
        "; results in " + args.out if args.out else ""))
    if errors:
        print("%d run(s) failed; first error: %s" % (len(errors), errors[0]["error"]),
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
