"""Dependency names from the manifests a GitHub import reads, in the forms a taxonomy lookup
can recognise ("@angular/core" -> "@angular/core", "angular"; "github.com/gin-gonic/gin" ->
"gin", "gin-gonic"). Malformed files give no names rather than an error: they are someone
else's repositories."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_GEM = re.compile(r"""^\s*gem\s+['"]([^'"]+)['"]""", re.MULTILINE)
_ARTIFACT = re.compile(r"<artifactId>\s*([^<\s]+)\s*</artifactId>")
_GO_REQUIRE = re.compile(r"^\s*(?:require\s+)?([a-z0-9.\-]+\.[a-z]+/[^\s]+)\s+v[0-9]", re.MULTILINE)


def _npm(text: str) -> list[str]:
    data = json.loads(text)
    names: list[str] = []
    for section in ("dependencies", "devDependencies", "peerDependencies"):
        deps = data.get(section)
        if isinstance(deps, dict):
            names.extend(str(name) for name in deps)
    out = []
    for name in names:
        out.append(name)
        if name.startswith("@"):
            scope, _, package = name[1:].partition("/")
            out.extend((scope, package))
    return out


def _requirements(text: str) -> list[str]:
    names = []
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        if line.strip().startswith("-"):
            continue  # -r other.txt, -e ., --index-url
        match = _REQUIREMENT.match(line)
        if match:
            names.append(match.group(1))
    return names


def _pyproject(text: str) -> list[str]:
    data = tomllib.loads(text)
    project = data.get("project", {})
    specs = list(project.get("dependencies", []))
    for group in project.get("optional-dependencies", {}).values():
        specs.extend(group)
    names = _requirements("\n".join(str(s) for s in specs))
    poetry = data.get("tool", {}).get("poetry", {})
    names.extend(name for name in poetry.get("dependencies", {}) if name != "python")
    return names


def _go_mod(text: str) -> list[str]:
    out = []
    for module in _GO_REQUIRE.findall(text):
        parts = [p for p in module.split("/") if not re.fullmatch(r"v[0-9]+", p)]
        out.extend(parts[-1:] + parts[-2:-1] if len(parts) > 2 else parts[-1:])
    return out


def _cargo(text: str) -> list[str]:
    data = tomllib.loads(text)
    names = []
    for section in ("dependencies", "dev-dependencies"):
        deps = data.get(section, {})
        if isinstance(deps, dict):
            names.extend(deps)
    return names


def _gemfile(text: str) -> list[str]:
    return _GEM.findall(text)


def _pom(text: str) -> list[str]:
    names = []
    for artifact in _ARTIFACT.findall(text):
        names.append(artifact)
        stem = artifact.split("-starter")[0]
        if stem != artifact:
            names.append(stem)  # spring-boot-starter-web -> spring-boot
    return names


PARSERS: dict[str, Callable[[str], list[str]]] = {
    "package.json": _npm,
    "requirements.txt": _requirements,
    "pyproject.toml": _pyproject,
    "go.mod": _go_mod,
    "Cargo.toml": _cargo,
    "Gemfile": _gemfile,
    "pom.xml": _pom,
}


def dependency_names(filename: str, text: str) -> list[str]:
    """Distinct dependency names of a manifest, in order; [] when it cannot be read."""
    parser = PARSERS.get(filename)
    if parser is None:
        return []
    try:
        names = parser(text)
    except (ValueError, tomllib.TOMLDecodeError, AttributeError, TypeError):
        return []
    return list(dict.fromkeys(n for n in names if n))
