#!/usr/bin/env python3
"""API conformance test: validate the server's OpenAPI document, then fuzz the server against it.

Run by the Rust test harness (see tests/*.rs) against a live server it started:

    .venv-sdk/bin/python tests/contract/run_schemathesis.py \
        --url http://127.0.0.1:PORT --key db_sk_... --max-examples N [--seed S]

Steps:
  1. GET <url>/openapi.json (no auth) and validate it with openapi-spec-validator's OpenAPI 3.1
     validator. An invalid document fails the run right here, listing the errors.
  2. Run the Schemathesis CLI (`python -m schemathesis.cli run`, from the same venv as this script)
     on that exact document against <url>, sending `Authorization: Bearer <key>` with every request.
  3. Print a short summary (operations, requests, failures, seconds) and exit 0 only when the
     document is valid and Schemathesis found no failure and no error.

Nothing is written into the repository or the working directory: Schemathesis runs with its cwd in a
temporary directory, with its result cache off, the Hypothesis example database off
(`--generation-database=none`) and Hypothesis's own storage directory pointed into that temporary
directory. Reports (JSON, NDJSON, JUnit) go there too, and are deleted afterwards unless
--report-dir is given.

Exit codes: 0 all good; 1 checks failed (or the run errored); 2 the OpenAPI document is invalid or
could not be fetched; 3 bad usage / Schemathesis not installed.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

# Checks run by default: every built-in check that applies to a server whose bad input gets a 4xx.
#   not_a_server_error           no 5xx, whatever the input
#   status_code_conformance      the status is one the operation documents (or it has `default`)
#   content_type_conformance     the response Content-Type is one documented for that status
#   response_headers_conformance documented response headers are present and match their schemas
#   response_schema_conformance  the response body validates against the documented schema
#   negative_data_rejection      schema-invalid input gets 400/401/403/404/405/406/409/415/422/428/429
#   positive_data_acceptance     schema-valid input gets 2xx/3xx/401/403/404/409/429
#   missing_required_header      dropping a required header gets 400/401/403/406/415/422
#                                (401 only, when the dropped header is `Authorization`)
#   unsupported_method           an undocumented method on a documented path gets 405 with `Allow`
#   allow_header_conformance     `Allow` on an OPTIONS answer lists exactly the documented methods
#   use_after_free               (stateful) after a successful DELETE, reads of it do not succeed
#   ensure_resource_availability (stateful) a resource a POST just created is not 404 on read
#   ignored_auth                 an operation that declares security rejects no/invalid credentials
#                                with 401/403
# Left out: object_level_authorization (needs several configured identities) and max_response_time
# (enabled with --max-response-time).
DEFAULT_CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "positive_data_acceptance",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "use_after_free",
    "ensure_resource_availability",
    "ignored_auth",
]

# Schemathesis "warnings" that turn into a failing exit code. Each means the run tested far less than
# it claims, so a green result would be misleading:
#   missing_auth        an operation answered only 401/403: the key was not accepted there
#   method_not_allowed  an operation answered only 405: the documented method is not routed
#   base_url_mismatch   every valid request got 404: the base URL misses a prefix the spec declares
DEFAULT_FAIL_ON_WARNINGS = ["missing_auth", "method_not_allowed", "base_url_mismatch"]

# How long to wait for /openapi.json.
FETCH_TIMEOUT = 10.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Arguments after `--` are passed to `schemathesis run` unchanged.",
    )
    p.add_argument("--url", required=True, help="server base URL, e.g. http://127.0.0.1:8080")
    p.add_argument("--key", required=True, help="API key, sent as `Authorization: Bearer <key>`")
    p.add_argument("--max-examples", type=int, default=20, help="max test cases per operation per phase")
    p.add_argument("--seed", type=int, default=None, help="random seed, for a reproducible run")
    p.add_argument(
        "--phases",
        default="examples,coverage,fuzzing,stateful",
        help="comma-separated Schemathesis phases (examples, coverage, fuzzing, stateful)",
    )
    p.add_argument("--checks", default=",".join(DEFAULT_CHECKS), help="comma-separated checks to run")
    p.add_argument("--exclude-checks", default="", help="comma-separated checks to skip")
    p.add_argument(
        "--fail-on-warnings",
        default=",".join(DEFAULT_FAIL_ON_WARNINGS),
        help="comma-separated Schemathesis warnings that fail the run ('' for none)",
    )
    p.add_argument("--request-timeout", type=float, default=5.0, help="seconds per request")
    p.add_argument(
        "--total-timeout", type=float, default=900.0, help="seconds for the whole Schemathesis run"
    )
    p.add_argument("--report-dir", default=None, help="keep the JSON/NDJSON/JUnit reports here")
    p.add_argument("extra", nargs="*", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.max_examples < 1:
        p.error("--max-examples must be >= 1")
    args.url = args.url.rstrip("/")
    return args


def fetch_spec(base_url: str) -> tuple[dict | None, str | None]:
    """GET <base_url>/openapi.json without credentials; returns (document, error)."""
    url = f"{base_url}/openapi.json"
    # No proxies: the server is on the loopback interface.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with opener.open(request, timeout=FETCH_TIMEOUT) as response:
            body = response.read()
            content_type = response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return None, f"GET {url} answered {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError) as exc:
        return None, f"GET {url} failed: {exc}"
    if "json" not in content_type.lower():
        return None, f"GET {url} answered Content-Type {content_type!r}, expected JSON"
    try:
        document = json.loads(body)
    except ValueError as exc:
        return None, f"GET {url} did not answer valid JSON: {exc}"
    if not isinstance(document, dict):
        return None, f"GET {url} answered JSON that is not an object"
    return document, None


def validate_spec(document: dict) -> list[str]:
    """Validate with the OpenAPI 3.1 validator; returns human-readable errors (empty when valid)."""
    from openapi_spec_validator import OpenAPIV31SpecValidator

    version = document.get("openapi")
    if not isinstance(version, str) or not version.startswith("3.1."):
        return [f"`openapi` is {version!r}, expected a 3.1.x version"]
    errors: list[str] = []
    try:
        for error in OpenAPIV31SpecValidator(document).iter_errors():
            where = " > ".join(str(part) for part in error.absolute_path) or "(root)"
            # The message can run over several lines (jsonschema adds the failing schema part).
            message = "\n      ".join(line.rstrip() for line in str(error.message).splitlines() if line.strip())
            errors.append(f"at {where}: {message}")
            if len(errors) >= 50:
                errors.append("... (more errors left out)")
                break
    except Exception as exc:  # e.g. a $ref that cannot be resolved
        # The exception's text can hold the whole document; its start names the problem.
        errors.append(f"validator failed: {type(exc).__name__}: {str(exc)[:MAX_LINE_CHARS]}")
    return errors


# Operations whose validation goes beyond the schema (see write_config).
SEMANTIC_RULE_OPERATIONS = [
    "publish_model_config",
    "publish_prompt_ab_test",
    "sdk_record_session",
    "ingest_traces",
    # a URL that matches the schema may still not parse as a URL, or name a refused address
    "create_alert_channel",
    "update_alert_channel",
]


# Operations whose answer depends on the resource's state: a disabled channel cannot be sent a
# test event, a Slack channel has no secret to rotate (409, documented).
STATE_RULE_OPERATIONS = ["test_alert_channel", "rotate_alert_channel_secret"]


# Longest output line passed through: schemathesis prints whole request bodies in its curl
# reproductions, and a fuzzed body can be megabytes.
MAX_LINE_CHARS = 2000


def run_with_short_lines(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Runs the command, echoing its output with over-long lines cut."""
    timeout = kwargs.pop("timeout")
    started = time.monotonic()
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", **kwargs) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if len(line) > MAX_LINE_CHARS:
                line = f"{line[:MAX_LINE_CHARS]} ... [{len(line) - MAX_LINE_CHARS} more characters cut]\n"
            sys.stdout.write(line)
            if time.monotonic() - started > timeout:
                proc.kill()
                raise subprocess.TimeoutExpired(command, timeout)
        return subprocess.CompletedProcess(command, proc.wait())


