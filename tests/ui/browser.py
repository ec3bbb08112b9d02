"""Helpers for the dashboard's browser tests: real headless Chromium driven by Playwright (sync
API), axe-core accessibility checks, and screenshots.

The browser is Debian's `chromium` (/usr/bin/chromium) and axe-core is the npm package in
.browser-deps/ at the repo root; `make browser-deps` (scripts/browser-deps.sh) installs both.
Playwright's own browser downloads are never used.

Typical use:

    with sync_playwright() as p:
        browser = launch(p)
        session = Session(browser, base_url)
        session.page.goto("/")
        visit(session.page, "sign-in", out_dir)   # axe + screenshots + no errors so far
        ...
        session.assert_no_console_errors()
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

REPO_ROOT = Path(__file__).resolve().parents[2]
AXE_JS = REPO_ROOT / ".browser-deps" / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium tries to reach Google's services (updates,
# sync, field trials), which only slows it down on a machine without that network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
MOBILE = {"width": 390, "height": 844}
# axe impacts that fail a check; `minor` and `moderate` ones are only reported.
FAILING_IMPACTS = ("serious", "critical")
DEFAULT_TIMEOUT_MS = 15_000

# Session of each page made by a Session, so that visit(page, ...) finds its error log.
_SESSIONS: dict[int, "Session"] = {}


def require_deps() -> None:
    """Fails with what to run when Chromium or axe-core is not installed."""
    missing = [str(p) for p in (Path(CHROMIUM), AXE_JS) if not p.exists()]
    if missing:
        raise RuntimeError(f"missing {', '.join(missing)}: run `make browser-deps` (scripts/browser-deps.sh)")


def launch(playwright):
    """Debian's Chromium, headless, kept off the network except for the pages it is sent to."""
    require_deps()
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def _path_of(url: str) -> str:
    return urlparse(url).path or "/"


