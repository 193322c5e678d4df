"""Runs `python -m MODULE` as it would run in the container image: only the distributions of the
runtime lock (requirements.lock) are importable, besides the standard library and the project's
own code; importing anything else (grpc_tools, the local stack's binaries, test tools) fails.

    python tests/deploy/runtime_only.py services.profile
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import runpy
import sys
from importlib.abc import MetaPathFinder
from pathlib import Path

LOCK = Path(__file__).resolve().parents[2] / "requirements.lock"


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_distributions(lock: Path = LOCK) -> set[str]:
    return {_normal(name) for name in re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", lock.read_text(), re.M)}


def blocked_modules(allowed: set[str]) -> set[str]:
    """Top-level modules that only distributions outside `allowed` provide."""
    return {
        module
        for module, distributions in importlib.metadata.packages_distributions().items()
        if not any(_normal(d) in allowed for d in distributions)
    }


class RuntimeOnly(MetaPathFinder):
    def __init__(self, blocked: set[str]) -> None:
        self.blocked = blocked

    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] in self.blocked:
            raise ModuleNotFoundError(f"{fullname} is not a runtime requirement (requirements.lock)", name=fullname)
        return None


def hide_from_probes(blocked: set[str]) -> None:
    """Libraries probe optional packages with importlib.util.find_spec (transformers asks for
    psutil, faiss, ...): in the image those are absent, so the probe answers None here too
    instead of raising, and only a real import fails."""
    find_spec = importlib.util.find_spec

    def probe(name, package=None):
        if name.partition(".")[0] in blocked:
            return None
        return find_spec(name, package)

    importlib.util.find_spec = probe


if __name__ == "__main__":
    module = sys.argv[1]
    blocked = blocked_modules(runtime_distributions())
    if module.partition(".")[0] in blocked:  # runpy would only say "No module named ..."
        raise ModuleNotFoundError(f"{module.partition('.')[0]} is not a runtime requirement (requirements.lock)")
    hide_from_probes(blocked)
    sys.meta_path.insert(0, RuntimeOnly(blocked))
    sys.argv = [module, *sys.argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
