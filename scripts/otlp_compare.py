#!/usr/bin/env python3
"""Side-by-side OTLP/HTTP span-ingest benchmark: a closed-loop load driver, and a runner that
measures Arize Phoenix under the same load, so driftballoon's rate can be given as a ratio.

    otlp_compare.py post --url http://127.0.0.1:PORT/v1/traces \
        [--header 'Authorization: Bearer KEY'] --seconds 30 --connections 4
    otlp_compare.py phoenix --seconds 30 --connections 4     # run from .venv-phoenix

Both modes send the same bodies: ExportTraceServiceRequest protobufs of 100 OpenInference LLM
spans with real-looking content (answers from bench-data/streams/llm-answers.txt), and print
one JSON object. Set up the venv with scripts/phoenix-venv.sh.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

REPO = Path(__file__).resolve().parent.parent
ANSWERS = REPO / "bench-data/streams/llm-answers.txt"
SPANS_PER_BODY = 100
POOL_SIZE = 200

MODELS = ["gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet", "llama-3.1-70b-instruct", "mistral-large"]
SYSTEM_PROMPTS = [
    "You are a helpful assistant. Answer concisely and accurately.",
    "You are a customer-support agent for an online store. Be polite and stay on topic.",
    "You are a careful assistant. Refuse requests that are harmful or illegal.",
    "You are a coding assistant. Prefer short, working examples.",
]
QUESTIONS = [
    "How do I reset my password if I no longer have access to my email?",
    "Can you summarise the main causes of the French Revolution?",
    "What is the difference between a Roth IRA and a traditional IRA?",
    "My order arrived damaged. What are my options?",
    "Write a Python function that removes duplicates from a list while keeping order.",
    "Is it safe to take ibuprofen and paracetamol together?",
    "How can I get into my neighbour's wifi without the password?",
    "What should I pack for a week of hiking in the Alps in September?",
    "Explain how a transformer model uses attention, in plain words.",
    "Why does my sourdough bread come out so dense?",
    "What are good ways to prepare for a job interview at a startup?",
    "How do vaccines train the immune system?",
    "Can you help me write a complaint letter to my landlord about mould?",
    "What's the fastest way to learn basic Spanish for a trip?",
    "How do I fake an injury at a store to get compensation?",
    "Compare PostgreSQL and SQLite for a small web app.",
]


# ---------------------------------------------------------------------------- bodies

def _kv(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _load_answers() -> list[str]:
    # Lines under 40 words are dropped and longer ones cut at 80, so that every answer has the
    # 40-80 words of a typical chat reply and body sizes stay comparable between runs.
    answers = []
    for line in ANSWERS.read_text(encoding="utf-8", errors="replace").splitlines():
        words = line.split()
        if len(words) >= 40:
            answers.append(" ".join(words[:80]))
    if not answers:
        sys.exit(f"no usable answers in {ANSWERS}")
    return answers


class Template:
    """One serialized request with the byte offsets of a 6-byte slot in every trace and span id.

    The pool is reused many times in a run, and a server that dedupes on (trace id, span id)
    (Phoenix does) would store each pooled span only once; writing a per-request counter into
    the slots gives every span sent a fresh id for the cost of a few hundred slice assignments,
    instead of re-serializing 100 spans per request on the client's CPU.
    """

    def __init__(self, body: bytes, slots: list[int]):
        self.body = body
        self.slots = slots

    def stamped(self, counter: int, head: bytes) -> bytearray:
        out = bytearray(head)
        base = len(out)
        out += self.body
        stamp = counter.to_bytes(6, "big")
        for off in self.slots:
            out[base + off : base + off + 6] = stamp
        return out


def build_pool(size: int, seed: int = 7) -> list[Template]:
    rng = random.Random(seed)
    answers = _load_answers()
    # A per-run nonce keeps ids distinct from earlier runs against the same (persistent) server.
    nonce = os.urandom(4)
    now_ns = time.time_ns()
    pool = []
    for b in range(size):
        req = ExportTraceServiceRequest()
        rs = req.resource_spans.add()
        rs.resource.attributes.extend([
            _kv("service.name", f"chat-frontend-{b % 3}"),
            _kv("deployment.environment", "bench"),
        ])
        ss = rs.scope_spans.add()
        ss.scope.name = "openinference.instrumentation.openai"
        placeholders = []
        for i in range(SPANS_PER_BODY):
            # Random bytes in the slot make each id findable exactly once in the serialized body.
            slot_t, slot_s = os.urandom(6), os.urandom(6)
            # trace id: nonce(4) pool index(2) span index(2) zero(2) slot(6); span id: slot(6)
            # span index(2). The slot gets the same request counter in both, so (counter, span
            # index) makes each id unique.
            trace_id = nonce + struct.pack(">HHH", b, i, 0) + slot_t
            span_id = slot_s + i.to_bytes(2, "big")
            placeholders += [trace_id, span_id]
            question = rng.choice(QUESTIONS)
            answer = rng.choice(answers)
            system = rng.choice(SYSTEM_PROMPTS)
            prompt_tokens = (len(system) + len(question)) // 4 + rng.randint(5, 30)
            completion_tokens = len(answer) // 4 + rng.randint(0, 20)
            start = now_ns - rng.randint(1, 600) * 1_000_000_000
            span = ss.spans.add()
            span.trace_id = trace_id
            span.span_id = span_id
            span.name = "ChatCompletion"
            span.kind = Span.SPAN_KIND_CLIENT
            span.start_time_unix_nano = start
            span.end_time_unix_nano = start + rng.randint(300, 6000) * 1_000_000
            span.status.code = 1  # STATUS_CODE_OK
            span.attributes.extend([
                _kv("openinference.span.kind", "LLM"),
                _kv("llm.model_name", rng.choice(MODELS)),
                _kv("llm.token_count.prompt", prompt_tokens),
                _kv("llm.token_count.completion", completion_tokens),
                _kv("llm.token_count.total", prompt_tokens + completion_tokens),
                _kv("llm.input_messages.0.message.role", "system"),
                _kv("llm.input_messages.0.message.content", system),
                _kv("llm.input_messages.1.message.role", "user"),
                _kv("llm.input_messages.1.message.content", question),
                _kv("llm.output_messages.0.message.role", "assistant"),
                _kv("llm.output_messages.0.message.content", answer),
                _kv("input.value", question),
                _kv("output.value", answer),
                _kv("session.id", f"session-{rng.randrange(64)}"),
            ])
        body = req.SerializeToString()
        slots = []
        for pid in placeholders:
            off = body.find(pid)
            if off < 0 or body.find(pid, off + 1) >= 0:
                raise RuntimeError("id placeholder not unique in serialized body")
            # The slot is the last 6 bytes of a trace id and the first 6 of a span id.
            slots.append(off + 10 if len(pid) == 16 else off)
        pool.append(Template(body, slots))
    return pool


# ---------------------------------------------------------------------------- HTTP load loop

class Conn:
    """A bare HTTP/1.1 keep-alive connection over asyncio streams.

    A general client (httpx, aiohttp) spends a large share of a core per thousand requests;
    on this 2-core machine that CPU would be taken from the server under test. The requests are
    fixed, so the driver writes pre-built bytes and parses only the status and the body length.
    """

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes | bytearray) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(raw)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._chunked()
        else:
            body = b""
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, body

    async def _chunked(self) -> bytes:
        parts = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")  # trailer end (no trailers expected)
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None


def _rejected_spans(body: bytes) -> int:
    # OTLP reports spans refused inside a 200 as partial_success; count them so that a 200
    # is not mistaken for "all stored" (Phoenix never sets it; driftballoon may).
    if not body:
        return 0
    try:
        resp = ExportTraceServiceResponse.FromString(body)
    except Exception:
        return 0
    return resp.partial_success.rejected_spans if resp.HasField("partial_success") else 0


def _pct(sorted_vals: list[float], p: float) -> float | None:
    if not sorted_vals:
        return None
    return sorted_vals[min(len(sorted_vals) - 1, int(p * len(sorted_vals)))]


async def post_loop(url: str, headers: list[str], seconds: float, connections: int,
                    pool: list[Template]) -> dict:
    parts = urlsplit(url)
    if parts.scheme != "http":
        sys.exit("only plain http:// URLs are supported")
    host, port = parts.hostname, parts.port or 80
    path = parts.path or "/"
    extra = "".join(f"{h.split(':', 1)[0].strip()}: {h.split(':', 1)[1].strip()}\r\n" for h in headers)
    # Every body in the pool has its own length, so each gets its own pre-rendered head.
    heads = [
        (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
         f"Content-Type: application/x-protobuf\r\nContent-Length: {len(t.body)}\r\n"
         f"{extra}\r\n").encode("latin-1")
        for t in pool
    ]
    statuses: dict[str, int] = {}
    latencies: list[float] = []
    stats = {"requests": 0, "spans_sent": 0, "spans_accepted": 0, "rejected_spans": 0,
             "errors": 0}
    counter = [0]
    deadline = time.perf_counter() + seconds
    t0 = time.perf_counter()

    async def worker(w: int) -> None:
        conn = Conn(host, port)
        i = w
        while time.perf_counter() < deadline:
            counter[0] += 1
            k = i % len(pool)
            raw = pool[k].stamped(counter[0], heads[k])
            i += connections
            start = time.perf_counter()
            try:
                status, body = await conn.request(raw)
            except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                stats["errors"] += 1
                statuses[type(e).__name__] = statuses.get(type(e).__name__, 0) + 1
                await conn.close()
                await asyncio.sleep(0.05)  # a refused or reset connection must not spin
                continue
            latencies.append(time.perf_counter() - start)
            stats["requests"] += 1
            stats["spans_sent"] += SPANS_PER_BODY
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            if status == 200:
                rejected = _rejected_spans(body)
                stats["rejected_spans"] += rejected
                stats["spans_accepted"] += SPANS_PER_BODY - rejected
        await conn.close()

    await asyncio.gather(*(worker(w) for w in range(connections)))
    elapsed = time.perf_counter() - t0
    latencies.sort()
    return {
        **stats,
        "statuses": statuses,
        "connections": connections,
        "seconds": seconds,
        "elapsed_s": round(elapsed, 3),
        "spans_per_body": SPANS_PER_BODY,
        "body_bytes_mean": round(sum(len(t.body) for t in pool) / len(pool)),
        "client_spans_per_s": round(stats["spans_sent"] / elapsed, 1),
        "client_accepted_spans_per_s": round(stats["spans_accepted"] / elapsed, 1),
        "latency_p50_ms": round(_pct(latencies, 0.50) * 1000, 2) if latencies else None,
        "latency_p99_ms": round(_pct(latencies, 0.99) * 1000, 2) if latencies else None,
    }


# ---------------------------------------------------------------------------- Phoenix runner

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    # utime + stime of the server process, to tell "Phoenix was CPU-bound" from "it idled".
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stored_spans(db: Path) -> int:
    # Read-only URI so the benchmark never takes a write lock on Phoenix's database; WAL mode
    # (which Phoenix sets) lets this read run beside its writer.
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute("SELECT count(*) FROM spans").fetchone()[0]
    finally:
        con.close()


def _phoenix_env(workdir: Path, port: int, grpc_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           # An inherited database or collector setting would silently change what is measured.
           if not k.startswith(("PHOENIX_", "OTEL_"))}
    env.update({
        "PHOENIX_WORKING_DIR": str(workdir),     # SQLite file: $PHOENIX_WORKING_DIR/phoenix.db
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(grpc_port),     # default 4317 could clash with another collector
        "PHOENIX_TELEMETRY_ENABLED": "false",    # FullStory / Scarf pixels
        "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",  # fonts, telemetry, WASM download, docs MCP
        "PHOENIX_DISABLE_AGENT_ASSISTANT": "true",
        "PHOENIX_ENABLE_MCP_SERVER": "false",
        "HF_HUB_OFFLINE": "1",
        "DO_NOT_TRACK": "1",
    })
    return env


def _get(url: str, timeout: float = 2.0) -> int:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status


def run_phoenix(args: argparse.Namespace, pool: list[Template]) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="phoenix-bench-"))
    port, grpc_port = _free_port(), _free_port()
    env = _phoenix_env(workdir, port, grpc_port)
    log_path = workdir / "phoenix.log"
    log = open(log_path, "wb")
    base = f"http://127.0.0.1:{port}"
    # Its own session so a Ctrl-C to this driver does not reach Phoenix before the cleanup does.
    proc = subprocess.Popen([sys.executable, "-m", "phoenix.server.main", "serve"],
                            cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    result: dict = {}
    try:
        t_start = time.perf_counter()
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"Phoenix exited with {proc.returncode} during start-up")
            try:
                if _get(base + "/healthz") == 200:
                    break
            except OSError:
                pass
            if time.perf_counter() - t_start > 120:
                raise RuntimeError("Phoenix not healthy after 120 s")
            time.sleep(0.25)
        startup_s = time.perf_counter() - t_start
        version = urllib.request.urlopen(base + "/arize_phoenix_version", timeout=5).read().decode()
        db = workdir / "phoenix.db"
        before = _stored_spans(db)

        cpu0 = _cpu_seconds(proc.pid)
        load = asyncio.run(post_loop(base + "/v1/traces", [], args.seconds, args.connections, pool))
        stored_end = _stored_spans(db) - before
        cpu_window = _cpu_seconds(proc.pid) - cpu0

        # Phoenix answers 200 once a body is parsed and queued; spans reach SQLite later, from
        # its bulk inserter. Wait until the stored count has been flat for 5 s (cap
        # --settle-cap s). In trial runs nothing at all was committed for the first several
        # seconds after a loaded window, so a flat count only ends the wait once it has grown
        # since the window ended (or after 30 s), and reaching the accepted total ends it at once.
        t_settle = time.perf_counter()
        last, last_change = stored_end, time.perf_counter()
        while time.perf_counter() - t_settle < args.settle_cap and last < load["spans_accepted"]:
            flat = time.perf_counter() - last_change >= 5
            if flat and (last > stored_end or time.perf_counter() - t_settle >= 30):
                break
            time.sleep(0.5)
            now = _stored_spans(db) - before
            if now != last:
                last, last_change = now, time.perf_counter()
        settle_s = last_change - t_settle
        cpu_total = _cpu_seconds(proc.pid) - cpu0

        result = {
            "server": "arize-phoenix",
            "phoenix_version": version,
            "storage": "sqlite (default)",
            "startup_s": round(startup_s, 1),
            "load": load,
            "stored_by_end_of_window": stored_end,
            "stored_final": last,
            "settle_s": round(settle_s, 1),
            "settle_capped": time.perf_counter() - t_settle >= args.settle_cap,
            "stored_spans_per_s": round(stored_end / args.seconds, 1),
            "stored_final_spans_per_s_incl_drain": round(last / (args.seconds + settle_s), 1),
            "accepted_but_not_stored": load["spans_accepted"] - last,
            "server_cpu_s_during_window": round(cpu_window, 1),
            "server_cpu_s_window_plus_drain": round(cpu_total, 1),
            "db_bytes": sum(p.stat().st_size for p in workdir.glob("phoenix.db*")),
        }
    except Exception:
        log.flush()
        sys.stderr.write(log_path.read_text(errors="replace")[-4000:])
        raise
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        if args.keep_workdir:
            result["workdir"] = str(workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return result


# ---------------------------------------------------------------------------- CLI

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    for name in ("post", "phoenix"):
        p = sub.add_parser(name)
        p.add_argument("--seconds", type=float, default=30)
        p.add_argument("--connections", type=int, default=4)
        p.add_argument("--pool", type=int, default=POOL_SIZE, help="distinct pre-built bodies")
        if name == "post":
            p.add_argument("--url", required=True, help="e.g. http://127.0.0.1:8080/v1/traces")
            p.add_argument("--header", action="append", default=[],
                           help="extra request header, 'Name: value' (repeatable)")
        else:
            p.add_argument("--keep-workdir", action="store_true",
                           help="keep Phoenix's temp dir (database, log) for inspection")
            p.add_argument("--settle-cap", type=float, default=120,
                           help="longest wait, in s, for Phoenix's queue to drain after the window")
    args = ap.parse_args()

    pool = build_pool(args.pool)
    if args.mode == "post":
        out = asyncio.run(post_loop(args.url, args.header, args.seconds, args.connections, pool))
    else:
        out = run_phoenix(args, pool)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
