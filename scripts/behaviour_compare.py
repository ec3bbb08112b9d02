#!/usr/bin/env python3
"""Offline comparison for the drift-detection behaviour benchmark: Evidently 0.7 vs an MMD test.

Run it with the venv of scripts/compare-venv.sh (Evidently 0.7.23, pandas < 3, numpy):

    bash scripts/compare-venv.sh .venv-compare
    .venv-compare/bin/python scripts/behaviour_compare.py --runs DIR --out results.json \
        [--markdown results.md] [--methods evidently,mmd] [--perms 1000] [--seed 0] [--resume]

Input: DIR holds, for every run, <run>.npz with the array `emb` (float32, N x D, L2-normalised
sentence embeddings in arrival order) and <run>.json with
{"name": str, "group": str, "kind": "stable" | "scenario", "change_index": int | null}.

Protocol (offline replay, the same for every method): reference = samples [0, 100); a test every
10 samples on the last 50 samples, i.e. windows [end-50, end) with end = 150, 160, ..., <= N
(so a window never overlaps the reference).

Methods
  evidently  Evidently 0.7's default embedding-drift method: the legacy EmbeddingsDriftMetric
             (evidently.legacy.metrics.EmbeddingsDriftMetric) with no drift_method given, run in a
             legacy Report (evidently.legacy.report.Report) with a ColumnMapping that declares the
             D columns as one embedding set. With no drift_method the metric picks
             model(bootstrap=len(reference) < 1000): a domain classifier (SGD logistic regression on
             a 50/50 train/test split of the pooled rows) whose test ROC AUC is compared with the
             95th percentile of 100 random-score AUCs when the reference has < 1000 rows (always
             here), and with the fixed threshold 0.55 only for >= 1000 reference rows. The boolean
             drift_detected is recorded per window (plus the AUC as drift_score).
             The metric also fits a t-SNE of reference + current for its plot, after the decision
             is made; it does not change the decision but costs ~3 s per window, so by default it is
             replaced by a stub (the plot data is thrown away anyway). --evidently-tsne keeps it.
  mmd        Permutation test on the biased MMD^2 with a Gaussian kernel exp(-|x-y|^2 / h),
             h = median squared distance among the reference pairs (fixed per run), over the pooled
             150 rows, --perms random relabellings (100 vs 50), p = (1 + #{perm >= observed}) /
             (perms + 1). The Gram matrix of the pooled rows is computed once per window; each
             relabelling is a 0/1 membership vector s, and with S the (perms x 150) matrix of them
             the within-reference sums are rowsum((S K) * S) and the cross sums follow from S (K 1),
             so all relabellings cost one (perms x 150) x (150 x 150) product. Seeded per
             (--seed, run name, window end), so results do not depend on run order.

Output: --out JSON with, per run and method, the list of [window_end, alarm] (evidently) or
[window_end, p] (mmd), plus timings; a printed table (stable runs: alarms per 1,000 windows for
Evidently and MMD at each alpha, and the smallest p; scenarios: false alarms in windows ending
<= change_index, delay = end of the first alarming window ending after change_index minus
change_index, or "missed", and the alarms among the windows that lie wholly after the change,
which tell a real detection from a chance alarm; then per group the detected count and the
median delay) and, with
--markdown, the same tables in Markdown. An MMD window alarms when p <= alpha; with 1000
relabellings the smallest possible p is 1/1001, so alpha 0.001 needs zero exceedances.
The JSON is rewritten after every run; --resume reuses the runs (and methods) already in it when
the protocol parameters match.
"""

import argparse
import glob
import json
import os
import statistics
import sys
import time
import warnings
import zlib

os.environ.setdefault("DO_NOT_TRACK", "1")  # Evidently's telemetry switch (only its UI uses it)

import numpy as np  # noqa: E402

REF = 100
WINDOW = 50
STEP = 10
DEFAULT_ALPHAS = (0.05, 0.01, 0.001)
METHODS = ("evidently", "mmd")

