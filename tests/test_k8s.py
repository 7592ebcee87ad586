"""Kubernetes manifests: valid against the API schemas, and consistent with the CLI."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import typer.main
import yaml

from mbasic_tracking import TrackingConfig
from mbasic_tracking.cli import app

K8S = Path(__file__).resolve().parent.parent / "k8s"
# The oldest release DigitalOcean and the other managed offerings still run;
# kubernetes-validate ships its schemas.
KUBERNETES_VERSION = "1.31"


def documents() -> list[tuple[str, dict[str, Any]]]:
    """(file name, resource) for every resource in k8s/, kustomization excluded."""
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                found.append((path.name, document))
    return found


def by_kind(kind: str) -> list[dict[str, Any]]:
    """The resources of one kind."""
    return [document for _, document in documents() if document["kind"] == kind]


def pod_spec(resource: dict[str, Any]) -> dict[str, Any]:
    """The pod spec of a Deployment, Job or CronJob."""
    spec = resource["spec"]
    if resource["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]  # type: ignore[no-any-return]


def test_every_manifest_is_valid_against_the_kubernetes_schemas() -> None:
    """Each resource passes strict validation (unknown fields are errors), and
    a misspelt field would not."""
    resources = documents()
    assert {r["kind"] for _, r in resources} >= {
        "ConfigMap",
        "Secret",
        "Deployment",
        "Job",
        "CronJob",
    }

    for name, resource in resources:
        try:
            kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{name}: {resource['kind']}: {error.message}")

    broken = copy.deepcopy(by_kind("Deployment")[0])
    broken["spec"]["template"]["spec"]["terminationGracePeriod"] = 45
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_the_kustomization_lists_every_resource_but_the_secret_example() -> None:
    """kustomization.yaml names each manifest except the example secret, which
    must never be applied over the real one."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    present = {path.name for path in K8S.glob("*.yaml")}

    assert listed == present - {"kustomization.yaml", "secret.example.yaml"}
    # The rollout applies the Job alone first, selected by this label.
    (job,) = by_kind("Job")
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "migrate"
    assert (
        "-l app.kubernetes.io/component=migrate"
        in (K8S / "kustomization.yaml").read_text()
    )


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_the_kustomization_builds_and_its_output_is_valid() -> None:
    """`kubectl kustomize k8s` builds offline; every built resource validates."""
    built = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, check=True
    ).stdout
    resources = [doc for doc in yaml.safe_load_all(built) if doc]

    assert len(resources) == 5
    for resource in resources:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
        image = (
            pod_spec(resource)["containers"][0]["image"] if "spec" in resource else None
        )
        assert image in (None, "registry.example.com/mbasic/ide:0.1.0")


def test_every_command_in_the_manifests_exists_in_the_cli() -> None:
    """Each `mbasic-tracking <command> <options>` in a manifest parses with the
    real command line; a made-up option would not."""
    group = typer.main.get_command(app)
    commands: list[list[str]] = []
    for _, resource in documents():
        if resource["kind"] in ("Job", "CronJob"):
            for container in pod_spec(resource)["containers"]:
                commands.append(container["command"] + container.get("args", []))

    assert sorted(command[1] for command in commands) == ["migrate", "purge", "rollup"]
    for program, name, *options in commands:
        assert program == "mbasic-tracking"
        subcommand = group.commands[name]  # type: ignore[attr-defined]
        subcommand.make_context(name, list(options))

    with pytest.raises(Exception, match="No such option"):
        group.commands["rollup"].make_context("rollup", ["--since-forever"])  # type: ignore[attr-defined]


def test_the_deployment_drains_probes_and_runs_unprivileged() -> None:
    """The grace period covers the preStop pause plus the tracker's drain; the
    probes use /health; the pod runs as non-root with resource limits."""
    from mbasic_tracking.nicegui import DEFAULT_DRAIN_TIMEOUT as drain

    deployment = by_kind("Deployment")[0]
    spec = pod_spec(deployment)
    container = spec["containers"][0]
    pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]

    assert spec["terminationGracePeriodSeconds"] >= pause + drain + 10
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/health"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"]["limits"]["memory"]
    assert container["envFrom"] == [{"secretRef": {"name": "mbasic-tracking-writer"}}]


def test_cron_jobs_are_hourly_and_daily_and_never_overlap() -> None:
    """Rollup runs hourly and purge daily, each with concurrencyPolicy Forbid."""
    schedules = {
        job["metadata"]["name"]: (
            job["spec"]["schedule"],
            job["spec"]["concurrencyPolicy"],
        )
        for job in by_kind("CronJob")
    }

    minute, hour, *rest = schedules["mbasic-tracking-rollup"][0].split()
    assert minute.isdigit() and hour == "*" and rest == ["*", "*", "*"]
    minute, hour, *rest = schedules["mbasic-tracking-purge"][0].split()
    assert minute.isdigit() and hour.isdigit() and rest == ["*", "*", "*"]
    assert {policy for _, policy in schedules.values()} == {"Forbid"}


def test_the_config_map_is_a_valid_tracking_section_fed_by_the_secret() -> None:
    """The ConfigMap's usage_tracking section, with the example secret's keys as
    the environment, is a valid config with TLS on; the secret holds no values."""
    import json

    config_map = by_kind("ConfigMap")[0]
    section = json.loads(config_map["data"]["multiuser.json"])["usage_tracking"]
    secrets = {s["metadata"]["name"]: s["stringData"] for s in by_kind("Secret")}

    config = TrackingConfig.from_dict(
        section, environ=secrets["mbasic-tracking-writer"]
    )

    assert config.mysql is not None and config.mysql.uses_tls
    assert config.mysql.port == 25060
    for values in secrets.values():
        assert values["MYSQL_PASSWORD"] == "CHANGE_ME"
        assert "CHANGE_ME" in values["MYSQL_HOST"]
        assert "CHANGE_ME" in values["MYSQL_CA_CERT"]
