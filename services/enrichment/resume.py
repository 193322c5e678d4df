"""Résumé parsing: a PDF of at most 5 MiB -> its text (pypdf) -> sections, skills (the taxonomy's
phrase matcher), years of experience and links.

`check_pdf` is the cheap part run when the upload arrives (size, signature, encryption, a
readable structure), so a bad file is refused at once and never stored; `parse_resume` does
the rest in the job. Both are CPU-bound and blocking: call them in a worker thread."""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass, field
from datetime import date

from pypdf import PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError, PdfStreamError

from services.common.surface import UPLOADS
from services.enrichment.phrases import PhraseMatcher
from services.enrichment.suggestions import FoundSkill, SkillFindings

MAX_BYTES = UPLOADS["/openhr.enrichment.v1.EnrichmentService/CreateEnrichmentJob"]
MAX_PAGES = 40
MIN_TEXT_CHARS = 40
MAX_YEARS = 60

# pypdf logs every oddity of a malformed file as a warning: they say nothing about our service.
logging.getLogger("pypdf").setLevel(logging.ERROR)

# Heading (as written, case-insensitive) -> the section it starts.
HEADINGS = {
    "summary": "Summary",
    "profile": "Summary",
    "about me": "Summary",
    "professional summary": "Summary",
    "experience": "Experience",
    "work experience": "Experience",
    "professional experience": "Experience",
    "employment": "Experience",
    "employment history": "Experience",
    "work history": "Experience",
    "education": "Education",
    "skills": "Skills",
    "technical skills": "Skills",
    "core skills": "Skills",
    "skills and tools": "Skills",
    "technologies": "Skills",
    "projects": "Projects",
    "selected projects": "Projects",
    "certifications": "Certifications",
    "publications": "Publications",
    "awards": "Awards",
    "languages": "Languages",
    "interests": "Interests",
    "volunteering": "Volunteering",
}
_MONTHS = {
    m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)
}
_WHEN = r"(?:(?P<{p}m>[A-Za-z]{{3,9}})\.?\s+|(?P<{p}n>\d{{1,2}})/)?(?P<{p}y>(?:19|20)\d\d)"
_RANGE = re.compile(
    _WHEN.format(p="a")
    + r"\s*(?:-|\u2013|\u2014|to|until)\s*(?:"
    + _WHEN.format(p="b")
    + r"|(?P<now>present|now|current|today))",
    re.IGNORECASE,
)
_STATED_YEARS = re.compile(
    r"(\d{1,2})\+?\s+years?\s+(?:of\s+)?(?:professional\s+|industry\s+|work\s+)?experience", re.IGNORECASE
)
_URL = re.compile(r"(?:https?://)?(?:www\.)?(?:[a-z0-9-]+\.)+[a-z]{2,}(?:/[^\s,;()<>\"']*)?", re.IGNORECASE)
_GITHUB = re.compile(r"github\.com/([A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))/?$", re.IGNORECASE)
_LINKEDIN = re.compile(r"linkedin\.com/in/([A-Za-z0-9\-_%]+)/?$", re.IGNORECASE)
_EMAIL_DOMAIN = re.compile(r"@[A-Za-z0-9.-]+$")
# Domains that are never someone's site.
_NOT_SITES = ("gmail.com", "outlook.com", "hotmail.com", "yahoo.com", "icloud.com")


