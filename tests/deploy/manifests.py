"""The deployment checks' plumbing: the tools of .venv-deploy (make install), the overlays as
kustomize renders them, and what the code reads from its environment."""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
from functools import cache
from pathlib import Path

import yaml

from services.common.settings import REPO_ROOT, ServiceSettings

K8S = REPO_ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
TOOLS = REPO_ROOT / ".venv-deploy" / "bin"


def tool(name: str) -> str:
    path = TOOLS / name
    assert path.exists(), f"{path} missing: `make install` (or make test) creates .venv-deploy"
    return str(path)


@cache
def rendered(overlay: str) -> str:
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"kubectl kustomize overlays/{overlay} failed:\n{result.stderr}"
    return result.stdout


@cache
def documents(overlay: str) -> tuple[dict, ...]:
    return tuple(doc for doc in yaml.safe_load_all(rendered(overlay)) if doc)


def find(overlay: str, kind: str, name: str | None = None) -> list[dict]:
    return [
        doc
        for doc in documents(overlay)
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
    ]


def one(overlay: str, kind: str, name: str) -> dict:
    found = find(overlay, kind, name)
    assert len(found) == 1, f"overlays/{overlay}: expected one {kind} {name}, found {len(found)}"
    return found[0]


def service_modules() -> dict[str, str]:
    """Every process of the mesh: a folder with a __main__.py under services/ (but the kit) or
    edge/. Name (its manifests' folder) -> module."""
    found = {}
    for top in ("services", "edge"):
        for main in sorted((REPO_ROOT / top).glob("*/__main__.py")):
            if main.parent.name != "common":
                found[main.parent.name] = f"{top}.{main.parent.name}"
    return found


def settings_classes(module: str) -> list[type[ServiceSettings]]:
    app = importlib.import_module(f"{module}.app")
    return [
        cls
        for _, cls in inspect.getmembers(app, inspect.isclass)
        if issubclass(cls, ServiceSettings) and cls.__module__ == app.__name__
    ]


def settings_variables(module: str) -> set[str]:
    """The environment variables the service's settings read (pydantic validation aliases)."""
    names = {field.validation_alias for field in ServiceSettings.model_fields.values()}
    for cls in settings_classes(module):
        names |= {field.validation_alias for field in cls.model_fields.values()}
    return {name for name in names if isinstance(name, str)}


def environ_reads(package_dir: Path) -> set[str]:
    """Literal names read with os.environ[...], os.environ.get(...) or os.getenv(...)."""
    names = set()
    for path in package_dir.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            target = None
            if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
                target = node.slice
            elif isinstance(node, ast.Call) and ast.unparse(node.func) in ("os.environ.get", "os.getenv") and node.args:
                target = node.args[0]
            if isinstance(target, ast.Constant) and isinstance(target.value, str):
                names.add(target.value)
    return names


def code_variables(name: str, module: str) -> set[str]:
    common = REPO_ROOT / "services" / "common"
    return settings_variables(module) | environ_reads(REPO_ROOT.joinpath(*module.split("."))) | environ_reads(common)


def container_environment(overlay: str, container: dict) -> set[str]:
    """The variable names a container gets: its env entries and its ConfigMaps' keys."""
    names = {entry["name"] for entry in container.get("env", [])}
    for source in container.get("envFrom", []):
        assert "configMapRef" in source, "secrets come by secretKeyRef, one key at a time"
        names |= set(one(overlay, "ConfigMap", source["configMapRef"]["name"])["data"])
    return names


def pod_labels(workload: dict) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict, labels: dict[str, str]) -> bool:
    """A podSelector with matchLabels only (the manifests use no expressions)."""
    assert set(selector) <= {"matchLabels"}, selector
    return all(labels.get(key) == value for key, value in selector.get("matchLabels", {}).items())


def load(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
