"""What the profile and enrichment services both say about a skill, said once: the length of a
skill name, and the mapping between the contract's `SkillCategory` enum, the short category ids
the taxonomy and matching's ranking keep ("data_ml"), and the enum's name a profile skill's
`category` string carries ("SKILL_CATEGORY_DATA_ML", what enrichment's enum fields answer in JSON)."""

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


def category_name(value: int) -> str:
    """SKILL_CATEGORY_DATA_ML -> "SKILL_CATEGORY_DATA_ML", a profile skill's category; "" when unspecified
    (as proto3 JSON leaves an unspecified enum out, so an empty string is left out)."""
    if value == enrichment_pb2.SKILL_CATEGORY_UNSPECIFIED:
        return ""
    return enrichment_pb2.SkillCategory.Name(value)


def category_of_name(name: str) -> int:
    """A profile skill's category string -> the enum: "SKILL_CATEGORY_DATA_ML", or the short id
    ("data_ml") profiles stored and announced before profile migration 0005; "" -> unspecified."""
    if not name:
        return enrichment_pb2.SKILL_CATEGORY_UNSPECIFIED
    if name.startswith("SKILL_CATEGORY_"):
        return enrichment_pb2.SkillCategory.Value(name)
    return category_enum(name)
