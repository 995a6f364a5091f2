"""The deploy kit agrees with itself and with the schemas it is read by: systemd units verified by
systemd-analyze, Kubernetes manifests validated against the Kubernetes schema, the compose file's
services, ports and environment matching the config it mounts, and those configs loading."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from ordersync.config import parse_settings

DEPLOY = Path(__file__).parents[2] / "deploy"
KUBERNETES_VERSION = "1.31"
SECRETS = {
    "POSTGRES_PASSWORD": "pw",
    "POSTGRES_HOST": "postgres",
    "WEBCOMMANDER_BASE_URL": "https://shop.example.com",
    "WEBCOMMANDER_UUID": "U-1",
    "WEBCOMMANDER_ACCESS_TOKEN": "t",
    "WOOCOMMERCE_BASE_URL": "https://store.example.com",
    "WOOCOMMERCE_CONSUMER_KEY": "ck_x",
    "WOOCOMMERCE_CONSUMER_SECRET": "cs_x",
}


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not on this machine")
def test_the_systemd_units_verify_without_a_diagnostic(tmp_path: Path) -> None:
    # verify checks that ExecStart= names an executable: point the units at a stand-in.
    binary = tmp_path / "ordersync"
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    units = []
    for unit in sorted((DEPLOY / "systemd").iterdir()):
        copy_ = tmp_path / unit.name
        copy_.write_text(unit.read_text().replace("/usr/local/bin/ordersync", str(binary)))
        units.append(str(copy_))
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *units], capture_output=True, text=True, timeout=60
    )
    diagnostics = [line for line in (result.stdout + result.stderr).splitlines() if str(tmp_path) in line]
    assert result.returncode == 0 and not diagnostics, result.stdout + result.stderr


def test_the_daemon_unit_runs_migrations_first_and_stops_gently() -> None:
    unit = (DEPLOY / "systemd" / "ordersync.service").read_text()
    settings = dict(re.findall(r"^(\w+)=(.*)$", unit, re.M))
    assert settings["ExecStartPre"].endswith("ordersync db upgrade")
    assert settings["ExecStart"].endswith("ordersync --log-json run")
    assert settings["KillMode"] == "mixed" and settings["Restart"] == "on-failure"
    assert settings["StateDirectory"] == "ordersync" and settings["User"] == "ordersync"
    assert settings["Environment"] == "ORDERSYNC_CONFIG=/etc/ordersync/sync.yaml"


MANIFESTS = sorted(p for p in (DEPLOY / "kubernetes").glob("*.yaml") if p.name != "kustomization.yaml")


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.name for p in MANIFESTS])
def test_each_manifest_is_valid_kubernetes(path: Path) -> None:
    for doc in _documents(path):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_validator_refuses_a_broken_manifest() -> None:
    (deployment,) = _documents(DEPLOY / "kubernetes" / "deployment.yaml")
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["paht"] = "/x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_the_kustomization_lists_the_manifests_and_the_probes_hit_the_ops_port() -> None:
    (kustomization,) = _documents(DEPLOY / "kubernetes" / "kustomization.yaml")
    assert set(kustomization["resources"]) <= {p.name for p in MANIFESTS}
    (deployment,) = _documents(DEPLOY / "kubernetes" / "deployment.yaml")
    (config_map,) = _documents(DEPLOY / "kubernetes" / "configmap.yaml")
    (secret,) = _documents(DEPLOY / "kubernetes" / "secret.yaml")
    config = yaml.safe_load(config_map["data"]["sync.yaml"])
    port = int(config["ops"]["listen"].rsplit(":", 1)[1])
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["ops"] == port
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "ops"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "ops"}
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    (migrate,) = deployment["spec"]["template"]["spec"]["initContainers"]
    assert migrate["args"][-2:] == ["db", "upgrade"]
    # Every ${VAR} the config names is in the Secret the pod reads.
    named = set(re.findall(r"\$\{([A-Z_]+)", config_map["data"]["sync.yaml"]))
    assert named <= set(secret["stringData"]), named - set(secret["stringData"])


def _load_with(text: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    return parse_settings(yaml.safe_load(text), "deploy config")


def test_the_configs_of_the_kit_load(monkeypatch: pytest.MonkeyPatch) -> None:
    (config_map,) = _documents(DEPLOY / "kubernetes" / "configmap.yaml")
    for text in (config_map["data"]["sync.yaml"], (DEPLOY / "sync.compose.yaml").read_text()):
        settings = _load_with(text, monkeypatch)
        assert settings.ops.listen == "0.0.0.0:9108"
        assert settings.state.url.get_secret_value().startswith("postgresql+psycopg://")
        assert str(settings.mirror.path).startswith("/var/lib/ordersync/")


def test_the_compose_file_agrees_with_the_config_it_mounts(monkeypatch: pytest.MonkeyPatch) -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "migrate", "ordersync"}
    daemon, migrate, postgres = services["ordersync"], services["migrate"], services["postgres"]
    settings = _load_with((DEPLOY / "sync.compose.yaml").read_text(), monkeypatch)
    # The config is where ORDERSYNC_CONFIG says, in both containers.
    for service in (daemon, migrate):
        target = service["environment"]["ORDERSYNC_CONFIG"]
        assert f"./sync.compose.yaml:{target}:ro" in service["volumes"]
    assert daemon["command"][-1] == "run" and migrate["command"][-2:] == ["db", "upgrade"]
    assert daemon["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    # The state URL names the postgres service, its user and its database.
    url = settings.state.url.get_secret_value()
    env = postgres["environment"]
    assert f"{env['POSTGRES_USER']}:" in url and url.endswith(f"@postgres:5432/{env['POSTGRES_DB']}")
    assert postgres["image"].startswith("postgres:16")
    # The published port is the one the daemon listens on, and the mirror is on the data volume.
    port = settings.ops.listen.rsplit(":", 1)[1]  # type: ignore[union-attr]
    assert any(p.endswith(f":{port}:{port}") for p in daemon["ports"])
    data = next(v for v in daemon["volumes"] if v.startswith("data:"))
    assert str(settings.mirror.path).startswith(data.split(":", 1)[1])
    # Every ${VAR} the config names comes from the env file compose reads.
    example = dict(
        line.split("=", 1) for line in (DEPLOY / "env.example").read_text().splitlines() if "=" in line
    )
    named = set(re.findall(r"\$\{([A-Z_]+)", (DEPLOY / "sync.compose.yaml").read_text()))
    assert named <= set(example), named - set(example)
    assert daemon["env_file"] == migrate["env_file"] == ".env"
    assert migrate["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert daemon["image"] == migrate["image"]


def test_the_image_runs_as_a_user_with_a_health_check() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert dockerfile.count("\nFROM ") + dockerfile.startswith("FROM ") >= 2  # multi-stage
    assert "uv sync --locked --no-dev" in dockerfile
    assert re.search(r"^USER ordersync", dockerfile, re.M)
    assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile
    assert 'VOLUME ["/var/lib/ordersync"]' in dockerfile
    assert "ORDERSYNC_CONFIG=/etc/ordersync/sync.yaml" in dockerfile


def _merged(base: Any, patch: Any) -> Any:
    """A strategic-merge patch as kustomize applies these (maps merged by key, other values replaced)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        return {**base, **{k: _merged(base.get(k), v) for k, v in patch.items()}}
    return patch


