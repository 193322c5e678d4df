"""Serving an embedding model on ONNX Runtime: the graph sentence-transformers exports, fed by
the model's own fast tokenizer, mean-pooled and normalized like sentence-transformers does.

How a batch runs (each choice measured side by side, bench/results/embeddings.md):
- The texts are tokenized in one `encode_batch` call, sorted by token count and cut into
  `threads` contiguous chunks; each chunk is padded only to its own longest text.
- The chunks run at once, one per core, on ONE session whose runs are single-threaded
  (`intra_op_num_threads=1`; ONNX Runtime sessions accept concurrent `run` calls). On a
  shared 2-core machine this beat one run on 2 intra-op threads by 1.2-1.7x in texts per
  CPU-second: a BERT layer is ~10 small parallel sections per run, and every one of them
  waits for the slower thread (for a thread that is not even scheduled, on a loaded machine).
- No sentence-transformers `encode` on the serving path: for one short text its tensor
  conversions cost as much as the model run (42 vs 23 ms p50 under load). It stays the
  reference (models.reference_model) and exports the graph.
- fp32: dynamic int8 quantization kept cosine only 0.982-0.987 against the reference on the
  fixed text set (all MatMuls, weights only, or only the 6 feed-forward ones), under the 0.999
  parity bar.

The graph is optimized at level O2 (ONNX Runtime's transformer fusions, no approximations;
cosine >= 0.9999998 against torch), exported once into the model cache (seconds for
all-MiniLM-L6-v2, ~15 s for all-mpnet-base-v2); later starts load it directly."""

from __future__ import annotations

import json
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from services.enrichment.models import ModelSpec, offline, spec_for

ONNX_FILE = "onnx/model_O2.onnx"


def exported_model(spec: ModelSpec, cache_dir: Path) -> Path:
    """The model folder with its ONNX graph optimized at level O2, exported once into
    cache_dir (atomically)."""
    target = cache_dir / f"{spec.model_id}-onnx-o2"
    if (target / ONNX_FILE).exists():
        return target
    from sentence_transformers import SentenceTransformer, export_optimized_onnx_model

    model = SentenceTransformer(str(spec.source()), device="cpu", backend="onnx")
    staging = cache_dir / f".{spec.model_id}-{uuid.uuid4().hex}"
    model.save_pretrained(str(staging))
    export_optimized_onnx_model(model, "O2", str(staging))
    try:
        staging.rename(target)
    except OSError:  # another process exported it meanwhile
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _max_tokens(source: Path) -> int:
    """Tokens per text the model reads (sentence-transformers truncates there too); the model's
    pooling must be the mean over tokens, which is what `Encoder` computes."""
    pooling = json.loads((source / "1_Pooling" / "config.json").read_text())
    if not pooling.get("pooling_mode_mean_tokens") or pooling.get("pooling_mode") not in (None, "mean"):
        raise ValueError(f"{source}: only mean pooling is served, not {pooling}")
    return int(json.loads((source / "sentence_bert_config.json").read_text())["max_seq_length"])


class Encoder:
    """One model on ONNX Runtime. `encode` is blocking CPU work: call it from a worker thread;
    it runs up to `threads` chunks at once (the calling thread runs one of them)."""

    def __init__(self, model_id: str, cache_dir: Path, threads: int) -> None:
        offline()
        import onnxruntime
        from tokenizers import Tokenizer

        self.spec = spec_for(model_id)
        source = self.spec.source()
        cache_dir.mkdir(parents=True, exist_ok=True)
        self._tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
        self._tokenizer.enable_truncation(_max_tokens(source))
        self._tokenizer.no_padding()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        self._session = onnxruntime.InferenceSession(
            str(exported_model(self.spec, cache_dir) / ONNX_FILE), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._threads = threads
        self._pool = ThreadPoolExecutor(threads - 1, thread_name_prefix="embed-run") if threads > 1 else None
        dimensions = self._session.get_outputs()[0].shape[-1]
        if dimensions != self.spec.dimensions:
            raise ValueError(f"model {model_id} has {dimensions} dimensions, not {self.spec.dimensions}")

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        out = np.empty((len(texts), self.spec.dimensions), np.float32)
        if not texts:
            return out
        ids = [encoding.ids for encoding in self._tokenizer.encode_batch(texts)]
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
        parts = min(self._threads, len(texts))
        chunks = [order[k * len(order) // parts : (k + 1) * len(order) // parts] for k in range(parts)]
        others = [self._pool.submit(self._run, [ids[i] for i in chunk]) for chunk in chunks[1:]] if self._pool else []
        out[chunks[0]] = self._run([ids[i] for i in chunks[0]])
        for chunk, future in zip(chunks[1:], others, strict=True):
            out[chunk] = future.result()
        return out

    def _run(self, ids: list[list[int]]) -> np.ndarray:
        """One single-threaded model run over texts of similar length, padded to the longest."""
        lengths = np.fromiter(map(len, ids), np.int64, len(ids))
        input_ids = np.zeros((len(ids), int(lengths.max())), np.int64)
        for row, tokens in enumerate(ids):
            input_ids[row, : len(tokens)] = tokens
        mask = (np.arange(input_ids.shape[1]) < lengths[:, None]).astype(np.int64)
        feed = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        tokens = self._session.run(None, feed)[0]
        # Mean over the real tokens, then unit length (sentence-transformers' Pooling + Normalize).
        pooled = np.matmul(mask[:, None, :].astype(np.float32), tokens)[:, 0, :] / lengths[:, None]
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def close(self) -> None:
        if self._pool:
            self._pool.shutdown(wait=False, cancel_futures=True)