class Session:
    """One browser context (its own cookies) and page on `base_url`, recording every problem the
    page shows: console errors, uncaught exceptions (`pageerror`), failed requests and HTTP
    answers >= 400 that the test did not declare with `expect_status`."""

    def __init__(self, browser, base_url: str, timeout_ms: int = DEFAULT_TIMEOUT_MS):
        # bypass_csp: axe is injected as a script, which the server's Content-Security-Policy
        # would otherwise refuse.
        self.context = browser.new_context(base_url=base_url, bypass_csp=True, viewport=DESKTOP)
        self.context.set_default_timeout(timeout_ms)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self._expected: list[tuple[int, str]] = []
        self._failed_urls: set[str] = set()  # one error per failed URL, however Chromium reports it
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"uncaught exception: {exc}"))
        self.page.on("requestfailed", self._on_request_failed)
        self.page.on("response", self._on_response)
        _SESSIONS[id(self.page)] = self

    # -- what counts as an error ------------------------------------------------------------

    def expect_status(self, status: int, path: str) -> None:
        """Declares that an answer `status` (>= 400) for `path` (e.g. "/ui/sign-in") is what the
        test wants, e.g. a refused page: it (and Chromium's console note about it) is no error.
        Holds for the rest of the session or until `clear_expected()`."""
        self._expected.append((status, path))

    def clear_expected(self) -> None:
        self._expected.clear()

    def _is_expected(self, status: int, url: str) -> bool:
        return (status, _path_of(url)) in self._expected

    def _on_response(self, response) -> None:
        if response.status >= 400:
            self._failed_urls.add(response.url)
            if not self._is_expected(response.status, response.url):
                self.errors.append(f"HTTP {response.status} for {response.request.method} {response.url}")

    def _on_request_failed(self, request) -> None:
        # a stylesheet answered 404 is also reported as failed (net::ERR_ABORTED)
        if request.url not in self._failed_urls:
            self._failed_urls.add(request.url)
            self.errors.append(f"request failed: {request.method} {request.url}: {request.failure}")

    def _on_console(self, message) -> None:
        if message.type != "error":
            return
        text = message.text
        url = (message.location or {}).get("url", "")
        # Chromium logs every answer >= 400 as "Failed to load resource: the server responded with
        # a status of 401 (Unauthorized)"; the response handler has judged those already, except
        # the browser's own /favicon.ico request, which only shows here.
        prefix = "Failed to load resource: the server responded with a status of "
        if text.startswith(prefix):
            status = text[len(prefix) :].split(" ", 1)[0]
            if url in self._failed_urls or (status.isdigit() and self._is_expected(int(status), url)):
                return
        self.errors.append(f"console error: {text}" + (f" ({url})" if url else ""))

    def assert_no_console_errors(self, context: str = "") -> None:
        """Fails listing every console error, page error and unexpected failed request so far."""
        if self.errors:
            where = f" ({context})" if context else ""
            raise AssertionError(f"the browser reported {len(self.errors)} error(s){where}:\n  " + "\n  ".join(self.errors))

    # -- checks on the current page -----------------------------------------------------------

    def check_assets(self) -> None:
        """The icons a page links to must load: a missing favicon is an error like any other, and
        the browser may fetch icons outside the page (or not yet), where no event shows them."""
        hrefs = self.page.eval_on_selector_all(
            'link[rel~="icon"], link[rel="apple-touch-icon"], link[rel="manifest"]', "els => els.map(e => e.href)"
        )
        for href in hrefs:
            if href in self._failed_urls:
                continue  # the browser's own request has been reported
            response = self.context.request.get(href)
            if response.status >= 400:
                self._failed_urls.add(href)
                if not self._is_expected(response.status, href):
                    self.errors.append(f"HTTP {response.status} for linked asset {href}")

    def visit(self, name: str, out_dir) -> list[dict]:
        return visit(self.page, name, out_dir)

    def close(self) -> None:
        _SESSIONS.pop(id(self.page), None)
        self.context.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_axe(page, name: str) -> list[dict]:
    """Runs axe-core on the page; fails listing every serious or critical violation (rule, help,
    target selectors of the offending nodes). Returns all violations (minor ones included)."""
    require_deps()
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE_JS))
    violations = page.evaluate(
        """async () => {
            const results = await axe.run(document, {resultTypes: ['violations']});
            return results.violations.map(v => ({
                id: v.id,
                impact: v.impact,
                help: v.help,
                nodes: v.nodes.map(n => ({target: n.target, html: n.html, summary: n.failureSummary})),
            }));
        }"""
    )
    failing = [v for v in violations if v["impact"] in FAILING_IMPACTS]
    if failing:
        lines = []
        for v in failing:
            lines.append(f"[{v['impact']}] {v['id']}: {v['help']}")
            for node in v["nodes"]:
                target = " ".join(str(t) for t in node["target"])
                lines.append(f"    at {target}: {node['html'][:200]}")
                if node.get("summary"):
                    lines.append("      " + node["summary"].replace("\n", "\n      "))
        raise AssertionError(f"axe: {len(failing)} serious/critical violation(s) on {name} ({page.url}):\n" + "\n".join(lines))
    return violations


def screenshots(page, name: str, out_dir) -> list[Path]:
    """Full-page PNGs `{name}-desktop.png` (1280x800) and `{name}-mobile.png` (390x844) in
    out_dir; leaves the page at the desktop size. Prints a note when the page is wider than the
    viewport (it then scrolls sideways)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shots = []
    try:
        for label, size in (("desktop", DESKTOP), ("mobile", MOBILE)):
            page.set_viewport_size(size)
            path = out / f"{name}-{label}.png"
            page.screenshot(path=str(path), full_page=True, animations="disabled")
            width = page.evaluate("() => document.documentElement.scrollWidth")
            if width > size["width"]:
                print(f"note: {name} is {width}px wide at {label} width {size['width']}px (scrolls sideways)")
            shots.append(path)
    finally:
        page.set_viewport_size(DESKTOP)
    return shots


def visit(page, name: str, out_dir) -> list[dict]:
    """The checks for a page the test has just navigated to: its linked icons load, axe finds
    nothing serious, screenshots are saved, and the browser reported no error so far. Returns
    axe's minor/moderate violations (for the caller to print)."""
    session = _SESSIONS.get(id(page))
    if session is None:
        raise RuntimeError("visit() needs a page made by browser.Session")
    page.wait_for_load_state("load")
    session.check_assets()
    violations = check_axe(page, name)
    screenshots(page, name, out_dir)
    session.assert_no_console_errors(name)
    return violations


def env_or_arg(value, var: str) -> str:
    """An argument, else the environment variable, else a clear failure."""
    value = value or os.environ.get(var)
    if not value:
        raise SystemExit(f"{var} is not set (nor given as an argument)")
    return value
