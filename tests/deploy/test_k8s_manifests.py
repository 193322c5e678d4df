"""deploy/k8s, offline: every overlay renders, is valid for Kubernetes 1.30 and the newest schema
kubernetes-validate ships (strict, warnings fail), passes checkov, and agrees with the code: every
service has its manifests, every variable it reads is set, the network policies let exactly the
calls the code makes through, and Envoy accepts the config rendered from the edge template."""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from deploy.k8s import edge_init, envoy_config, secrets
from services.common.server import LIVENESS_SERVICE
from services.common.service_auth import EDGE_NAME, ensure_service_key
from services.common.settings import REPO_ROOT, ServiceSettings
from tests.deploy.manifests import (
    K8S,
    OVERLAYS,
    TOOLS,
    code_variables,
    container_environment,
    documents,
    find,
    one,
    pod_labels,
    rendered,
    selects,
    service_modules,
    settings_classes,
    tool,
)

SERVICES = service_modules()
SHUTDOWN_GRACE = ServiceSettings.model_fields["shutdown_grace"].default
# Variables a service's settings read that Kubernetes deliberately leaves at their default.
NOT_SET = {
    # The validator has no database and no Redis (revocations off): the fields are the kit's.
    "validation": {"DATABASE_URL", "REDIS_URL"},
}


def _write(tmp_path: Path, overlay: str) -> Path:
    path = tmp_path / f"{overlay}.yaml"
    path.write_text(rendered(overlay))
    return path


def _newest_schema() -> str:
    schemas = (TOOLS.parent / "lib").glob("python3*/site-packages/kubernetes_validate/kubernetes-json-schema/v*-local")
    versions = [tuple(int(part) for part in re.findall(r"\d+", path.name)) for path in schemas]
    assert versions, "kubernetes-validate ships no schemas?"
    return ".".join(map(str, max(versions)))


def _workloads(overlay: str) -> list[dict]:
    return [doc for doc in documents(overlay) if doc["kind"] in ("Deployment", "StatefulSet", "Job")]


def _service_port(deployment: dict) -> int:
    (app,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "app"]
    return {port["name"]: port["containerPort"] for port in app["ports"]}["grpc"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_renders_every_service(overlay: str) -> None:
    deployments = {doc["metadata"]["name"] for doc in find(overlay, "Deployment")}
    assert deployments == {*SERVICES, "envoy"}
    assert one(overlay, "Job", "openhr-migrate")


@pytest.mark.parametrize("version", ["1.30.0", _newest_schema()])
def test_kubernetes_validate_strict(tmp_path: Path, version: str) -> None:
    files = [str(_write(tmp_path, overlay)) for overlay in OVERLAYS]
    result = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "-k", version, *files], capture_output=True, text=True, check=False
    )
    problems = [line for line in result.stdout.splitlines() + result.stderr.splitlines() if not line.startswith("INFO")]
    assert result.returncode == 0 and not problems, "\n".join(problems)
    assert result.stdout.count("passed for resource") == sum(len(documents(overlay)) for overlay in OVERLAYS)


