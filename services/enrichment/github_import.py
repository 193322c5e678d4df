"""A GitHub import: the public repositories of a login, ranked by stars, forks and recent
activity; for the best ones their languages by bytes, topics, README and dependency manifests;
and from those the taxonomy skills with a confidence, a proficiency estimate and the evidence
("Go in 12 repositories, 61 % of bytes")."""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.enrichment.github import GitHubClient, GitHubNotFound
from services.enrichment.manifests import PARSERS, dependency_names
from services.enrichment.phrases import PhraseMatcher
from services.enrichment.suggestions import FoundSkill, SkillFindings
from services.enrichment.taxonomy import Skill, SkillTaxonomy

# Recent activity halves its weight every this many days.
ACTIVITY_HALF_LIFE_DAYS = 180.0
# Languages below this share of bytes that appear in one repository only are noise (a build script).
MIN_LANGUAGE_SHARE = 0.02
MAX_README_CHARS = 20_000
MAX_MANIFEST_BYTES = 512 * 1024
CONCURRENCY = 6
# README skills are read from prose: engineering, data and design terms only ("sales" in a README
# rarely says the author sells).
README_CATEGORIES = frozenset({"engineering", "data_ml", "design"})

Progress = Callable[[int, str], Awaitable[None]]


@dataclass
class Repository:
    name: str
    stars: int
    forks: int
    language: str
    topics: list[str]
    pushed_at: str
    score: float
    languages: dict[str, int] = field(default_factory=dict)
    readme: str = ""
    dependencies: dict[str, list[str]] = field(default_factory=dict)  # manifest -> names

    def summary(self) -> dict:
        return {
            "name": self.name,
            "stars": self.stars,
            "forks": self.forks,
            "language": self.language,
            "topics": self.topics,
            "pushed_at": self.pushed_at,
            "languages": self.languages,
            "manifests": sorted(self.dependencies),
        }


@dataclass
class GitHubImport:
    login: str
    repository_count: int
    repositories: list[Repository]
    languages: list[dict]
    skills: list[FoundSkill]

    def findings(self) -> dict:
        """What the import read, as stored (jsonb) and exported."""
        return {
            "login": self.login,
            "repository_count": self.repository_count,
            "repositories": [r.summary() for r in self.repositories],
            "languages": self.languages,
        }


def activity_score(stars: int, forks: int, pushed_at: str, now: datetime) -> float:
    """Stars and forks on a log scale (a 10k-star project does not drown everything else) plus
    recent pushes, so a busy new repository ranks beside an old popular one."""
    try:
        pushed = datetime.fromisoformat(pushed_at.replace("Z", "+00:00"))
        age_days = max((now - pushed).total_seconds() / 86_400, 0.0)
        recency = 0.5 ** (age_days / ACTIVITY_HALF_LIFE_DAYS)
    except ValueError:
        recency = 0.0
    return 3 * math.log1p(stars) + 2 * math.log1p(forks) + 4 * recency


def rank(repos: list[dict], limit: int, now: datetime) -> list[Repository]:
    ranked = [
        Repository(
            name=r["name"],
            stars=int(r.get("stargazers_count") or 0),
            forks=int(r.get("forks_count") or 0),
            language=r.get("language") or "",
            topics=list(r.get("topics") or []),
            pushed_at=r.get("pushed_at") or "",
            score=activity_score(
                int(r.get("stargazers_count") or 0), int(r.get("forks_count") or 0), r.get("pushed_at") or "", now
            ),
        )
        for r in repos
        if not r.get("fork")
    ]
    ranked.sort(key=lambda r: (-r.score, r.name.casefold()))
    return ranked[:limit]


def _decode(content: dict) -> str:
    if content.get("encoding") != "base64":
        return ""
    try:
        return base64.b64decode(content.get("content", "")).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return ""


