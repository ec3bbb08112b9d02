#!/usr/bin/env python3
"""How the refusal-rate test's windows were chosen: a simulation of refusal creeps against a
frozen reference of 200 samples, at the default false-alarm budget, for several window
designs. Each window of a design has a share of the detector's half of the budget and is
tested every `every` samples, spending that many samples' worth per test (src/drift/budget.rs);
the p-value is the one-sided Fisher exact test of src/drift/rate.rs.

Flags are Bernoulli: the reference's rate r0 (the recogniser's false hits on answers plus the
answers' own refusals, 1-2 % on the benchmark's llm-answers), and after the change
creep * recall + (1 - creep) * r0, with the recogniser's recall on real refusals (0.895).
Prints, per design, creep and r0, the share of runs detected within 100 samples (20 % creep)
or 40 samples (40 % creep). Needs numpy and scipy (the compare venv has both).

  .venv-compare/bin/python scripts/rate_design_sim.py [--trials 300]
"""

import argparse
import functools

import numpy as np
from scipy.stats import hypergeom

PER_SAMPLE = 1e-5 / 2  # default budget (1 per 100,000), halved between the two detectors
RECALL = 0.895
DESIGNS = {
    "before: 20/50/100, every sample, 1/3 each": ([20, 50, 100], [1, 1, 1], [1 / 3, 1 / 3, 1 / 3]),
    "20/50/100, every length/5, 1/3 each": ([20, 50, 100], [4, 10, 20], [1 / 3, 1 / 3, 1 / 3]),
    "20/50/100, every length/10, 1/3 each": ([20, 50, 100], [2, 5, 10], [1 / 3, 1 / 3, 1 / 3]),
    "25/100, every length/5, 0.4/0.6": ([25, 100], [5, 20], [0.4, 0.6]),
    "chosen: 20/40/100, every length/5, 0.3/0.3/0.4": ([20, 40, 100], [4, 8, 20], [0.3, 0.3, 0.4]),
}


@functools.lru_cache(maxsize=None)
def fisher(k, m, k0, n0):
    if k == 0 or k / m <= k0 / max(n0, 1):
        return 1.0
    return hypergeom.sf(k - 1, m + n0, k + k0, m)


def first_alarm(reference, after, design):
    windows, every, share = design
    n0, k0 = len(reference), int(sum(reference))
    recent = []
    for i, flagged in enumerate(after):
        recent.append(flagged)
        for w, e, s in zip(windows, every, share):
            if len(recent) >= w and (i + 1) % e == 0 and fisher(sum(recent[-w:]), w, k0, n0) <= PER_SAMPLE * s * e:
                return i + 1
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=300)
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    print("| design | r0 | 20 % creep within 100 | 40 % creep within 40 |")
    print("| --- | ---: | ---: | ---: |")
    for r0 in (0.01, 0.02):
        runs = {}
        for creep, limit in ((0.2, 100), (0.4, 40)):
            r1 = creep * RECALL + (1 - creep) * r0
            trials = [(rng.random(200) < r0, list(rng.random(150) < r1)) for _ in range(args.trials)]
            for name, design in DESIGNS.items():
                hits = sum(1 for ref, after in trials if (d := first_alarm(ref, after, design)) and d <= limit)
                runs.setdefault(name, []).append(hits / args.trials)
        for name, (c20, c40) in runs.items():
            print("| %s | %.0f %% | %.2f | %.2f |" % (name, 100 * r0, c20, c40))


if __name__ == "__main__":
    main()
