"""The curated skills taxonomy: an in-memory index for autosuggest and name normalization.

Every name and alias is reduced to a matching key (see `match_key`) once at load; lookups are then a dict
hit (exact), a binary search over the sorted keys (prefix) and one `rapidfuzz` pass over the precomputed
keys of plausible length (typos).
"""

from __future__ import annotations

import bisect
import json
import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from rapidfuzz import process
from rapidfuzz.distance import OSA

DATA_PATH = Path(__file__).parent / "data" / "skills.json"
CATEGORIES = ("engineering", "data_ml", "design", "product", "sales", "marketing", "operations", "finance", "legal")

# Fuzzy similarity is the optimal-string-alignment similarity of two keys: 1 - edits / longer length, a swap
# of adjacent letters being one edit. Normalization takes a typo at >= 0.85 when the first letter agrees:
# one edit in 7+ characters ("kubernets", "typescrpt"), two in 14+. One edit in a 6-letter name too often
# lands on another real word ("canvas" is not Canva, "schema" not Scheme, "hiking" not "hiring"), and typos
# seldom hit the first letter where distinct terms often differ ("Cython", "Elm Architecture"). On the
# bundled data 94% of random one-letter typos of names and aliases of 6+ characters normalize to their skill
# and none to another; the rest stay custom, and search still suggests the skill ("pyhton" -> Python).
NORMALIZE_THRESHOLD = 0.85
# Autosuggest may be looser than normalization (the user picks from the list), but not below one typo
# in four characters.
SEARCH_FUZZY_CUTOFF = 0.7
# Input with fewer letters and digits than this gets exact and prefix matches only: at 1-2 characters
# every skill is "close". Symbols do not count, so "C#" (key "csharp") is not a typo of "F#".
MIN_FUZZY_LENGTH = 3

# Score bands keep search results in tier order: exact 1.0, then prefix of a whole name or alias
# (0.8-0.95), then prefix of a later word in it (0.6-0.75), then fuzzy (below 0.6).
_PREFIX_BASE, _WORD_PREFIX_BASE, _BAND_WIDTH = 0.8, 0.6, 0.15
_FUZZY_WEIGHT, _WORD_FUZZY_WEIGHT = 0.6, 0.5

_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
# A dot that starts a word is spoken ("dot"): ".NET" must not collapse to "NET".
_LEADING_DOT = re.compile(r"(?<![a-z0-9])\.(?=[a-z0-9])")
_SYMBOLS = {"+": "plus", "#": "sharp", "&": "and"}
_NON_KEY = re.compile(r"[^a-z0-9]")
_WORD = re.compile(r"[^\s\-/(_]+")
_STOP_WORDS = frozenset({"a", "an", "and", "for", "in", "of", "on", "the", "to", "with"})


def match_key(text: str) -> str:
    """The form names are compared in: case, accents, spacing and punctuation are ignored, but the
    symbols that tell skills apart are spelled out, so "React.js" == "reactjs" == "React JS" while
    "C", "C++" ("cplusplus"), "C#" ("csharp") and ".NET" ("dotnet") stay distinct."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    text = _LEADING_DOT.sub("dot", text)
    for symbol, spelled in _SYMBOLS.items():
        text = text.replace(symbol, spelled)
    return _NON_KEY.sub("", text)


def clean_name(text: str) -> str:
    """Trimmed, with inner whitespace collapsed to single spaces."""
    return " ".join(text.split())


@dataclass(frozen=True)
class Skill:
    id: str
    name: str
    category: str
    aliases: tuple[str, ...]


@dataclass(frozen=True)
class SkillHit:
    """A search result: `score` is 0-1 and `matched` is the name or alias that matched."""

    skill: Skill
    score: float
    matched: str


@dataclass(frozen=True)
class Normalization:
    """`name` is the canonical name, or the cleaned input for a custom skill (`skill` None, confidence 0)."""

    skill: Skill | None
    confidence: float
    name: str
    custom: bool


@dataclass(frozen=True)
class _Label:
    """One matchable key pointing at its skill: a name or alias (`text`), or, if `word`, the part of one
    from a later word on. `span` is the length of the whole text's key, for how much of it a prefix covers."""

    key: str
    skill: Skill
    text: str
    word: bool
    span: int


