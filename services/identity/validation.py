"""Input rules of the identity service: a pragmatic email syntax, the password policy and the
bounds of opaque tokens. Every check runs before anything is hashed or stored, so oversized or
malformed input costs neither an argon2 hash nor a row."""

from __future__ import annotations

import re
from pathlib import Path

from services.common.errors import FieldViolation, invalid_argument
from services.common.text import CONTROL_PROBLEM, has_control_characters

MAX_EMAIL = 254  # RFC 5321 path limit
MAX_LOCAL_PART = 64
MIN_PASSWORD = 8
MAX_PASSWORD = 128
MAX_DISPLAY_NAME = 80
MAX_TOKEN = 256

COMMON_PASSWORDS_FILE = Path(__file__).resolve().parent / "data" / "common-passwords.txt"

# local@domain.tld: RFC 5322 "atext" dot-atoms (no quoted local parts, no IP literals), ASCII
# only; labels of letters, digits and inner hyphens; a TLD of letters (or an xn-- IDN label).
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_TLD = re.compile(r"^([A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})$")


def load_common_passwords(path: Path = COMMON_PASSWORDS_FILE) -> frozenset[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


def normalize_email(email: str) -> str:
    """The form an address is looked up by: trimmed, lowercase."""
    return email.strip().lower()


def email_problem(email: str) -> str | None:
    """Why `email` is not a usable address, or None."""
    email = email.strip()
    if not email:
        return "is required"
    if len(email) > MAX_EMAIL:
        return f"must be at most {MAX_EMAIL} characters"
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain:
        return "must look like name@example.com"
    labels = domain.split(".")
    if (
        len(local) > MAX_LOCAL_PART
        or not _LOCAL.match(local)
        or len(labels) < 2
        or not all(_LABEL.match(label) for label in labels)
        or not _TLD.match(labels[-1])
    ):
        return "must look like name@example.com"
    return None


def password_problem(password: str, common: frozenset[str]) -> str | None:
    """Why `password` may not be set as a new password, or None."""
    if len(password) < MIN_PASSWORD:
        return f"must be at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"must be at most {MAX_PASSWORD} characters"
    if password.lower() in common:
        return "is one of the most common passwords; choose another"
    return None


def validate_sign_up(email: str, password: str, display_name: str, common: frozenset[str]) -> str:
    """Raises INVALID_ARGUMENT naming every bad field; returns the cleaned display name."""
    violations = []
    if problem := email_problem(email):
        violations.append(FieldViolation("email", problem))
    if problem := password_problem(password, common):
        violations.append(FieldViolation("password", problem))
    name = " ".join(display_name.split())
    if len(name) > MAX_DISPLAY_NAME:
        violations.append(FieldViolation("display_name", f"must be at most {MAX_DISPLAY_NAME} characters"))
    elif has_control_characters(name):
        violations.append(FieldViolation("display_name", CONTROL_PROBLEM))
    if violations:
        raise invalid_argument(*violations)
    return name


def validate_credentials(email: str, password: str) -> None:
    """Sign-in input: well-formed, bounded; the policy applies to new passwords only."""
    violations = []
    if problem := email_problem(email):
        violations.append(FieldViolation("email", problem))
    if not password:
        violations.append(FieldViolation("password", "is required"))
    elif len(password) > MAX_PASSWORD:
        violations.append(FieldViolation("password", f"must be at most {MAX_PASSWORD} characters"))
    if violations:
        raise invalid_argument(*violations)


def validate_email(email: str, field: str = "email") -> None:
    if problem := email_problem(email):
        raise invalid_argument(FieldViolation(field, problem))


def validate_new_password(password: str, common: frozenset[str], field: str = "new_password") -> None:
    if problem := password_problem(password, common):
        raise invalid_argument(FieldViolation(field, problem))


def validate_token(token: str, field: str = "token") -> None:
    if not token:
        raise invalid_argument(FieldViolation(field, "is required"))
    if len(token) > MAX_TOKEN:
        raise invalid_argument(FieldViolation(field, f"must be at most {MAX_TOKEN} characters"))