# ---------------------------------------------------------------- input


def load_runs(runs_dir):
    """[(meta, emb)] sorted by run name; exits with a clear message on malformed input."""
    paths = sorted(glob.glob(os.path.join(runs_dir, "*.npz")))
    if not paths:
        sys.exit("no <run>.npz files in %s" % runs_dir)
    runs, names = [], set()
    for npz in paths:
        stem = npz[:-4]
        meta_path = stem + ".json"
        if not os.path.exists(meta_path):
            sys.exit("%s has no %s" % (npz, os.path.basename(meta_path)))
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
        for key in ("name", "group", "kind"):
            if not isinstance(meta.get(key), str):
                sys.exit("%s: %r must be a string" % (meta_path, key))
        if meta["kind"] not in ("stable", "scenario"):
            sys.exit("%s: kind must be 'stable' or 'scenario', not %r" % (meta_path, meta["kind"]))
        ci = meta.get("change_index")
        if ci is not None and (isinstance(ci, bool) or not isinstance(ci, int)):
            sys.exit("%s: change_index must be an integer or null" % meta_path)
        if meta["kind"] == "scenario" and ci is None:
            sys.exit("%s: a scenario needs a change_index" % meta_path)
        if meta["name"] in names:
            sys.exit("%s: run name %r used twice" % (meta_path, meta["name"]))
        names.add(meta["name"])
        with np.load(npz) as z:
            if "emb" not in z:
                sys.exit("%s has no array 'emb' (has %s)" % (npz, ", ".join(z.files)))
            emb = np.asarray(z["emb"])
        if emb.ndim != 2 or emb.shape[0] == 0 or emb.shape[1] == 0:
            sys.exit("%s: emb must be N x D, is %s" % (npz, emb.shape))
        if not np.issubdtype(emb.dtype, np.floating):
            sys.exit("%s: emb must be floating point, is %s" % (npz, emb.dtype))
        if not np.all(np.isfinite(emb)):
            sys.exit("%s: emb has NaN or infinite values" % npz)
        norms = np.linalg.norm(emb.astype(np.float64), axis=1)
        if np.max(np.abs(norms - 1.0)) > 1e-3:
            print("warning: %s: rows are not L2-normalised (norms %.4g..%.4g); used as they are"
                  % (npz, norms.min(), norms.max()), file=sys.stderr)
        if meta["kind"] == "scenario" and not (0 <= ci < emb.shape[0]):
            print("warning: %s: change_index %d is outside [0, %d)" % (npz, ci, emb.shape[0]),
                  file=sys.stderr)
        runs.append((meta, emb))
    runs.sort(key=lambda r: r[0]["name"])
    return runs


def window_ends(n):
    return list(range(REF + WINDOW, n + 1, STEP))


# ---------------------------------------------------------------- MMD


def sq_dists(a, b):
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0)


def median_heuristic(ref):
    d = sq_dists(ref, ref)
    iu = np.triu_indices(ref.shape[0], k=1)
    h = float(np.median(d[iu]))
    if not h > 0:  # all reference rows identical: any positive bandwidth gives the same test
        pos = d[iu][d[iu] > 0]
        h = float(np.median(pos)) if pos.size else 1.0
    return h


def mmd2_from_membership(S, K, m, n):
    """Biased MMD^2 for each row of S (0/1, m ones = first sample) over the Gram matrix K."""
    SK = S @ K
    a = np.einsum("ij,ij->i", SK, S)          # sum over first-sample pairs
    b = S @ K.sum(axis=1)                       # sum over (first sample, everyone)
    total = K.sum()
    kxy = b - a
    kyy = total - 2.0 * b + a
    return a / (m * m) + kyy / (n * n) - 2.0 * kxy / (m * n)


