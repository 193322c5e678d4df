"""What of a profile is embedded: the offer text (what the person brings: role, headline,
experience, skills, summary) and the seek text (what they look for: their own words, the
roles and industries they want). The summary comes last in the offer text: models truncate
long input (256 tokens for MiniLM), and the short fields must always count."""

from __future__ import annotations

from dataclasses import dataclass

from openhr.profile.v1 import profile_pb2


@dataclass(frozen=True)
class ProfileTexts:
    offer: str
    seek: str

    def by_kind(self) -> dict[str, str]:
        return {"offer": self.offer, "seek": self.seek}


def _role(value: int) -> str:
    """ROLE_TECHNICAL_COFOUNDER -> "technical co-founder"."""
    name = profile_pb2.Role.Name(value).removeprefix("ROLE_").lower().replace("_", " ")
    return name.replace("cofounder", "co-founder")


def offer_text(profile: profile_pb2.Profile) -> str:
    lines = []
    if profile.role:
        lines.append(f"Role: {_role(profile.role)}.")
    if profile.headline.strip():
        lines.append(profile.headline.strip())
    if profile.years_experience:
        lines.append(f"{profile.years_experience} years of experience.")
    skills = sorted(profile.skills, key=lambda skill: (-skill.proficiency, skill.name.casefold()))
    if skills:
        lines.append("Skills: " + ", ".join(skill.name for skill in skills) + ".")
    if profile.summary.strip():
        lines.append(profile.summary.strip())
    return "\n".join(lines)


def seek_text(profile: profile_pb2.Profile) -> str:
    lines = []
    if profile.looking_for.strip():
        lines.append(profile.looking_for.strip())
    roles = [_role(role) for role in profile.preferences.roles_sought.roles if role]
    if roles:
        lines.append("Looking for: " + ", ".join(roles) + ".")
    industries = [name.strip() for name in profile.preferences.industries.industries if name.strip()]
    if industries:
        lines.append("Industries: " + ", ".join(industries) + ".")
    return "\n".join(lines)


def profile_texts(profile: profile_pb2.Profile) -> ProfileTexts:
    return ProfileTexts(offer=offer_text(profile), seek=seek_text(profile))
