"""The curated skills taxonomy: its data file and its search and normalization."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from services.enrichment.taxonomy import (
    CATEGORIES,
    DATA_PATH,
    NORMALIZE_THRESHOLD,
    Skill,
    SkillTaxonomy,
    default_taxonomy,
    match_key,
)

DATA = json.loads(DATA_PATH.read_text(encoding="utf-8"))
TAXONOMY = SkillTaxonomy.load()


def ids(query: str, limit: int = 10, category: str | None = None) -> list[str]:
    return [hit.skill.id for hit in TAXONOMY.search(query, limit, category)]


def top(query: str, category: str | None = None) -> str | None:
    return next(iter(ids(query, category=category)), None)


# The data file


def test_data_file_has_version_and_enough_skills() -> None:
    assert DATA["version"] == 1
    assert len(DATA["skills"]) >= 1000
    assert len(TAXONOMY.skills) == len(DATA["skills"])


def test_every_category_has_a_substantial_share() -> None:
    counts = Counter(skill["category"] for skill in DATA["skills"])
    assert set(counts) == set(CATEGORIES)
    assert all(counts[category] >= 50 for category in CATEGORIES), counts
    assert {category for category, _ in counts.most_common(2)} == {"engineering", "data_ml"}


def test_ids_are_unique_slugs_and_records_are_complete() -> None:
    skill_ids = [skill["id"] for skill in DATA["skills"]]
    assert len(skill_ids) == len(set(skill_ids))
    for skill in DATA["skills"]:
        assert set(skill) == {"id", "name", "category", "aliases"}
        assert re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", skill["id"]), skill["id"]
        assert skill["name"] == skill["name"].strip() and skill["name"]
        assert all(isinstance(alias, str) and alias == alias.strip() and alias for alias in skill["aliases"])


def test_no_filler_names() -> None:
    for skill in DATA["skills"]:
        assert not re.fullmatch(r"(?i)(skill|item|test|todo)\s*\d*", skill["name"]), skill["name"]


def test_no_name_or_alias_collides_across_skills() -> None:
    owner: dict[str, str] = {}
    for skill in DATA["skills"]:
        for text in (skill["name"], *skill["aliases"]):
            key = match_key(text)
            assert key, text
            assert owner.setdefault(key, skill["id"]) == skill["id"], f"{text!r} of {skill['id']} vs {owner[key]}"


def test_loading_rejects_colliding_aliases() -> None:
    with pytest.raises(ValueError, match="collides"):
        SkillTaxonomy(
            [
                Skill(id="react", name="React", category="engineering", aliases=("ReactJS",)),
                Skill(id="react-native", name="React Native", category="engineering", aliases=("React.js",)),
            ]
        )


def test_loading_rejects_bad_ids_and_categories() -> None:
    with pytest.raises(ValueError, match="slug"):
        SkillTaxonomy([Skill(id="React", name="React", category="engineering", aliases=())])
    with pytest.raises(ValueError, match="category"):
        SkillTaxonomy([Skill(id="react", name="React", category="frontend", aliases=())])


# Normalization


@pytest.mark.parametrize(
    ("typed", "skill_id"),
    [
        ("React.js", "react"),
        ("ReactJS", "react"),
        ("k8s", "kubernetes"),
        ("TS", "typescript"),
        ("JS", "javascript"),
        ("Postgres", "postgresql"),
        ("psql", "postgresql"),
        ("golang", "go"),
        ("ML", "machine-learning"),
        ("NLP", "natural-language-processing"),
        ("GCP", "google-cloud-platform"),
        ("AWS", "amazon-web-services"),
        ("CI/CD", "ci-cd"),
        ("SEO", "search-engine-optimization"),
        ("CRM", "customer-relationship-management"),
        ("SFDC", "salesforce"),
        ("GTM", "go-to-market-strategy"),
        ("OKRs", "okrs"),
        ("P&L", "p-and-l-management"),
        ("Profit and Loss", "p-and-l-management"),
        ("raising capital", "fundraising"),
        ("FP&A", "financial-planning-and-analysis"),
        ("M&A", "mergers-and-acquisitions"),
        ("sklearn", "scikit-learn"),
        ("GenAI", "generative-ai"),
        ("UX", "user-experience-design"),
        ("DevRel", "developer-relations"),
        ("KYC", "know-your-customer"),
    ],
)
def test_aliases_normalize_to_their_skill_with_full_confidence(typed: str, skill_id: str) -> None:
    result = TAXONOMY.normalize(typed)
    assert result.skill is not None and result.skill.id == skill_id
    assert result.confidence == 1.0
    assert result.name == result.skill.name
    assert not result.custom


@pytest.mark.parametrize("typed", ["React.js", "reactjs", "React JS", "  REACT  ", "react-js", "React", "Réact"])
def test_case_spacing_and_punctuation_are_ignored(typed: str) -> None:
    assert TAXONOMY.normalize(typed).skill == TAXONOMY.get("react")


@pytest.mark.parametrize(
    ("typed", "skill_id"),
    [
        ("C", "c"),
        ("c++", "cpp"),
        ("C ++", "cpp"),
        ("cpp", "cpp"),
        ("C#", "csharp"),
        ("c sharp", "csharp"),
        ("F#", "fsharp"),
        ("R", "r"),
        ("Go", "go"),
        (".NET", "dotnet"),
        ("dotnet", "dotnet"),
        ("ASP.NET", "aspnet"),
        ("Node.js", "nodejs"),
    ],
)
def test_symbol_names_stay_distinct(typed: str, skill_id: str) -> None:
    result = TAXONOMY.normalize(typed)
    assert result.skill is not None and result.skill.id == skill_id and result.confidence == 1.0


def test_c_family_searches_do_not_mix() -> None:
    assert ids("C++")[:1] == ["cpp"] and "csharp" not in ids("C++") and "c" not in ids("C++")
    assert ids("C#")[:1] == ["csharp"] and "cpp" not in ids("C#") and "fsharp" not in ids("C#")
    assert top("c") == "c"


@pytest.mark.parametrize(
    ("typed", "skill_id"),
    [
        ("kubernets", "kubernetes"),
        ("typescrpt", "typescript"),
        ("Postgress", "postgresql"),
        ("machine lerning", "machine-learning"),
    ],
)
def test_close_typos_normalize_with_fuzzy_confidence(typed: str, skill_id: str) -> None:
    result = TAXONOMY.normalize(typed)
    assert result.skill is not None and result.skill.id == skill_id
    assert NORMALIZE_THRESHOLD <= result.confidence < 1.0
    assert result.name == result.skill.name and not result.custom


@pytest.mark.parametrize("typed", ["xz", "Gp", "C+", "qq", "k", "Q#", "canvas", "Cython", "Hiking"])
def test_short_or_merely_similar_input_is_not_fuzzy_matched(typed: str) -> None:
    result = TAXONOMY.normalize(typed)
    assert result.skill is None and result.custom


def test_unknown_names_are_kept_as_cleaned_custom_skills() -> None:
    result = TAXONOMY.normalize("  Underwater\t Basket   Weaving \n")
    assert result.skill is None
    assert result.custom
    assert result.confidence == 0.0
    assert result.name == "Underwater Basket Weaving"


def test_empty_name_is_custom() -> None:
    result = TAXONOMY.normalize("   ")
    assert result.skill is None and result.custom and result.name == "" and result.confidence == 0.0


def test_a_later_word_alone_does_not_normalize() -> None:
    assert TAXONOMY.normalize("Learning").custom


# Search


def test_empty_query_returns_nothing() -> None:
    assert TAXONOMY.search("") == []
    assert TAXONOMY.search("   \t") == []
    assert TAXONOMY.search("!!") == []


def test_exact_and_alias_matches_come_first() -> None:
    hits = TAXONOMY.search("k8s")
    assert hits[0].skill.id == "kubernetes" and hits[0].score == 1.0 and hits[0].matched == "k8s"
    hits = TAXONOMY.search("react")
    assert hits[0].skill.id == "react" and hits[0].matched == "React"
    assert "react-native" in [hit.skill.id for hit in hits]


def test_prefix_autosuggest() -> None:
    assert top("kube") == "kubernetes"
    assert top("typesc") == "typescript"
    assert top("postgr") == "postgresql"
    assert "terraform" in ids("terra")
    assert "figma" in ids("fig")


def test_word_prefix_finds_later_words() -> None:
    assert "machine-learning" in ids("learn")
    assert "deep-learning" in ids("learn")
    assert "apache-kafka" in ids("kafk")
    hit = next(hit for hit in TAXONOMY.search("learn") if hit.skill.id == "machine-learning")
    assert hit.matched == "Machine Learning"


@pytest.mark.parametrize(
    ("typed", "skill_id"),
    [
        ("kubernets", "kubernetes"),
        ("pyhton", "python"),
        ("javscript", "javascript"),
        ("tensorflw", "tensorflow"),
        ("figmma", "figma"),
    ],
)
def test_search_tolerates_typos(typed: str, skill_id: str) -> None:
    assert top(typed) == skill_id


def test_results_are_ranked_deduplicated_and_scored_in_range() -> None:
    for query in ("python", "data", "sales", "c", "managment", "learn", "aws"):
        hits = TAXONOMY.search(query, limit=50)
        assert [hit.skill.id for hit in hits] == list(dict.fromkeys(hit.skill.id for hit in hits))
        assert all(0.0 < hit.score <= 1.0 for hit in hits)
        assert [(-hit.score, hit.skill.name.casefold()) for hit in hits] == sorted(
            (-hit.score, hit.skill.name.casefold()) for hit in hits
        )


def test_tiers_rank_exact_then_prefix_then_typo() -> None:
    exact, prefix, word, typo = (TAXONOMY.search(q)[0] for q in ("javascript", "javas", "script", "javscript"))
    assert exact.skill == typo.skill == TAXONOMY.get("javascript")
    assert exact.score == 1.0 > prefix.score > word.score > typo.score > 0.0
    assert ids("java")[0] == "java" and "javascript" in ids("java")


def test_category_filter() -> None:
    hits = TAXONOMY.search("design", limit=50, category="design")
    assert hits and all(hit.skill.category == "design" for hit in hits)
    data_hits = ids("python", category="data_ml")
    assert "python" not in data_hits and "pandas" in data_hits
    assert top("python", category="engineering") == "python"
    with pytest.raises(ValueError):
        TAXONOMY.search("python", category="cooking")


def test_limit() -> None:
    assert len(TAXONOMY.search("a", limit=3)) == 3
    assert len(TAXONOMY.search("a", limit=1)) == 1
    assert len(TAXONOMY.search("a")) == 10
    assert len(TAXONOMY.search("management", limit=50)) == 50
    assert TAXONOMY.search("python", limit=0) == []


def test_short_queries_are_not_fuzzy_matched() -> None:
    assert TAXONOMY.search("xq") == []
    assert TAXONOMY.search("Q#") == []
    assert all(
        hit.skill.name.casefold().startswith("z") or hit.matched.casefold().startswith("z")
        for hit in TAXONOMY.search("z")
    )


def test_get_and_default_taxonomy() -> None:
    kubernetes = TAXONOMY.get("kubernetes")
    assert kubernetes is not None and kubernetes.name == "Kubernetes" and "k8s" in kubernetes.aliases
    assert TAXONOMY.get("no-such-skill") is None
    assert default_taxonomy() is default_taxonomy()
    assert default_taxonomy().get("react") == TAXONOMY.get("react")