def mmd_window(ref, win, h, n_perm, rng):
    """(observed biased MMD^2, p) for one window."""
    m, n = ref.shape[0], win.shape[0]
    Z = np.vstack([ref, win])
    K = np.exp(-sq_dists(Z, Z) / h)
    obs_s = np.zeros((1, m + n))
    obs_s[0, :m] = 1.0
    obs = mmd2_from_membership(obs_s, K, m, n)[0]
    perms = rng.permuted(np.broadcast_to(np.arange(m + n), (n_perm, m + n)), axis=1)
    S = np.zeros((n_perm, m + n))
    np.put_along_axis(S, perms[:, :m], 1.0, axis=1)
    stats = mmd2_from_membership(S, K, m, n)
    tol = 1e-9 * abs(obs) + 1e-15   # relabellings equal to the observed split up to rounding count
    p = (1 + int(np.count_nonzero(stats >= obs - tol))) / (n_perm + 1)
    return float(obs), p


def run_mmd(name, emb, ends, n_perm, seed):
    x = emb.astype(np.float64)
    ref = x[:REF]
    h = median_heuristic(ref)
    crc = zlib.crc32(name.encode("utf-8"))
    out, stats = [], []
    for end in ends:
        rng = np.random.default_rng([seed, crc, end])
        mmd2, p = mmd_window(ref, x[end - WINDOW:end], h, n_perm, rng)
        out.append([end, p])
        stats.append(mmd2)
    return {"windows": out, "mmd2": stats, "bandwidth_h": h}


def self_test():
    """Checks the vectorised relabelling statistic against an explicit index-gather version."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(150, 20))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    h = median_heuristic(x[:100])
    K = np.exp(-sq_dists(x, x) / h)
    perms = np.stack([rng.permutation(150) for _ in range(50)])
    S = np.zeros((50, 150))
    np.put_along_axis(S, perms[:, :100], 1.0, axis=1)
    fast = mmd2_from_membership(S, K, 100, 50)
    X, Y = perms[:, :100], perms[:, 100:]
    slow = (K[X[:, :, None], X[:, None, :]].mean(axis=(1, 2))
            + K[Y[:, :, None], Y[:, None, :]].mean(axis=(1, 2))
            - 2 * K[X[:, :, None], Y[:, None, :]].mean(axis=(1, 2)))
    direct = np.array([K[:100, :100].mean() + K[100:, 100:].mean() - 2 * K[:100, 100:].mean()])
    s0 = np.zeros((1, 150))
    s0[0, :100] = 1
    assert np.allclose(fast, slow, rtol=1e-10, atol=1e-12), "relabelling statistic mismatch"
    assert np.allclose(mmd2_from_membership(s0, K, 100, 50), direct), "observed statistic mismatch"
    # p-value sanity: identical distributions give roughly uniform p, a clear shift gives 1/1001
    ps = []
    for i in range(3):
        y = rng.normal(size=(50, 20))
        y /= np.linalg.norm(y, axis=1, keepdims=True)
        ps.append(mmd_window(x[:100], y, h, 200, np.random.default_rng(i))[1])
    shifted = x[100:] + 0.5
    p_shift = mmd_window(x[:100], shifted, h, 1000, np.random.default_rng(0))[1]
    assert p_shift == 1 / 1001, p_shift
    print("self-test ok (relabelling stats match gathers; shifted window p=%.4g; "
          "null-ish p=%s)" % (p_shift, ", ".join("%.3f" % p for p in ps)))


# ---------------------------------------------------------------- Evidently


class _NoTSNE:
    """Stands in for sklearn's TSNE inside EmbeddingsDriftMetric.calculate: only the plot uses it."""

    def __init__(self, *args, **kwargs):
        pass

    def fit_transform(self, X):
        return np.random.default_rng(0).normal(size=(len(X), 2))


