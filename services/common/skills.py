"""What the profile and enrichment services both say about a skill, said once: the length of a
skill name, and the mapping between the contract's `SkillCategory` enum and the short category
ids the taxonomy and the profile store keep ("data_ml")."""

from __future__ import annotations

from openhr.enrichment.v1 import enrichment_pb2

MAX_SKILL_NAME = 60


def category_id(value: int) -> str:
    """SKILL_CATEGORY_DATA_ML -> "data_ml"; "" when unspecified."""
    if value == enrichment_pb2.SKILL_CATEGORY_UNSPECIFIED:
        return ""
    return enrichment_pb2.SkillCategory.Name(value).removeprefix("SKILL_CATEGORY_").lower()


def category_enum(category: str) -> int:
    """ "data_ml" -> SKILL_CATEGORY_DATA_ML; "" -> SKILL_CATEGORY_UNSPECIFIED."""
    if not category:
        return enrichment_pb2.SKILL_CATEGORY_UNSPECIFIED
    return enrichment_pb2.SkillCategory.Value(f"SKILL_CATEGORY_{category.upper()}")
