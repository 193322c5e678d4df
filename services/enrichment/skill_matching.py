"""The embedding path of skill normalization: a name the taxonomy does not know by name, alias
or typo maps to the canonical skill whose name or alias is nearest in meaning, when the
cosine similarity reaches the model's `skill_threshold` (services/enrichment/models.py) and
beats the next other skill by `MIN_MARGIN`; else it stays a custom skill.

The taxonomy's names and aliases are embedded once per model and taxonomy version and kept
under the data dir (a .npy file), so later starts only read them."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from services.enrichment.embedder import Embedder
from services.enrichment.taxonomy import Normalization, Skill, SkillTaxonomy, clean_name

# The best skill must beat the next other skill by this much, or the name is ambiguous
# ("android apps": Android Development 0.816, Mobile Development 0.815 with MiniLM).
MIN_MARGIN = 0.02
# Names embedded per request while the taxonomy's vectors are computed.
LOAD_CHUNK = 64


@dataclass(frozen=True)
class _Labels:
    texts: list[str]
    skills: list[Skill]

    @classmethod
    def of(cls, taxonomy: SkillTaxonomy) -> _Labels:
        texts, skills = [], []
        for skill in taxonomy.skills:
            for text in dict.fromkeys((skill.name, *skill.aliases)):
                texts.append(text)
                skills.append(skill)
        return cls(texts, skills)

    def digest(self) -> str:
        return hashlib.sha256("\n".join(self.texts).encode()).hexdigest()[:16]


class SkillNormalizer:
    def __init__(self, taxonomy: SkillTaxonomy, embedder: Embedder, cache_dir: Path) -> None:
        self._taxonomy, self._embedder, self._cache_dir = taxonomy, embedder, cache_dir
        self._labels = _Labels.of(taxonomy)
        self._matrix: np.ndarray | None = None

    @property
    def cache_path(self) -> Path:
        return self._cache_dir / f"taxonomy-{self._embedder.model_id}-{self._labels.digest()}.npy"

    async def load(self) -> None:
        """Reads the taxonomy's vectors from the model cache, or computes and stores them
        (~3,100 names and aliases: seconds of CPU, in the embedder's worker)."""
        path = self.cache_path
        matrix = None
        if path.exists():
            matrix = await asyncio.to_thread(np.load, path)
            if matrix.shape != (len(self._labels.texts), self._embedder.dimensions):
                matrix = None
        if matrix is None:
            # In chunks: requests that arrive meanwhile get their turn between two.
            texts = self._labels.texts
            chunks = [await self._embedder.embed(texts[i : i + LOAD_CHUNK]) for i in range(0, len(texts), LOAD_CHUNK)]
            matrix = np.concatenate(chunks)
            path.parent.mkdir(parents=True, exist_ok=True)
            staging = path.with_suffix(f".{id(self)}.tmp.npy")
            await asyncio.to_thread(np.save, staging, matrix)
            staging.replace(path)
        self._matrix = matrix

    async def nearest(self, names: list[str]) -> list[tuple[Skill, float, float]]:
        """For each name: the nearest skill, its cosine similarity, and the margin over the
        nearest other skill."""
        if self._matrix is None or not names:
            return []
        scores = (await self._embedder.embed(names)) @ self._matrix.T
        results = []
        for row in scores:
            order = np.argsort(-row)
            best = self._labels.skills[order[0]]
            runner_up = next((row[i] for i in order[1:] if self._labels.skills[i] is not best), 0.0)
            results.append((best, float(row[order[0]]), float(row[order[0]] - runner_up)))
        return results

    async def normalize(self, names: list[str]) -> list[Normalization]:
        """The taxonomy's answer for each name, with unknown names tried by meaning."""
        results = [self._taxonomy.normalize(name) for name in names]
        unknown = [i for i, result in enumerate(results) if result.custom and result.name]
        if self._matrix is None or not unknown:
            return results
        nearest = await self.nearest([clean_name(names[i]) for i in unknown])
        for i, (skill, score, margin) in zip(unknown, nearest, strict=True):
            if score >= self._embedder.spec.skill_threshold and margin >= MIN_MARGIN:
                results[i] = Normalization(skill=skill, confidence=round(score, 4), name=skill.name, custom=False)
        return results
