#!/usr/bin/env python3
"""Export each benchmark run's embeddings, as the server stored them, for the offline
comparison (scripts/behaviour_compare.py).

Reads the quality benchmark's per-run results (--results, written by quality_bench.py) and
the benchmark server's SQLite database (--db), and writes <out>/<run>.npz (array `emb`:
float32, one row per sample in arrival order, both prompt versions) and <out>/<run>.json
({"name", "group", "kind", "change_index"}). Needs numpy (the compare venv has it).

  .venv-compare/bin/python scripts/behaviour_export.py --db quality.db \\
      --results quality-results.json --out bench-data/embeddings
"""

import argparse
import json
import os
import sqlite3
import sys

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    results = json.load(open(args.results, encoding="utf-8"))
    runs = results["runs"] if isinstance(results, dict) and "runs" in results else results
    db = sqlite3.connect("file:%s?mode=ro" % args.db, uri=True)
    written = 0
    for run in runs:
        rows = db.execute(
            "SELECT s.embedding FROM samples s JOIN prompts p ON p.id = s.prompt_id "
            "WHERE p.name = ? AND s.embedding IS NOT NULL ORDER BY s.id", (run["prompt"],)).fetchall()
        if len(rows) != run["samples"]:
            sys.exit("run %s: %d embeddings for %d samples" % (run["prompt"], len(rows), run["samples"]))
        emb = np.stack([np.frombuffer(r[0], dtype="<f4") for r in rows]).astype(np.float32)
        stem = "%s-%d" % (run["name"], run["seed"])
        np.savez_compressed(os.path.join(args.out, stem + ".npz"), emb=emb)
        meta = {"name": stem, "group": run["name"],
                "kind": "stable" if run["type"] == "stable" else "scenario",
                "change_index": run.get("change_index")}
        with open(os.path.join(args.out, stem + ".json"), "w", encoding="utf-8") as f:
            json.dump(meta, f)
        written += 1
    print("wrote %d runs to %s" % (written, args.out))


if __name__ == "__main__":
    main()