def test_checkov(tmp_path: Path) -> None:
    for overlay in OVERLAYS:
        _write(tmp_path, overlay)
    result = subprocess.run(
        [tool("checkov"), "--config-file", str(K8S / "checkov.yaml"), "-d", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"Passed checks: [1-9]\d*, Failed checks: 0", result.stdout), result.stdout


def test_every_checkov_skip_is_justified() -> None:
    lines = (K8S / "checkov.yaml").read_text().splitlines()
    for number, line in enumerate(lines):
        if line.strip().startswith("- CKV"):
            assert lines[number - 1].strip().startswith("#"), f"skip without a reason: {line.strip()}"
    for overlay in OVERLAYS:
        for doc in documents(overlay):
            for key, value in doc["metadata"].get("annotations", {}).items():
                if key.startswith("checkov.io/skip"):
                    assert re.fullmatch(r"CKV_K8S_\d+=.{20,}", value), f"{doc['metadata']['name']}: {value}"


def test_the_checked_in_envoy_config_is_the_rendering_of_the_template() -> None:
    assert envoy_config.RENDERED.read_text() == envoy_config.k8s_config(), (
        "deploy/k8s/base/edge/envoy.yaml is stale: run `make manifests`"
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_envoy_accepts_the_config_in_its_configmap(tmp_path: Path, overlay: str) -> None:
    deployment = one(overlay, "Deployment", "envoy")
    volumes = {volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]}
    config_map = one(overlay, "ConfigMap", volumes["config-template"]["configMap"]["name"])
    rendered = config_map["data"]["envoy.yaml"]
    assert rendered == envoy_config.RENDERED.read_text()
    # No token in the ConfigMap: the pod's init step mints it from the edge's mounted key.
    assert edge_init.TOKEN_PLACEHOLDER in rendered
    ensure_service_key(tmp_path / "keys", EDGE_NAME)
    (tmp_path / "template.yaml").write_text(rendered)
    edge_init.write_config(tmp_path / "template.yaml", tmp_path / "with-token.yaml", tmp_path / "keys")
    config = (tmp_path / "with-token.yaml").read_text()
    assert edge_init.TOKEN_PLACEHOLDER not in config
    # The pod's mounted files, here: a certificate for the TLS listener and the descriptor set.
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(tmp_path / "tls.key"), "-out", str(tmp_path / "tls.crt"), "-days", "1", "-subj", "/CN=t"],
        check=True, capture_output=True,
    )  # fmt: skip
    local = config.replace(envoy_config.TLS_DIR, str(tmp_path)).replace(
        envoy_config.DESCRIPTOR_PATH, str(REPO_ROOT / "gen" / "openhr.binpb")
    )
    (tmp_path / "envoy.yaml").write_text(local)
    envoy = REPO_ROOT / ".venv" / "bin" / "envoy"
    result = subprocess.run(
        [str(envoy), "--mode", "validate", "-c", str(tmp_path / "envoy.yaml"), "--use-dynamic-base-id"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and "OK" in result.stdout + result.stderr, result.stdout + result.stderr
    parsed = yaml.safe_load(config)
    assert parsed["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    clusters = {c["name"]: c for c in parsed["static_resources"]["clusters"]}
    for name in SERVICES:
        assert clusters[name]["type"] == "STRICT_DNS"
        address = clusters[name]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
        assert address["socket_address"]["address"] == f"{name}-headless"
        headless = one(overlay, "Service", f"{name}-headless")
        assert headless["spec"]["clusterIP"] == "None"
        assert address["socket_address"]["port_value"] == _service_port(one(overlay, "Deployment", name))
    containers = {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}
    assert containers["envoy"]["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "ops"}


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_has_its_manifests(overlay: str, name: str) -> None:
    """Fails for a new folder under services/ or edge/ with a __main__.py until it has its own
    folder under deploy/k8s/base/services/ (copy services/profile's)."""
    deployment = one(overlay, "Deployment", name)
    pod = deployment["spec"]["template"]["spec"]
    (app,) = [c for c in pod["containers"] if c["name"] == "app"]
    assert app["command"] == ["python", "-m", SERVICES[name]]
    port = _service_port(deployment)
    assert app["readinessProbe"]["grpc"] == {"port": port}
    assert app["livenessProbe"]["grpc"] == {"port": port, "service": LIVENESS_SERVICE}
    assert pod["serviceAccountName"] == name
    assert one(overlay, "ServiceAccount", name)["automountServiceAccountToken"] is False
    labels = pod_labels(deployment)
    service = one(overlay, "Service", name)
    assert selects({"matchLabels": service["spec"]["selector"]}, labels)
    assert [p["name"] for p in service["spec"]["ports"]] == ["grpc"] and service["spec"]["ports"][0]["port"] == port
    assert any(
        selects(policy["spec"]["podSelector"], labels) and policy["spec"]["podSelector"]
        for policy in find(overlay, "NetworkPolicy")
    ), f"no NetworkPolicy of its own selects {name}"
    hpa = one(overlay, "HorizontalPodAutoscaler", name)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    assert selects(one(overlay, "PodDisruptionBudget", name)["spec"]["selector"], labels)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_variable_the_code_reads_is_set(name: str) -> None:
    for overlay in OVERLAYS:
        (app,) = [c for c in one(overlay, "Deployment", name)["spec"]["template"]["spec"]["containers"]]
        missing = code_variables(name, SERVICES[name]) - container_environment(overlay, app) - NOT_SET.get(name, set())
        assert not missing, f"overlays/{overlay}: {name} reads {sorted(missing)}, unset in its Deployment"


def _callers() -> dict[str, set[str]]:
    """Callee -> the services that call it, from the *_ADDR settings the code reads (and
    identity's user data peers, OPENHR_USER_DATA_PEERS, at <NAME>_ADDR)."""
    callers: dict[str, set[str]] = {name: set() for name in SERVICES}
    config = one("dev", "ConfigMap", one("dev", "Deployment", "identity")["spec"]["template"]["spec"]["containers"][0]
                 ["envFrom"][0]["configMapRef"]["name"])["data"]  # fmt: skip
    for caller, module in SERVICES.items():
        for cls in settings_classes(module):
            for field_name, field in cls.model_fields.items():
                alias = field.validation_alias
                own_field = field_name not in ServiceSettings.model_fields
                if isinstance(alias, str) and alias.endswith("_ADDR") and own_field:
                    callers[alias.removesuffix("_ADDR").lower()].add(caller)
            if "user_data_peers" in cls.model_fields:
                for peer in filter(None, config["OPENHR_USER_DATA_PEERS"].split(",")):
                    callers[peer.strip()].add(caller)
    return callers


def _allows(policy: dict, direction: str, peer_labels: dict[str, str], port: int | str) -> bool:
    key = "from" if direction == "ingress" else "to"
    for rule in policy["spec"].get(direction, []):
        ports = [p["port"] for p in rule.get("ports", [])]
        if ports and port not in ports:
            continue
        if key not in rule or any("podSelector" in peer and "namespaceSelector" not in peer
                                  and selects(peer["podSelector"], peer_labels) for peer in rule[key]):  # fmt: skip
            return True
    return False


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_allow_exactly_the_calls_the_code_makes(overlay: str) -> None:
    policies = find(overlay, "NetworkPolicy")
    deny_all = [
        p
        for p in policies
        if p["spec"]["podSelector"] == {} and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress") and not p["spec"].get("egress")
    ]  # fmt: skip
    assert deny_all, "no default deny"
    envoy = pod_labels(one(overlay, "Deployment", "envoy"))
    callers = _callers()
    assert callers["profile"] == {"identity", "enrichment", "matching"}
    assert callers["enrichment"] == {"profile", "identity", "matching"}
    for name in SERVICES:
        callee = one(overlay, "Deployment", name)
        labels, port = pod_labels(callee), _service_port(callee)
        own = [p for p in policies if p["spec"]["podSelector"] and selects(p["spec"]["podSelector"], labels)]
        # Who may reach it: Envoy, and the services whose code calls it, nobody else.
        sources = set()
        for policy in own:
            for rule in policy["spec"].get("ingress", []):
                for peer in rule.get("from", [{"anyone": True}]):
                    if "namespaceSelector" in peer:  # Prometheus, on the metrics port only
                        assert [p["port"] for p in rule["ports"]] == ["metrics", "ops"] or rule["ports"] == [
                            {"port": "metrics", "protocol": "TCP"}
                        ]
                        continue
                    assert "podSelector" in peer, f"{name} is reachable by anyone: {rule}"
                    sources.add(peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"])
        assert sources == {"envoy", *callers[name]}, name
        assert any(_allows(p, "ingress", envoy, "grpc") for p in own)
        for caller in callers[name]:
            caller_labels = pod_labels(one(overlay, "Deployment", caller))
            assert any(_allows(p, "ingress", caller_labels, "grpc") for p in own), f"{caller} -> {name} refused"
            caller_policies = [p for p in policies if selects(p["spec"]["podSelector"], caller_labels)]
            assert any(_allows(p, "egress", labels, port) for p in caller_policies), f"{caller} may not call {name}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_are_hardened(overlay: str) -> None:
    for workload in _workloads(overlay):
        name, pod = workload["metadata"]["name"], workload["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in pod.get("initContainers", []) + pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, (name, container["name"])
            assert security["allowPrivilegeEscalation"] is False, (name, container["name"])
            assert security["capabilities"] == {"drop": ["ALL"]}, (name, container["name"])
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]) & set(container["resources"]["limits"])
        if workload["kind"] == "Deployment" and name in SERVICES:
            assert pod["terminationGracePeriodSeconds"] > SHUTDOWN_GRACE + pod["containers"][0]["lifecycle"]["preStop"][
                "sleep"]["seconds"]  # fmt: skip
            mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
            volumes = {v["name"]: v for v in pod["volumes"]}
            assert "emptyDir" in volumes[mounts["/tmp"]], name


def test_dev_runs_postgres_and_redis_with_volumes_one_replica_each() -> None:
    for name in ("postgres", "redis"):
        statefulset = one("dev", "StatefulSet", name)
        assert statefulset["spec"]["replicas"] == 1
        assert statefulset["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert "pgvector" in one("dev", "StatefulSet", "postgres")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert all(d["spec"]["replicas"] == 1 for d in find("dev", "Deployment"))


def test_prod_uses_managed_stores_two_replicas_and_drainable_budgets() -> None:
    assert not find("prod", "StatefulSet")
    for deployment in find("prod", "Deployment"):
        name = deployment["metadata"]["name"]
        assert deployment["spec"]["replicas"] >= 2, name
        assert one("prod", "HorizontalPodAutoscaler", name)["spec"]["minReplicas"] >= 2, name
        # One pod may go at a time: with two or more replicas, a drain proceeds and the service stays up.
        assert one("prod", "PodDisruptionBudget", name)["spec"]["maxUnavailable"] == 1, name
        app = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]
        if name in SERVICES:
            assert app["requests"]["memory"] == app["limits"]["memory"], name
    datastores = one("prod", "NetworkPolicy", "datastores")
    assert all("ipBlock" in peer for rule in datastores["spec"]["egress"] for peer in rule["to"])
    assert one("prod", "Service", "envoy")["spec"]["externalTrafficPolicy"] == "Local"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_in_the_repository_and_every_reference_is_generated(overlay: str) -> None:
    assert not find(overlay, "Secret")
    generated = {doc["metadata"]["name"]: doc for doc in secrets.generate("dev")}
    assert base64.b64decode(generated["openhr-secrets"]["data"]["OPENHR_DATA_KEY"]).__len__() == 44
    for workload in _workloads(overlay):
        pod = workload["spec"]["template"]["spec"]
        for container in pod.get("initContainers", []) + pod["containers"]:
            for entry in container.get("env", []):
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in generated[ref["name"]]["data"], (workload["metadata"]["name"], ref)
        for volume in pod.get("volumes", []):
            names = [volume["secret"]["secretName"]] if "secret" in volume else [
                source["secret"]["name"] for source in volume.get("projected", {}).get("sources", [])]  # fmt: skip
            assert all(name in generated for name in names), names


def test_migrations_run_before_services_serve() -> None:
    job = one("prod", "Job", "openhr-migrate")
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["python", "-m", "deploy.migrate"]
    for name in SERVICES:
        if (REPO_ROOT / "services" / name / "migrations").is_dir():
            pod = one("prod", "Deployment", name)["spec"]["template"]["spec"]
            (wait,) = pod["initContainers"]
            assert wait["command"][:4] == ["python", "-m", "deploy.migrate", "--wait"], name
