"""Finds taxonomy skills named in free text (a README, a résumé): every run of one to four
words is compared, by the taxonomy's matching key, with the skills' names and aliases; the
longest match at a position wins ("Machine Learning" rather than "Learning").

Exact matches only (prose is full of words one typo away from a skill). Names of one or two
letters ("Go", "R", "C", "JS") count only when written exactly as the taxonomy writes them and
not at the start of a sentence (after ".", "!" or "?"), where "Go" is usually a verb."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from services.enrichment.taxonomy import Skill, SkillTaxonomy, match_key

MAX_WORDS = 4
SHORT_KEY = 2
# A word: letters/digits with the symbols that tell skills apart inside or after it
# ("C++", "C#", "Node.js", "CI/CD"), optionally after a dot that starts it (".NET").
_TOKEN = re.compile(r"\.?[A-Za-z0-9](?:[A-Za-z0-9+#]|[./\-](?=[A-Za-z0-9]))*[+#]*")
_SENTENCE_END = re.compile(r"[.!?]\s*$")


@dataclass(frozen=True)
class Mention:
    skill: Skill
    count: int
    # As written the first time.
    text: str


class PhraseMatcher:
    """Read-only after construction; build once per taxonomy."""

    def __init__(self, taxonomy: SkillTaxonomy, categories: frozenset[str] | None = None) -> None:
        self._skills: dict[str, Skill] = {}
        self._exact_forms: dict[str, set[str]] = {}
        for skill in taxonomy.skills:
            if categories is not None and skill.category not in categories:
                continue
            for text in (skill.name, *skill.aliases):
                key = match_key(text)
                if key and key not in self._skills:
                    self._skills[key] = skill
                    self._exact_forms.setdefault(key, set())
                if key and len(key) <= SHORT_KEY:
                    self._exact_forms[key].add(text)

    def find(self, text: str) -> list[Mention]:
        """Skills named in `text`, most mentioned first."""
        tokens = list(_TOKEN.finditer(text))
        counts: Counter[str] = Counter()
        first: dict[str, tuple[Skill, str]] = {}
        i = 0
        while i < len(tokens):
            for n in range(min(MAX_WORDS, len(tokens) - i), 0, -1):
                start, end = tokens[i].start(), tokens[i + n - 1].end()
                if n > 1 and "\n" in text[start:end]:
                    continue  # a phrase does not run across lines
                written = text[start:end]
                key = match_key(written)
                skill = self._skills.get(key)
                if skill is None or not self._plausible(key, written, text, start):
                    continue
                counts[skill.id] += 1
                first.setdefault(skill.id, (skill, written))
                i += n
                break
            else:
                i += 1
        return [Mention(first[skill_id][0], count, first[skill_id][1]) for skill_id, count in counts.most_common()]

    def _plausible(self, key: str, written: str, text: str, start: int) -> bool:
        if len(key) > SHORT_KEY:
            return True
        if written not in self._exact_forms.get(key, ()):
            return False
        before = text[max(0, start - 3) : start]
        return bool(text[:start].strip()) and not _SENTENCE_END.search(before)