def load_evidently(keep_tsne):
    try:
        import pandas as pd
        import evidently
        from evidently.legacy.metrics import EmbeddingsDriftMetric
        from evidently.legacy.pipeline.column_mapping import ColumnMapping
        from evidently.legacy.report import Report
        import evidently.legacy.metrics.data_drift.embeddings_drift as embeddings_drift
    except ImportError as e:
        sys.exit("cannot import Evidently's legacy API (%s); run this with the venv of "
                 "scripts/compare-venv.sh" % e)
    if not keep_tsne:
        embeddings_drift.TSNE = _NoTSNE
    return {"pd": pd, "version": evidently.__version__, "Metric": EmbeddingsDriftMetric,
            "ColumnMapping": ColumnMapping, "Report": Report}


def run_evidently(ev, emb, ends):
    pd = ev["pd"]
    cols = ["e%d" % i for i in range(emb.shape[1])]
    x = emb.astype(np.float32)
    ref_df = pd.DataFrame(x[:REF], columns=cols)
    mapping = ev["ColumnMapping"](target=None, prediction=None, numerical_features=[],
                                  categorical_features=[], embeddings={"emb": cols})
    out, scores, errors, method_name = [], [], 0, None
    for end in ends:
        cur_df = pd.DataFrame(x[end - WINDOW:end], columns=cols)
        metric = ev["Metric"]("emb")
        report = ev["Report"](metrics=[metric])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                report.run(reference_data=ref_df.copy(), current_data=cur_df,
                           column_mapping=mapping)
                res = metric.get_result()
            out.append([end, bool(res.drift_detected)])
            scores.append(float(res.drift_score))
            method_name = res.method_name
        except Exception as e:  # one failing window must not lose the run
            errors += 1
            print("  evidently failed at window end %d: %s: %s" % (end, type(e).__name__, e),
                  file=sys.stderr)
            out.append([end, None])
            scores.append(None)
    return {"windows": out, "drift_score": scores, "method_name": method_name, "errors": errors}


# ---------------------------------------------------------------- summaries


def columns_for(methods, alphas):
    cols = []
    if "evidently" in methods:
        cols.append(("evidently", None, "Evidently"))
    if "mmd" in methods:
        cols += [("mmd", a, "MMD@%g" % a) for a in alphas]
    return cols


def alarms_of(run, method, alpha):
    """[(end, alarm or None)] for one column."""
    m = run["methods"].get(method)
    if m is None:
        return None
    if alpha is None:
        return [(e, a) for e, a in m["windows"]]
    return [(e, None if p is None else p <= alpha) for e, p in m["windows"]]


def median_or_dash(xs):
    return ("%g" % statistics.median(xs)) if xs else "-"


