"""Skills an import found, before they become suggestions the user reviews.

Each source (a language's bytes, a manifest's dependencies, a README, a résumé section) adds
evidence for a skill with its own confidence; `SkillFindings` combines them per skill: the
confidences as independent signals (1 - Π(1 - c)), the highest proficiency, every evidence."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.enrichment.taxonomy import Skill

MIN_CONFIDENCE = 0.4
MAX_SUGGESTIONS = 40
MAX_EVIDENCE = 300
# Suggestions accepted or rejected per call.
MAX_REVIEW = 200


@dataclass
class FoundSkill:
    skill: Skill
    confidence: float
    # 1-5, as the profile's skills.
    proficiency: int
    evidence: list[str] = field(default_factory=list)

    @property
    def evidence_text(self) -> str:
        text = "; ".join(self.evidence)
        return text if len(text) <= MAX_EVIDENCE else text[: MAX_EVIDENCE - 1] + "…"

    def as_dict(self) -> dict:
        return {
            "name": self.skill.name,
            "taxonomy_id": self.skill.id,
            "category": self.skill.category,
            "proficiency": self.proficiency,
            "confidence": round(self.confidence, 3),
            "evidence": self.evidence_text,
        }


class SkillFindings:
    def __init__(self) -> None:
        self._found: dict[str, FoundSkill] = {}

    def add(self, skill: Skill, confidence: float, proficiency: int, evidence: str) -> None:
        confidence = min(max(confidence, 0.0), 0.99)
        proficiency = min(max(proficiency, 1), 5)
        found = self._found.get(skill.id)
        if found is None:
            self._found[skill.id] = FoundSkill(skill, confidence, proficiency, [evidence])
            return
        found.confidence = 1 - (1 - found.confidence) * (1 - confidence)
        found.proficiency = max(found.proficiency, proficiency)
        found.evidence.append(evidence)

    def best(self) -> list[FoundSkill]:
        """The skills confident enough to suggest, most confident first."""
        kept = [f for f in self._found.values() if f.confidence >= MIN_CONFIDENCE]
        kept.sort(key=lambda f: (-f.confidence, -f.proficiency, f.skill.name.casefold()))
        return kept[:MAX_SUGGESTIONS]