def test_the_cluster_overlay_runs_three_replicas_on_a_lake(monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = DEPLOY / "kubernetes" / "cluster"
    (kustomization,) = _documents(cluster / "kustomization.yaml")
    assert kustomization["resources"] == ["../"]
    patched = {}
    for entry in kustomization["patches"]:
        (patch,) = _documents(cluster / entry["path"])
        (base,) = [
            doc
            for path in MANIFESTS
            for doc in _documents(path)
            if (doc["kind"], doc["metadata"]["name"]) == (patch["kind"], patch["metadata"]["name"])
        ]
        patched[patch["kind"]] = merged = _merged(base, patch)
        kubernetes_validate.validate(merged, KUBERNETES_VERSION, strict=True)
    deployment = patched["Deployment"]
    assert deployment["spec"]["replicas"] == 3 and deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert patched["PersistentVolumeClaim"]["spec"]["accessModes"] == ["ReadWriteMany"]
    settings = _load_with(patched["ConfigMap"]["data"]["sync.yaml"], monkeypatch)
    assert settings.mirror.kind == "ducklake" and settings.mirror.catalog is not None
    assert settings.mirror.catalog.get_secret_value().startswith(
        "postgres:host=postgres dbname=ordersync_lake"
    )
    assert settings.mirror.lake_data_path.startswith("/var/lib/ordersync/")  # on the shared volume
    (secret,) = _documents(DEPLOY / "kubernetes" / "secret.yaml")
    named = set(re.findall(r"\$\{([A-Z_]+)", patched["ConfigMap"]["data"]["sync.yaml"]))
    assert named <= set(secret["stringData"])
    # The image the overlay needs installs the extension wheels the lake tests run on.
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "COPY deploy/ducklake-requirements.txt" in dockerfile and "ARG DUCKLAKE=0" in dockerfile
