"""Parses a Prometheus text exposition with the official Python client's parser.

Reads the text from the file given as the only argument; prints one JSON object: each metric
family's name -> {"type", "samples": [{"name", "labels", "value"}]}. Exits non-zero when the
parser rejects the text (it raises on malformed lines, bad label syntax or duplicate types).
"""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        text = f.read()
    families = {}
    for family in text_string_to_metric_families(text):
        if family.name in families:
            raise SystemExit(f"metric family {family.name} appears twice")
        families[family.name] = {
            "type": family.type,
            "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in family.samples],
        }
    print(json.dumps(families))


if __name__ == "__main__":
    main()
