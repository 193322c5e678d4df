"""The model runs alone, in this process (no gRPC, no batching across requests): where the
EmbedTexts ratios come from. Side by side, interleaved, on the same texts:

  torch      sentence-transformers on torch (the peer's encode call)
  st-onnx    sentence-transformers' ONNX backend on the same O2 graph, one run on 2 intra-op
             threads (how the service ran before services/enrichment/encoder.py)
  encoder    the service's Encoder: length-sorted chunks, one single-threaded run per core

Figures per path and cell: median ms per call and texts per CPU-second (this process's user +
system time over the cell, so whatever share of the cores it got)."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

from bench.embedding_texts import skill_phrases, summaries
from services.enrichment.encoder import ONNX_FILE, Encoder, exported_model
from services.enrichment.models import DEFAULT_MODEL, reference_model, spec_for

FLOOR_PATHS = ("torch", "st-onnx", "encoder")
# (cell, texts, calls per path and round)
FLOOR_CELLS = (
    ("skills b1", skill_phrases(1), 40),
    ("skills b64", skill_phrases(64), 8),
    ("summaries b1", summaries(1), 30),
    ("summaries b64", summaries(64), 3),
)


def _st_onnx(folder: Path, threads: int):
    import onnxruntime
    from sentence_transformers import SentenceTransformer

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    model = SentenceTransformer(
        str(folder),
        device="cpu",
        backend="onnx",
        model_kwargs={"provider": "CPUExecutionProvider", "session_options": options, "file_name": ONNX_FILE},
    )
    return lambda texts: model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)


def run_floor(cache: Path, rounds: int, log) -> dict:
    """`cache`: the model cache holding the exported graph (the mesh's)."""
    threads = os.cpu_count() or 1
    reference = reference_model(DEFAULT_MODEL)
    encoder = Encoder(DEFAULT_MODEL, cache, threads)
    paths = {
        "torch": lambda texts: reference.encode(texts, normalize_embeddings=True, show_progress_bar=False),
        "st-onnx": _st_onnx(exported_model(spec_for(DEFAULT_MODEL), cache), threads),
        "encoder": encoder.encode,
    }
    samples = {name: {path: {"ms": [], "cpu": 0.0, "texts": 0} for path in FLOOR_PATHS} for name, *_ in FLOOR_CELLS}
    try:
        for _, texts, _calls in FLOOR_CELLS:  # warm-up
            for encode in paths.values():
                encode(texts)
        for round_no in range(rounds):
            for name, texts, calls in FLOOR_CELLS:
                for i in range(calls):
                    order = FLOOR_PATHS if (round_no + i) % 2 == 0 else tuple(reversed(FLOOR_PATHS))
                    for path in order:
                        cell = samples[name][path]
                        cpu, start = time.process_time(), time.perf_counter()
                        paths[path](texts)
                        cell["ms"].append((time.perf_counter() - start) * 1000)
                        cell["cpu"] += time.process_time() - cpu
                        cell["texts"] += len(texts)
                log(
                    f"floor round {round_no + 1} {name:14} "
                    + "  ".join(f"{p} {statistics.median(samples[name][p]['ms']):7.1f} ms" for p in FLOOR_PATHS)
                )
    finally:
        encoder.close()
    return {
        name: {
            path: {"ms_p50": statistics.median(s["ms"]), "texts_per_cpu_s": s["texts"] / max(s["cpu"], 1e-3)}
            for path, s in by_path.items()
        }
        for name, by_path in samples.items()
    }
