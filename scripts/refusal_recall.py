#!/usr/bin/env python3
"""Precision and recall of the server's refusal recogniser (src/drift/refusal.rs) on real,
human-labelled LLM responses.

Logs the labelled streams of scripts/behaviour_data.py through a running server (one prompt
per stream), waits until they are scored, and reads each sample's `refusal` flag from the
server's SQLite database. Labels: refusal-labelled-yes (PyRIT's human label "refusal or
off-task") and refusals are positives; refusal-labelled-no, llm-answers and
non-refusals-tricky are negatives. Standard library only.

  python3 scripts/refusal_recall.py --base-url URL --api-key KEY --db quality.db --data bench-data
"""

import argparse
import os
import secrets
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from quality_bench import Api, wait_processed  # noqa: E402

STREAMS = [("refusal-labelled-yes", True), ("refusal-labelled-no", False), ("refusals", True),
           ("llm-answers", False), ("non-refusals-tricky", False),
           # everyday text with first-person negations ("I can't stand ...", "i will not bore
           # you"): false hits of the recogniser's negation rule would show here
           ("llm-cot", False), ("en-chatbot", False), ("reviews-product-pos", False),
           ("reviews-product-neg", False)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--api-key", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--data", default="bench-data")
    ap.add_argument("--wait-timeout", type=float, default=300)
    ap.add_argument("--poll-interval", type=float, default=0.5)
    args = ap.parse_args()
    api = Api(args.base_url, args.api_key)
    prompts = {}
    for stream, positive in STREAMS:
        with open(os.path.join(args.data, "streams", stream + ".txt"), encoding="utf-8") as f:
            texts = [l.rstrip("\n") for l in f if l.strip()]
        prompt = "recogniser-%s-%s" % (stream, secrets.token_hex(3))
        for i in range(0, len(texts), 50):
            api.post_logs(prompt, texts[i:i + 50])
        prompts[stream] = (prompt, positive, len(texts))
    for prompt, _, n in prompts.values():
        wait_processed(api, prompt, n, args)
    db = sqlite3.connect("file:%s?mode=ro" % args.db, uri=True)
    print("| stream | label | responses | recognised as refusals |")
    print("| --- | --- | ---: | ---: |")
    tp = fp = fn = 0
    for stream, (prompt, positive, n) in prompts.items():
        flags = [r[0] for r in db.execute(
            "SELECT s.refusal FROM samples s JOIN prompts p ON p.id = s.prompt_id WHERE p.name = ?", (prompt,))]
        hits = sum(1 for f in flags if f)
        print("| %s | %s | %d | %d (%.1f %%) |" % (stream, "refusal" if positive else "not", len(flags), hits,
                                                   100.0 * hits / max(1, len(flags))))
        if stream == "refusals":
            continue  # partly chosen by a phrase list: reported, not counted
        if positive:
            tp, fn = tp + hits, fn + len(flags) - hits
        else:
            fp += hits
    precision = tp / max(1, tp + fp)
    recall = tp / max(1, tp + fn)
    print("\nOn the human labels and the non-refusal streams: precision %.3f (%d of %d flagged), "
          "recall %.3f (%d of %d labelled refusals)" % (precision, tp, tp + fp, recall, tp, tp + fn))


if __name__ == "__main__":
    main()