def build_tables(results, methods, alphas):
    cols = columns_for(methods, alphas)
    runs = results["runs"]
    tables = []

    stable = [r for r in runs.values() if r["kind"] == "stable"]
    if stable:
        head = ["stable run", "group", "windows"] + [c[2] for c in cols]
        if "mmd" in methods:
            head.append("min p")
        rows, pooled = [], {c[2]: [0, 0] for c in cols}
        for r in sorted(stable, key=lambda r: (r["group"], r["name"])):
            row = [r["name"], r["group"], str(len(r["ends"]))]
            for method, alpha, label in cols:
                al = alarms_of(r, method, alpha)
                if al is None:
                    row.append("-")
                    continue
                valid = [a for _, a in al if a is not None]
                k = sum(1 for a in valid if a)
                pooled[label][0] += k
                pooled[label][1] += len(valid)
                row.append("%d (%.1f)" % (k, 1000.0 * k / len(valid)) if valid else "-")
            if "mmd" in methods:
                ps = [p for _, p in r["methods"].get("mmd", {}).get("windows", []) if p is not None]
                row.append("%.4g" % min(ps) if ps else "-")
            rows.append(row)
        total = ["all stable", "", str(sum(len(r["ends"]) for r in stable))]
        for _, _, label in cols:
            k, n = pooled[label]
            total.append("%d (%.1f)" % (k, 1000.0 * k / n) if n else "-")
        if "mmd" in methods:
            ps = [p for r in stable for _, p in r["methods"].get("mmd", {}).get("windows", [])
                  if p is not None]
            total.append("%.4g" % min(ps) if ps else "-")
        rows.append(total)
        tables.append(("Stable runs: alarms (per 1,000 windows)", head, rows))

    scen = [r for r in runs.values() if r["kind"] == "scenario"]
    if scen:
        head = ["scenario", "group", "change"] + ["%s FA, delay, post" % c[2] for c in cols]
        rows = []
        per_group = {}
        for r in sorted(scen, key=lambda r: (r["group"], r["name"])):
            ci = r["change_index"]
            row = [r["name"], r["group"], str(ci)]
            g = per_group.setdefault(r["group"], {c[2]: {"runs": 0, "delays": [], "fa": 0,
                                                         "pre": 0} for c in cols})
            for method, alpha, label in cols:
                al = alarms_of(r, method, alpha)
                if al is None:
                    row.append("-")
                    continue
                pre = [a for e, a in al if e <= ci]
                fa = sum(1 for a in pre if a)
                first = next((e for e, a in al if e > ci and a), None)
                delay = None if first is None else first - ci
                gs = g[label]
                gs["runs"] += 1
                gs["fa"] += fa
                gs["pre"] += len(pre)
                if delay is not None:
                    gs["delays"].append(delay)
                post = [a for e, a in al if e - WINDOW >= ci]
                row.append("%d/%d, %s, %d/%d" % (fa, len(pre), "missed" if delay is None else delay,
                                                 sum(1 for a in post if a), len(post)))
            rows.append(row)
        tables.append(("Scenarios: false alarms before the change (alarms/windows ending <= "
                       "change), delay (samples), alarms/windows wholly after the change",
                       head, rows))
        ghead = ["group", "runs"] + ["%s detected / median delay / FA" % c[2] for c in cols]
        grows = []
        for group in sorted(per_group):
            g = per_group[group]
            n_runs = max(gs["runs"] for gs in g.values())
            row = [group, str(n_runs)]
            for _, _, label in cols:
                gs = g[label]
                row.append("%d/%d, %s, %d/%d" % (len(gs["delays"]), gs["runs"],
                                                  median_or_dash(gs["delays"]), gs["fa"], gs["pre"]))
            grows.append(row)
        tables.append(("Scenarios by group: detected/runs, median delay of the detected, false "
                       "alarms before the change", ghead, grows))

    trows = []
    for r in sorted(runs.values(), key=lambda r: r["name"]):
        for method in methods:
            m = r["methods"].get(method)
            if m is None:
                continue
            nw = max(1, len(r["ends"]))
            trows.append([r["name"], method, str(len(r["ends"])), "%.2f" % m["seconds"],
                          "%.4f" % (m["seconds"] / nw)])
    if trows:
        tables.append(("Timings", ["run", "method", "windows", "seconds", "s/window"], trows))
    return tables


def render_text(tables):
    out = []
    for title, head, rows in tables:
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
        out.append(title)
        out.append("  ".join(h.ljust(w) for h, w in zip(head, widths)))
        out.append("  ".join("-" * w for w in widths))
        for row in rows:
            out.append("  ".join(str(x).ljust(w) for x, w in zip(row, widths)))
        out.append("")
    return "\n".join(out)


def render_markdown(tables, results):
    p = results["params"]
    out = ["# Behaviour benchmark: offline comparison", "",
           "Reference = samples [0, %d); window = last %d samples, a test every %d samples. "
           "Evidently %s, EmbeddingsDriftMetric default method; MMD permutation test with %d "
           "relabellings (alarm when p <= alpha)." % (p["ref"], p["window"], p["step"],
                                                       results.get("evidently_version") or "-",
                                                       p["perms"]), ""]
    for title, head, rows in tables:
        out.append("## " + title)
        out.append("")
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "|".join("---" for _ in head) + "|")
        for row in rows:
            out.append("| " + " | ".join(str(x).replace("|", "\\|") for x in row) + " |")
        out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------- main