class SkillTaxonomy:
    """Read-only after construction, so one instance can serve all requests."""

    def __init__(self, skills: Iterable[Skill]) -> None:
        self._by_id: dict[str, Skill] = {}
        self._exact: dict[str, _Label] = {}
        labels: list[_Label] = []
        for skill in skills:
            _validate(skill)
            if skill.id in self._by_id:
                raise ValueError(f"duplicate skill id {skill.id!r}")
            self._by_id[skill.id] = skill
            for label in _labels(skill):
                if not label.word:
                    other = self._exact.setdefault(label.key, label)
                    if other.skill is not skill:
                        raise ValueError(
                            f"{label.text!r} of {skill.id!r} collides with {other.text!r} of {other.skill.id!r}"
                        )
                labels.append(label)

        labels.sort(key=lambda label: label.key)
        self._sorted: list[_Label] = labels
        self._sorted_keys = [label.key for label in labels]
        # Normalization is fuzzy over whole names and aliases; search also over the later-word labels, per
        # category so that a filtered search still gets its full share of matches.
        self._whole = _Choices([label for label in labels if not label.word])
        self._fuzzy = {
            category: _Choices([label for label in labels if category in (None, label.skill.category)])
            for category in (None, *CATEGORIES)
        }

    @classmethod
    def load(cls, path: Path | None = None) -> SkillTaxonomy:
        data = json.loads((path or DATA_PATH).read_text(encoding="utf-8"))
        return cls(
            Skill(id=s["id"], name=s["name"], category=s["category"], aliases=tuple(s.get("aliases", ())))
            for s in data["skills"]
        )

    @property
    def skills(self) -> tuple[Skill, ...]:
        return tuple(self._by_id.values())

    def get(self, skill_id: str) -> Skill | None:
        return self._by_id.get(skill_id)

    def search(self, query: str, limit: int = 10, category: str | None = None) -> list[SkillHit]:
        """Autosuggest: exact name/alias matches, then prefix matches, then typo-tolerant ones, best first."""
        if category is not None and category not in CATEGORIES:
            raise ValueError(f"unknown category {category!r}")
        key = match_key(query)
        if not key or limit < 1:
            return []
        fuzzy = _alphanumerics(query) >= MIN_FUZZY_LENGTH

        best: dict[str, SkillHit] = {}

        def offer(label: _Label, score: float) -> None:
            if category is not None and label.skill.category != category:
                return
            current = best.get(label.skill.id)
            if current is None or score > current.score:
                best[label.skill.id] = SkillHit(label.skill, score, label.text)

        exact = self._exact.get(key)
        if exact is not None:
            offer(exact, 1.0)
        for index in range(bisect.bisect_left(self._sorted_keys, key), len(self._sorted)):
            label = self._sorted[index]
            if not label.key.startswith(key):
                break
            if label.word or label.key != key:
                offer(label, (_WORD_PREFIX_BASE if label.word else _PREFIX_BASE) + _BAND_WIDTH * len(key) / label.span)

        # Fuzzy scores sit below every prefix score, so they can only fill a list that is not yet full.
        if fuzzy and len(best) < limit:
            for similarity, label in self._fuzzy[category].extract(key, SEARCH_FUZZY_CUTOFF, limit=4 * limit):
                offer(label, similarity * (_WORD_FUZZY_WEIGHT if label.word else _FUZZY_WEIGHT))

        return sorted(best.values(), key=lambda hit: (-hit.score, hit.skill.name.casefold()))[:limit]

    def normalize(self, name: str) -> Normalization:
        """The taxonomy skill a name as typed stands for, or the cleaned name as a custom skill.

        An exact name or alias match has confidence 1.0; a typo of a whole name or alias (similarity at
        least `NORMALIZE_THRESHOLD`, same first letter) has its similarity. A typo equally close to two
        skills stays custom.
        """
        cleaned = clean_name(name)
        key = match_key(cleaned)
        custom = Normalization(skill=None, confidence=0.0, name=cleaned, custom=True)
        if not key:
            return custom
        exact = self._exact.get(key)
        if exact is not None:
            return Normalization(skill=exact.skill, confidence=1.0, name=exact.skill.name, custom=False)
        if _alphanumerics(cleaned) < MIN_FUZZY_LENGTH:
            return custom

        # A few candidates are enough to see whether the best one is tied with another skill.
        candidates = self._whole.extract(key, NORMALIZE_THRESHOLD, limit=8)
        matches = [(similarity, label) for similarity, label in candidates if label.key[0] == key[0]]
        if not matches:
            return custom
        similarity, label = matches[0]
        if any(s == similarity and other.skill is not label.skill for s, other in matches[1:]):
            return custom
        return Normalization(skill=label.skill, confidence=similarity, name=label.skill.name, custom=False)


def _validate(skill: Skill) -> None:
    if not _SLUG.fullmatch(skill.id):
        raise ValueError(f"skill id {skill.id!r} is not a lowercase slug")
    if skill.category not in CATEGORIES:
        raise ValueError(f"skill {skill.id!r} has unknown category {skill.category!r}")
    for text in (skill.name, *skill.aliases):
        if not match_key(text):
            raise ValueError(f"skill {skill.id!r} has a name or alias with nothing to match: {text!r}")


def _alphanumerics(text: str) -> int:
    return sum(char.isalnum() for char in text)


class _Choices:
    """Fuzzy candidates sorted by key length. A key whose length differs from the query's by more than the
    cutoff allows cannot reach it (edits >= length difference), so only the slice in between is scored."""

    def __init__(self, labels: list[_Label]) -> None:
        self._labels = sorted(labels, key=lambda label: len(label.key))
        self._keys = [label.key for label in self._labels]
        self._lengths = [len(key) for key in self._keys]

    def extract(self, key: str, cutoff: float, limit: int) -> list[tuple[float, _Label]]:
        """Up to `limit` (similarity, label) pairs with similarity >= cutoff, most similar first."""
        low = bisect.bisect_left(self._lengths, math.ceil(len(key) * cutoff - 1e-9))
        high = bisect.bisect_right(self._lengths, math.floor(len(key) / cutoff + 1e-9))
        matches = process.extract(
            key, self._keys[low:high], scorer=OSA.normalized_similarity, score_cutoff=cutoff, limit=limit
        )
        return [(similarity, self._labels[low + index]) for _, similarity, index in matches]


def _labels(skill: Skill) -> list[_Label]:
    """The skill's name and aliases, plus each of them from its second, third... word on (for "learn" ->
    "Machine Learning"), skipping words like "and", one label per distinct key."""
    labels: dict[str, _Label] = {}
    texts = [(text, match_key(text)) for text in (skill.name, *skill.aliases)]
    for text, key in texts:
        labels.setdefault(key, _Label(key, skill, text, word=False, span=len(key)))
    for text, whole in texts:
        for word in list(_WORD.finditer(text))[1:]:
            key = match_key(text[word.start() :])
            if key and word.group().lower() not in _STOP_WORDS:
                labels.setdefault(key, _Label(key, skill, text, word=True, span=len(whole)))
    return list(labels.values())


@cache
def default_taxonomy() -> SkillTaxonomy:
    """The taxonomy from the bundled data file, loaded on first use."""
    return SkillTaxonomy.load()