class ResumeError(Exception):
    """`reason` is machine-readable; `message` is safe to show and names what is wrong."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


@dataclass
class Resume:
    pages: int
    sections: list[str]
    years_of_experience: float
    links: list[dict[str, str]]
    skills: list[FoundSkill] = field(default_factory=list)

    def findings(self) -> dict:
        return {
            "pages": self.pages,
            "sections": self.sections,
            "years_of_experience": self.years_of_experience,
            "links": self.links,
        }


def _open(data: bytes) -> PdfReader:
    if len(data) > MAX_BYTES:
        raise ResumeError("too_large", f"the résumé is larger than {MAX_BYTES // (1024 * 1024)} MiB")
    if not data.lstrip(b"\r\n\t \x00")[:5] == b"%PDF-":
        raise ResumeError("not_a_pdf", "the file is not a PDF")
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise ResumeError("encrypted_pdf", "the PDF is password-protected; upload it without a password")
        pages = len(reader.pages)
    except ResumeError:
        raise
    except (FileNotDecryptedError, DependencyError):
        raise ResumeError("encrypted_pdf", "the PDF is password-protected; upload it without a password") from None
    except (PdfReadError, PdfStreamError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError):
        raise ResumeError("corrupt_pdf", "the PDF is damaged and cannot be read") from None
    if pages == 0:
        raise ResumeError("corrupt_pdf", "the PDF has no pages")
    return reader


def check_pdf(data: bytes) -> int:
    """The page count of an acceptable upload; ResumeError names what is wrong otherwise."""
    return len(_open(data).pages)


def extract_text(data: bytes) -> tuple[str, int]:
    reader = _open(data)
    texts = []
    try:
        for page in reader.pages[:MAX_PAGES]:
            texts.append(page.extract_text() or "")
    except (PdfReadError, PdfStreamError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError):
        raise ResumeError("corrupt_pdf", "the PDF is damaged and cannot be read") from None
    text = "\n".join(texts)
    if sum(c.isalnum() for c in text) < MIN_TEXT_CHARS:
        raise ResumeError("no_text", "no text could be read from the PDF (a scanned image?); upload a text PDF")
    return text, len(reader.pages)


def split_sections(text: str) -> list[tuple[str, str]]:
    """(section, text) in order; text before the first heading is "Header"."""
    sections: list[tuple[str, list[str]]] = [("Header", [])]
    for line in text.splitlines():
        heading = HEADINGS.get(re.sub(r"[^a-z ]", "", line.strip().lower()).strip())
        if heading and len(line.strip()) <= 40:
            sections.append((heading, []))
        else:
            sections[-1][1].append(line)
    return [(name, "\n".join(lines)) for name, lines in sections if name != "Header" or any(s.strip() for s in lines)]


def _month(name: str | None, number: str | None) -> int:
    if number:
        return min(max(int(number), 1), 12)
    if name:
        return _MONTHS.get(name[:3].lower(), 1)
    return 1


def years_of_experience(experience: str, whole: str, today: date) -> float:
    """Months covered by the date ranges of the experience text (overlaps once), in years rounded
    to a half; a stated "N years of experience" anywhere wins when larger."""
    spans = []
    for m in _RANGE.finditer(experience):
        start = int(m["ay"]) * 12 + _month(m["am"], m["an"]) - 1
        if m["now"]:
            end = today.year * 12 + today.month
        else:
            end = int(m["by"]) * 12 + (_month(m["bm"], m["bn"]) if m["bm"] or m["bn"] else 12)  # inclusive
        if start < end <= today.year * 12 + today.month + 1:
            spans.append((start, end))
    months, reach = 0, None
    for start, end in sorted(spans):
        if reach is None or start > reach:
            months += end - start
            reach = end
        elif end > reach:
            months += end - reach
            reach = end
    years = round(months / 12 * 2) / 2
    stated = [int(n) for n in _STATED_YEARS.findall(whole)]
    return float(min(max([years, *stated]), MAX_YEARS))


def find_links(text: str) -> list[dict[str, str]]:
    links: dict[str, dict[str, str]] = {}
    for match in _URL.finditer(text):
        raw = match.group(0).rstrip(".")
        start = match.start()
        if start > 0 and text[start - 1] == "@":
            continue  # the domain of an email address: not a link (and an address is not kept)
        url = raw if raw.lower().startswith("http") else f"https://{raw}"
        bare = re.sub(r"^https?://(www\.)?", "", url, flags=re.I)
        if (gh := _GITHUB.search(bare)) and bare.lower().startswith("github.com"):
            kind, url = "github", f"https://github.com/{gh.group(1)}"
        elif (li := _LINKEDIN.search(bare)) and bare.lower().startswith("linkedin.com"):
            kind, url = "linkedin", f"https://www.linkedin.com/in/{li.group(1)}"
        elif "." in bare.split("/")[0] and not bare.lower().startswith(_NOT_SITES) and not _EMAIL_DOMAIN.search(raw):
            kind = "website"
        else:
            continue
        links.setdefault(url.lower(), {"kind": kind, "url": url})
    return list(links.values())


def parse_resume(data: bytes, matcher: PhraseMatcher, today: date | None = None) -> Resume:
    text, pages = extract_text(data)
    sections = split_sections(text)
    experience = "\n".join(body for name, body in sections if name == "Experience")
    findings = SkillFindings()
    for name, body in sections:
        for mention in matcher.find(body):
            if name == "Skills":
                findings.add(mention.skill, 0.8, 3, "listed under Skills")
            else:
                times = f"{mention.count} times" if mention.count > 1 else "once"
                confidence = 0.35 + 0.15 * min(mention.count, 3) + (0.1 if name in ("Experience", "Projects") else 0)
                proficiency = 4 if mention.count >= 3 and name == "Experience" else 3 if mention.count >= 2 else 2
                findings.add(mention.skill, confidence, proficiency, f"named {times} in {name}")
    return Resume(
        pages=pages,
        sections=[name for name, _ in sections if name != "Header"],
        years_of_experience=years_of_experience(experience, text, today or date.today()),
        links=find_links(text),
        skills=findings.best(),
    )
