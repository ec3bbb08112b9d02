#!/usr/bin/env python3
"""Raw Python ONNX Runtime throughput of the embedding model (the reference
for the server's throughput benchmark).

Does what the server's embedder does, with no server around it: tokenize
(tokenizers, truncation to 256 tokens, padding to the longest text of the
batch), run model.onnx with ONNX Runtime, mean-pool over the attention mask,
L2-normalise. Texts are taken in file order in batches of --batch, cycling
through the file until --seconds have passed (after a short warm-up).
Prints one JSON line, e.g.

  {"impl": "python-onnxruntime", "sentences_per_s": 123.4, ...}

Needs: numpy, onnxruntime (1.31.1 to match the server), tokenizers.

  python3 scripts/bench_python_ort.py --model-dir models --threads 2 \
      --texts texts.txt --batch 8 --seconds 10
"""

import argparse
import json
import os
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", default=os.environ.get("DRIFTBALLOON_MODEL_DIR", "models"),
                   help="directory made by scripts/fetch-models.sh (holding all-MiniLM-L6-v2/), "
                        "or the all-MiniLM-L6-v2 directory itself (default: $DRIFTBALLOON_MODEL_DIR or ./models)")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (default 1)")
    p.add_argument("--texts", required=True, help="file with one text per line (empty lines are skipped)")
    p.add_argument("--batch", type=int, default=8, help="texts per model run (default 8)")
    p.add_argument("--seconds", type=float, default=10.0, help="measure for at least this long (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="batches run before measuring (default 3)")
    p.add_argument("--max-length", type=int, default=256, help="truncate to this many tokens (default 256)")
    p.add_argument("--allow-spinning", action="store_true",
                   help="let idle intra-op threads spin (the server disables spinning when threads > 1)")
    p.add_argument("--output-embeddings", metavar="FILE",
                   help="also write {\"texts\": [...], \"vectors\": [...]} for every text of the file (embedded once, "
                        "in batches of --batch) to FILE, for comparison with the Rust embedder")
    a = p.parse_args()
    if a.threads < 1 or a.batch < 1 or a.max_length < 3:
        p.error("--threads and --batch must be >= 1, --max-length >= 3")
    return a


def model_files(model_dir):
    for d in (os.path.join(model_dir, "all-MiniLM-L6-v2"), model_dir):
        onnx = os.path.join(d, "model.onnx")
        tok = os.path.join(d, "tokenizer.json")
        if os.path.isfile(onnx) and os.path.isfile(tok):
            return onnx, tok
    sys.exit(f"bench_python_ort: model.onnx and tokenizer.json not found under {model_dir} "
             "(run `make models` / scripts/fetch-models.sh)")


class Embedder:
    def __init__(self, onnx_path, tokenizer_path, threads, max_length, allow_spinning):
        import numpy as np
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.np = np
        tok = Tokenizer.from_file(tokenizer_path)
        # tokenizer.json ships fixed 128-token padding/truncation: replace both
        # with what the server uses (truncate to max_length, pad to batch longest).
        tok.no_padding()
        tok.no_truncation()
        tok.enable_truncation(max_length=max_length)
        pad_id = tok.token_to_id("[PAD]")
        tok.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")
        self.tok = tok

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads > 1 and not allow_spinning:
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.sess = ort.InferenceSession(onnx_path, sess_options=so, providers=["CPUExecutionProvider"])
        self.input_names = {i.name for i in self.sess.get_inputs()}
        self.ort_version = ort.__version__

    def token_count(self, text):
        return len(self.tok.encode(text).ids)

    def embed(self, texts):
        np = self.np
        enc = self.tok.encode_batch(list(texts))
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.input_names:
            feeds["token_type_ids"] = np.array([e.type_ids for e in enc], dtype=np.int64)
        hidden = self.sess.run(None, feeds)[0]  # [batch, seq, 384]
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1.0)
        norm = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / (norm + 1e-12)


def main():
    a = parse_args()
    with open(a.texts, encoding="utf-8") as f:
        texts = [line.rstrip("\n") for line in f]
    texts = [t for t in texts if t.strip()]
    if not texts:
        sys.exit(f"bench_python_ort: no texts in {a.texts}")

    onnx_path, tok_path = model_files(a.model_dir)
    emb = Embedder(onnx_path, tok_path, a.threads, a.max_length, a.allow_spinning)
    batches = [texts[i:i + a.batch] for i in range(0, len(texts), a.batch)]

    if a.output_embeddings:
        vectors = []
        for b in batches:
            vectors.extend(emb.embed(b).tolist())
        with open(a.output_embeddings, "w", encoding="utf-8") as f:
            json.dump({"texts": texts, "vectors": vectors}, f)

    for i in range(a.warmup):
        emb.embed(batches[i % len(batches)])

    n = 0
    runs = 0
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < a.seconds:
        b = batches[runs % len(batches)]
        emb.embed(b)
        n += len(b)
        runs += 1
        elapsed = time.perf_counter() - start

    tokens = [emb.token_count(t) for t in texts]
    print(json.dumps({
        "impl": "python-onnxruntime",
        "onnxruntime": emb.ort_version,
        "threads": a.threads,
        "batch": a.batch,
        "texts_file": a.texts,
        "distinct_texts": len(texts),
        "avg_tokens": round(sum(tokens) / len(tokens), 1),
        "sentences": n,
        "runs": runs,
        "seconds": round(elapsed, 3),
        "sentences_per_s": round(n / elapsed, 2),
    }))


if __name__ == "__main__":
    main()