def write_config(path: Path, fail_on_warnings: list[str]) -> None:
    """A schemathesis.toml for this run only, so no project or user config is picked up."""
    lines = [
        "# Written by tests/contract/run_schemathesis.py for a single run.",
        "[cache]",
        # The cache would replay failures of earlier runs and write .schemathesis/ into the cwd.
        "enabled = false",
    ]
    if fail_on_warnings:
        lines += ["", "[warnings]", f"fail-on = {json.dumps(fail_on_warnings)}"]
    # These operations have rules a JSON schema cannot state (weights summing to 100, a
    # referenced config or template that must exist, an end time not before the start time),
    # so schema-valid input may rightly get a 422 there; everywhere else it must be accepted.
    # A body over the server's size limit is rightly refused with 413 whatever it holds.
    lines += [
        "",
        "[checks.negative_data_rejection]",
        'expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]',
    ]
    lines += [
        "",
        "[[operations]]",
        f"include-operation-id = {json.dumps(SEMANTIC_RULE_OPERATIONS)}",
        'checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404", "422"]',
        "",
        "[[operations]]",
        f"include-operation-id = {json.dumps(STATE_RULE_OPERATIONS)}",
        'checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404", "409"]',
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def build_command(args: argparse.Namespace, config: Path, spec: Path, reports: dict[str, Path]) -> list[str]:
    command = [
        sys.executable, "-m", "schemathesis.cli",
        "--config-file", str(config),
        "run", str(spec),
        # The document was loaded from a file, so the origin comes from --url; any base path the
        # document's `servers` declares is kept.
        "--origin", args.url,
        "--header", f"Authorization: Bearer {args.key}",
        # Only our Bearer header: do not also generate (invalid) values for the other declared
        # security schemes, e.g. an X-API-Key next to a valid Authorization. `ignored_auth` still
        # probes every scheme with no and with invalid credentials.
        "--generation-with-security-parameters", "false",
        "--checks", args.checks,
        "--phases", args.phases,
        "--max-examples", str(args.max_examples),
        "--generation-database", "none",
        "--request-timeout", str(args.request_timeout),
        # One worker: a fixed seed then gives the same requests in the same order.
        "--workers", "1",
        "--report", "json,ndjson,junit",
        "--report-json-path", str(reports["json"]),
        "--report-ndjson-path", str(reports["ndjson"]),
        "--report-junit-path", str(reports["junit"]),
        "--no-color",
    ]
    if args.exclude_checks:
        command += ["--exclude-checks", args.exclude_checks]
    if args.seed is not None:
        command += ["--seed", str(args.seed)]
    return command + list(args.extra)


def count_requests(ndjson: Path) -> dict[str, collections.Counter]:
    """Requests sent per operation and phase, from the NDJSON event stream."""
    per_operation: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    if not ndjson.is_file():
        return per_operation
    with ndjson.open(encoding="utf-8") as stream:
        for line in stream:
            if '"ScenarioFinished"' not in line[:40]:
                continue
            event = json.loads(line)["ScenarioFinished"]
            recorder = event.get("recorder") or {}
            cases = recorder.get("cases") or {}
            for case_id in recorder.get("interactions") or {}:
                if event["phase"] == "stateful":
                    # A stateful scenario chains several operations: count each under its own.
                    case = (cases.get(case_id) or {}).get("value") or {}
                    label = f"{case.get('method', '?').upper()} {case.get('path', '?')}"
                else:
                    # Includes the coverage phase's probes with undocumented methods.
                    label = recorder.get("label", "?")
                per_operation[label][event["phase"]] += 1
    return per_operation


def print_summary(report: dict | None, per_operation: dict, elapsed: float, exit_code: int) -> None:
    print("\n==== API conformance summary (schemathesis) ====")
    if per_operation:
        width = max(len(label) for label in per_operation)
        for label in sorted(per_operation):
            counts = per_operation[label]
            detail = ", ".join(f"{phase} {n}" for phase, n in sorted(counts.items()))
            print(f"  {label:<{width}}  {sum(counts.values()):>5} requests ({detail})")
    if report is None:
        print(f"no JSON report was written (schemathesis exit code {exit_code})")
        return
    operations = report.get("operations") or {}
    cases = report.get("test_cases") or {}
    total_requests = sum(sum(c.values()) for c in per_operation.values())
    print(
        f"operations: {operations.get('tested', 0)} tested / {operations.get('selected', 0)} selected"
        f" / {operations.get('total', 0)} in spec; skipped {operations.get('skipped', 0)},"
        f" errored {operations.get('errored', 0)}"
    )
    for reason in operations.get("skip_reasons") or []:
        print(f"  skipped: {reason}")
    print(
        f"test cases: {cases.get('generated', 0)} generated, {total_requests} requests recorded,"
        f" {cases.get('with_failures', 0)} with failures ({cases.get('unique_failures', 0)} unique),"
        f" {cases.get('errored', 0)} errored"
    )
    phases = report.get("phases") or {}
    print("phases: " + ", ".join(f"{name} {info.get('status')}" for name, info in phases.items()))
    for failure in report.get("failures") or []:
        print(
            f"FAILURE [{failure.get('code') or failure.get('type')}] {failure.get('title')}"
            f" x{failure.get('count')}: {', '.join(failure.get('operations') or [])}"
        )
    for error in report.get("errors") or []:
        print(f"ERROR {error.get('title')} x{error.get('count')}")
    for name, labels in (report.get("warnings") or {}).items():
        if labels:
            print(f"WARNING {name}: {labels}")
    print(f"seed: {report.get('seed')}; stop reason: {report.get('stop_reason')}")
    print(f"elapsed: {elapsed:.1f}s (schemathesis engine {report.get('running_time') or 0:.1f}s)")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    try:
        import openapi_spec_validator  # noqa: F401
        import schemathesis  # noqa: F401
    except ImportError as exc:
        print(f"error: {exc}; run scripts/sdk-venv.sh and use its python", file=sys.stderr)
        return 3

    # 1. The OpenAPI document must be fetchable and valid.
    document, error = fetch_spec(args.url)
    if document is None:
        print(f"OpenAPI document: {error}", file=sys.stderr)
        return 2
    errors = validate_spec(document)
    if errors:
        print(f"OpenAPI document at {args.url}/openapi.json is NOT a valid OpenAPI 3.1 document:")
        for line in errors:
            print(f"  - {line}")
        return 2
    operations_in_spec = sum(
        1
        for item in (document.get("paths") or {}).values()
        if isinstance(item, dict)
        for method in item
        if method in {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    )
    print(f"OpenAPI document is valid (OpenAPI {document['openapi']}, {operations_in_spec} operations)")
    sys.stdout.flush()

    # 2. Schemathesis, entirely inside a temporary directory.
    workdir = Path(tempfile.mkdtemp(prefix="schemathesis-contract-"))
    try:
        spec_path = workdir / "openapi.json"
        spec_path.write_text(json.dumps(document), encoding="utf-8")
        config_path = workdir / "schemathesis.toml"
        fail_on = [w.strip() for w in args.fail_on_warnings.split(",") if w.strip()]
        write_config(config_path, fail_on)
        report_dir = Path(args.report_dir).resolve() if args.report_dir else workdir / "reports"
        report_dir.mkdir(parents=True, exist_ok=True)
        reports = {
            "json": report_dir / "schemathesis.json",
            "ndjson": report_dir / "schemathesis.ndjson",
            "junit": report_dir / "junit.xml",
        }
        for path in reports.values():
            path.unlink(missing_ok=True)
        env = dict(os.environ)
        env["HYPOTHESIS_STORAGE_DIRECTORY"] = str(workdir / ".hypothesis")
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost,::1"
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("COLUMNS", "120")
        command = build_command(args, config_path, spec_path, reports)
        shown = [("Authorization: Bearer ***" if part.startswith("Authorization:") else part) for part in command]
        print("running: " + " ".join(shown))
        sys.stdout.flush()
        try:
            completed = run_with_short_lines(command, cwd=workdir, env=env, timeout=args.total_timeout)
            exit_code = completed.returncode
        except subprocess.TimeoutExpired:
            print(f"schemathesis did not finish within {args.total_timeout:.0f}s", file=sys.stderr)
            exit_code = -1

        # 3. Summary and verdict.
        report = None
        if reports["json"].is_file():
            report = json.loads(reports["json"].read_text(encoding="utf-8"))
        per_operation = count_requests(reports["ndjson"])
        elapsed = time.monotonic() - started
        print_summary(report, per_operation, elapsed, exit_code)
        if args.report_dir:
            print(f"reports: {report_dir}")
        ok = (
            exit_code == 0
            and report is not None
            and report.get("complete") is True
            and not report.get("failures")
            and not report.get("errors")
            and (report.get("operations") or {}).get("tested", 0) > 0
        )
        if ok:
            print(f"RESULT: PASS (schemathesis exit code {exit_code})")
        else:
            reasons = []
            if report is None:
                reasons.append("no report")
            else:
                if report.get("failures"):
                    reasons.append(f"{len(report['failures'])} failure group(s)")
                if report.get("errors"):
                    reasons.append(f"{len(report['errors'])} error group(s)")
                if any(report.get("warnings", {}).get(w) for w in fail_on):
                    reasons.append("warnings that fail the run: " + ", ".join(
                        w for w in fail_on if report.get("warnings", {}).get(w)))
                if not (report.get("operations") or {}).get("tested"):
                    reasons.append("no operation tested")
            reason = "; ".join(reasons) or "see output above"
            print(f"RESULT: FAIL ({reason}; schemathesis exit code {exit_code})")
        return 0 if ok else 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