class GitHubImporter:
    def __init__(self, client: GitHubClient, taxonomy: SkillTaxonomy, max_repositories: int) -> None:
        self._client, self._taxonomy, self._max = client, taxonomy, max_repositories
        self._readme_matcher = PhraseMatcher(taxonomy, README_CATEGORIES)

    async def run(self, login: str, progress: Progress) -> GitHubImport:
        """Raises GitHubNotFound for an unknown login, GitHubError subclasses for GitHub's failures."""
        await progress(5, "Reading the GitHub account")
        account = await self._client.get(f"users/{login}")
        if not isinstance(account, dict) or account.get("type") not in ("User", "Organization"):
            raise GitHubNotFound("no such GitHub account")
        await progress(10, "Listing repositories")
        repos = await self._client.paginate(f"users/{login}/repos", {"type": "owner", "sort": "pushed"})
        owned = [r for r in repos if not r.get("fork")]
        top = rank(owned, self._max, datetime.now(UTC))
        done = 0
        semaphore = asyncio.Semaphore(CONCURRENCY)

        async def read(repo: Repository) -> None:
            nonlocal done
            async with semaphore:
                await self._read_repository(account.get("login", login), repo)
            done += 1
            await progress(15 + 75 * done // max(len(top), 1), f"Reading repositories ({done}/{len(top)})")

        await asyncio.gather(*(read(repo) for repo in top))
        await progress(95, "Finding skills")
        languages = self._language_table(top)
        return GitHubImport(
            login=account.get("login", login),
            repository_count=len(owned),
            repositories=top,
            languages=languages,
            skills=self._skills(top, languages),
        )

    async def _read_repository(self, owner: str, repo: Repository) -> None:
        base = f"repos/{owner}/{repo.name}"
        languages, readme, root = await asyncio.gather(
            self._client.get(f"{base}/languages"),
            self._optional(f"{base}/readme"),
            self._optional(f"{base}/contents/"),
        )
        repo.languages = {str(k): int(v) for k, v in (languages or {}).items()}
        if isinstance(readme, dict):
            repo.readme = _decode(readme)[:MAX_README_CHARS]
        manifests = [
            entry["name"]
            for entry in (root if isinstance(root, list) else [])
            if entry.get("type") == "file"
            and entry.get("name") in PARSERS
            and int(entry.get("size") or 0) <= MAX_MANIFEST_BYTES
        ]
        contents = await asyncio.gather(*(self._optional(f"{base}/contents/{name}") for name in manifests))
        for name, content in zip(manifests, contents, strict=True):
            if isinstance(content, dict):
                repo.dependencies[name] = dependency_names(name, _decode(content))

    async def _optional(self, path: str):
        try:
            return await self._client.get(path)
        except GitHubNotFound:
            return None

    @staticmethod
    def _language_table(repos: list[Repository]) -> list[dict]:
        total = sum(sum(r.languages.values()) for r in repos) or 1
        byte_counts: Counter[str] = Counter()
        repo_counts: Counter[str] = Counter()
        for repo in repos:
            byte_counts.update(repo.languages)
            repo_counts.update(repo.languages.keys())
        return [
            {"language": name, "bytes": count, "share": count / total, "repositories": repo_counts[name]}
            for name, count in byte_counts.most_common()
        ]

    def _exact(self, name: str) -> Skill | None:
        normalized = self._taxonomy.normalize(name)
        return normalized.skill if normalized.skill is not None and normalized.confidence == 1.0 else None

    def _skills(self, repos: list[Repository], languages: list[dict]) -> list[FoundSkill]:
        findings = SkillFindings()
        for row in languages:
            skill = self._exact(row["language"])
            share, count = row["share"], row["repositories"]
            if skill is None or (share < MIN_LANGUAGE_SHARE and count < 2):
                continue
            confidence = 0.3 + 0.5 * min(share * 2, 1.0) + 0.06 * min(count, 3)
            proficiency = _language_proficiency(count, share)
            findings.add(
                skill, confidence, proficiency, f"{row['language']} in {_repos(count)}, {share * 100:.0f} % of bytes"
            )

        usage: dict[str, Counter[str]] = defaultdict(Counter)  # skill id -> manifest -> repositories
        skills: dict[str, Skill] = {}
        for repo in repos:
            for manifest, names in repo.dependencies.items():
                seen: set[str] = set()
                for name in names:
                    skill = self._exact(name)
                    if skill is not None and skill.id not in seen:
                        seen.add(skill.id)
                        skills[skill.id] = skill
                        usage[skill.id][manifest] += 1
        for skill_id, manifests in usage.items():
            count = max(manifests.values())
            where = ", ".join(f"{m} of {_repos(n)}" for m, n in manifests.most_common())
            findings.add(skills[skill_id], 0.55 + 0.1 * min(count, 3), 2 + min(count // 2, 2), f"dependency in {where}")

        topics: Counter[str] = Counter()
        topic_skills: dict[str, Skill] = {}
        for repo in repos:
            for topic in {t.replace("-", " ") for t in repo.topics}:
                skill = self._exact(topic)
                if skill is not None:
                    topics[skill.id] += 1
                    topic_skills[skill.id] = skill
        for skill_id, count in topics.items():
            findings.add(
                topic_skills[skill_id], 0.45 + 0.1 * min(count, 3), 2 + (count >= 3), f"topic of {_repos(count)}"
            )

        readmes: Counter[str] = Counter()
        readme_skills: dict[str, Skill] = {}
        for repo in repos:
            for mention in self._readme_matcher.find(repo.readme):
                readmes[mention.skill.id] += 1
                readme_skills[mention.skill.id] = mention.skill
        for skill_id, count in readmes.items():
            findings.add(
                readme_skills[skill_id], 0.25 + 0.1 * min(count, 4), 2, f"named in the README of {_repos(count)}"
            )
        return findings.best()


def _language_proficiency(repositories: int, share: float) -> int:
    if repositories >= 8 and share >= 0.3:
        return 5
    if repositories >= 4 or share >= 0.25:
        return 4
    return 3 if repositories >= 2 else 2


def _repos(count: int) -> str:
    return f"{count} repositor{'y' if count == 1 else 'ies'}"