def write_json(path, payload):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=1)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", help="directory with <run>.npz and <run>.json files")
    ap.add_argument("--out", help="JSON file to write (rewritten after every run)")
    ap.add_argument("--markdown", help="also write the tables as Markdown to this file")
    ap.add_argument("--methods", default=",".join(METHODS),
                    help="comma-separated subset of %s (default: all)" % ",".join(METHODS))
    ap.add_argument("--perms", type=int, default=1000, help="MMD relabellings (default 1000)")
    ap.add_argument("--seed", type=int, default=0, help="MMD RNG seed (default 0)")
    ap.add_argument("--alphas", default=",".join("%g" % a for a in DEFAULT_ALPHAS),
                    help="MMD significance levels for the tables (default 0.05,0.01,0.001)")
    ap.add_argument("--evidently-tsne", action="store_true",
                    help="keep the t-SNE that EmbeddingsDriftMetric fits for its plot (slow; "
                         "does not change drift_detected)")
    ap.add_argument("--resume", action="store_true",
                    help="reuse runs/methods already in --out computed with the same parameters")
    ap.add_argument("--self-test", action="store_true", help="check the MMD code and exit")
    args = ap.parse_args()

    if args.self_test:
        self_test()
        return
    if not args.runs or not args.out:
        ap.error("--runs and --out are required")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in methods:
        if m not in METHODS:
            ap.error("unknown method %r" % m)
    alphas = sorted({float(a) for a in args.alphas.split(",") if a.strip()}, reverse=True)
    if args.perms < 1:
        ap.error("--perms must be >= 1")

    runs = load_runs(args.runs)
    params = {"ref": REF, "window": WINDOW, "step": STEP, "perms": args.perms, "seed": args.seed}
    ev = load_evidently(args.evidently_tsne) if "evidently" in methods else None
    results = {"params": params, "evidently_version": ev["version"] if ev else None,
               "numpy_version": np.__version__, "runs": {}}
    previous = {}
    if args.resume and os.path.exists(args.out):
        with open(args.out, encoding="utf-8") as f:
            old = json.load(f)
        if old.get("params") == params:
            previous = old.get("runs", {})
            if ev is None:
                results["evidently_version"] = old.get("evidently_version")
        else:
            print("--resume: parameters differ from %s; recomputing everything" % args.out,
                  file=sys.stderr)

    for meta, emb in runs:
        name = meta["name"]
        ends = window_ends(emb.shape[0])
        entry = {"name": name, "group": meta["group"], "kind": meta["kind"],
                 "change_index": meta.get("change_index"), "n": int(emb.shape[0]),
                 "dim": int(emb.shape[1]), "ends": ends, "methods": {}}
        if not ends:
            print("warning: %s has %d rows: no window (needs >= %d)"
                  % (name, emb.shape[0], REF + WINDOW), file=sys.stderr)
        old = previous.get(name)
        if old and old.get("n") == entry["n"] and old.get("dim") == entry["dim"]:
            entry["methods"].update(old.get("methods", {}))
        for method in methods:
            if method in entry["methods"]:
                continue
            t0 = time.perf_counter()
            if method == "mmd":
                res = run_mmd(name, emb, ends, args.perms, args.seed)
            else:
                res = run_evidently(ev, emb, ends)
            res["seconds"] = time.perf_counter() - t0
            entry["methods"][method] = res
            print("%s: %s %d windows in %.1f s (%.3f s/window)"
                  % (name, method, len(ends), res["seconds"], res["seconds"] / max(1, len(ends))),
                  file=sys.stderr, flush=True)
        results["runs"][name] = entry
        write_json(args.out, results)

    tables = build_tables(results, methods, alphas)
    print(render_text(tables))
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(render_markdown(tables, results))


if __name__ == "__main__":
    main()
