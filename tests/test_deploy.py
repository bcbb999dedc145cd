"""The deployment descriptions under deploy/: valid Kubernetes objects (checked offline against
the bundled schemas), and true to the code they start (the CLI parses the Job's arguments, the
image copies files that exist, the Secrets hold the keys the pods read)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import jsonpatch
import kubernetes_validate
import pytest
import yaml

from conftest import REPO

DEPLOY = REPO / "deploy"
BENTOCLOUD = DEPLOY / "bentocloud.yaml"  # a `bentoml deploy` config, not a Kubernetes object
KUBERNETES_VERSION = "1.32"


CUSTOM_KINDS = {"ServiceMonitor"}  # CRDs (Prometheus Operator): no schema in kubernetes-validate
KUSTOMIZATION = "kustomization.yaml"


def read_yaml(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def manifests() -> list[tuple[Path, dict]]:
    """Every object under deploy/, kustomizations built (their objects, patched and labelled)."""
    found = []
    for path in sorted(DEPLOY.rglob("*.yaml")):
        if path == BENTOCLOUD:
            continue
        if path.name == KUSTOMIZATION:
            found += [(path, doc) for doc in kustomize_build(path.parent)]
        elif not (path.parent / KUSTOMIZATION).exists():
            found += [(path, doc) for doc in read_yaml(path)]
    return found


def kustomize_build(folder: Path) -> list[dict]:
    """What `kubectl kustomize` makes of the parts these files use: resources (files or
    folders), common labels, and JSON 6902 patches by kind and name."""
    (spec,) = read_yaml(folder / KUSTOMIZATION)
    assert set(spec) <= {"apiVersion", "kind", "resources", "labels", "patches"}, set(spec)
    objects = []
    for resource in spec.get("resources", []):
        source = (folder / resource).resolve()
        objects += kustomize_build(source) if source.is_dir() else read_yaml(source)
    for pairs in spec.get("labels", []):
        for obj in objects:
            obj.setdefault("metadata", {}).setdefault("labels", {}).update(pairs["pairs"])
    for patch in spec.get("patches", []):
        target = patch["target"]
        matched = [o for o in objects if o["kind"] == target["kind"] and o["metadata"]["name"] == target["name"]]
        assert matched, target
        for obj in matched:
            patched = jsonpatch.apply_patch(obj, yaml.safe_load(patch["patch"]))
            obj.clear()
            obj.update(patched)
    return objects


def by_kind(kind: str, under: str = "") -> list[dict]:
    return [doc for path, doc in manifests() if doc["kind"] == kind and str(path).startswith(str(DEPLOY / under))]


def test_every_manifest_is_a_valid_kubernetes_object():
    assert manifests()
    for path, doc in manifests():
        if doc["kind"] in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{path.relative_to(REPO)} ({doc['kind']}): {error.message} at {list(error.path)}")


def test_a_broken_manifest_is_caught():
    (job,) = by_kind("Job", "training")
    broken = json.loads(json.dumps(job))
    broken["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = {"lots": True}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_the_training_job_runs_a_command_the_cli_accepts():
    from clipmorph.cli import build_parser

    (job,) = by_kind("Job", "training")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value", "") for e in container["env"]}
    args = [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], arg) for arg in container["args"]]
    entrypoint = dockerfile_instruction("ENTRYPOINT")
    assert entrypoint[:1] == ["torchrun"] and entrypoint[-3:] == ["-m", "clipmorph.cli", "train"]
    parsed = build_parser().parse_args(["train", *args])
    assert parsed.resume and parsed.checkpoint_dir.startswith("s3://") and parsed.export.startswith("s3://")
    assert parsed.catalogue == Path("/app/training/catalogue.toml")
    assert (REPO / "training" / "catalogue.toml").is_file()  # what the image copies to /app/training
    gpus = container["resources"]["limits"]["nvidia.com/gpu"]
    assert parsed.batch_size % gpus == 0, "the global batch must split over the node's GPUs"


def test_the_training_pods_read_keys_their_secrets_hold():
    secrets = {s["metadata"]["name"]: set(s.get("stringData", {})) for s in by_kind("Secret", "training")}
    (job,) = by_kind("Job", "training")
    for container in job["spec"]["template"]["spec"]["containers"]:
        for entry in container["env"]:
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref and not ref.get("optional"):
                assert ref["key"] in secrets.get(ref["name"], set()), (entry["name"], ref)


def dockerfile_instruction(name: str) -> list[str]:
    text = (DEPLOY / "training" / "Dockerfile").read_text()
    (line,) = [line for line in text.splitlines() if line.startswith(f"{name} ")]
    value = line.removeprefix(f"{name} ").strip()
    return json.loads(value) if value.startswith("[") else shlex.split(value)


def test_the_training_image_copies_files_that_exist():
    text = (DEPLOY / "training" / "Dockerfile").read_text()
    copied = [line.split()[1:-1] for line in text.splitlines() if line.startswith("COPY ")]
    assert copied
    for sources in copied:
        for source in sources:
            assert (REPO / source).exists(), source


def service_objects(overlay: str) -> dict[str, dict]:
    return {doc["kind"]: doc for doc in kustomize_build(DEPLOY / "k8s" / overlay)}


def test_the_gpu_overlay_asks_for_a_gpu_per_replica_and_keeps_the_rest():
    cpu, gpu = service_objects("base"), service_objects("gpu")
    container = gpu["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "nvidia.com/gpu" not in cpu["Deployment"]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert gpu.keys() == cpu.keys() and gpu["Service"] == cpu["Service"]
    gpu_bento = yaml.safe_load((REPO / "bentofile.gpu.yaml").read_text())["name"]
    assert container["image"] == f"{gpu_bento}:latest"  # the CUDA image, not the CPU one


def test_the_deployment_reads_settings_the_service_has_and_probes_what_it_serves(server):
    settings = (REPO / "clipmorph" / "serving" / "settings.py").read_text()
    known = set(re.findall(r"CLIPMORPH_[A-Z_]+", settings))
    objects = service_objects("base")
    container = objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    names = set(objects["ConfigMap"]["data"]) | {e["name"] for e in container["env"]}
    assert {n for n in names if n.startswith("CLIPMORPH_")} <= known, {
        n for n in names if n.startswith("CLIPMORPH_")
    } - known
    jobs_dir = objects["ConfigMap"]["data"]["CLIPMORPH_JOBS_DIR"]
    assert jobs_dir in {m["mountPath"] for m in container["volumeMounts"]}
    # The probes and the autoscaler's metric are what a real `bentoml serve` answers.
    with server.client() as client:
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            assert client.get(container[probe]["httpGet"]["path"]).status_code == 200, probe
        metric = objects["HorizontalPodAutoscaler"]["spec"]["metrics"][0]["pods"]["metric"]["name"]
        assert re.search(rf"^{metric}{{", client.get("/metrics").text, re.M), metric
    (port,) = container["ports"]
    assert port["containerPort"] == 3000  # what the containerized bento listens on
    assert objects["Service"]["spec"]["ports"][0]["targetPort"] == port["name"]
    assert objects["ServiceMonitor"]["spec"]["endpoints"][0]["port"] == objects["Service"]["spec"]["ports"][0]["name"]
    labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    for selector in (objects["Service"]["spec"]["selector"], objects["Deployment"]["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= labels.items()


def test_the_service_secrets_hold_the_keys_the_deployment_reads():
    secrets = {s["metadata"]["name"]: set(s.get("stringData", {})) for s in by_kind("Secret", "k8s")}
    container = service_objects("base")["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    for entry in container["env"]:
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref and not ref.get("optional"):
            assert ref["key"] in secrets.get(ref["name"], set()), (entry["name"], ref)


def unknown_keys(value, schema, where: str = "") -> list[str]:
    """Keys of ``value`` that the attrs class ``schema`` (BentoML's own) has no field for, all
    the way down: BentoML ignores them silently, so a misspelt setting would be lost."""
    import typing

    import attr

    if not (isinstance(value, dict) and attr.has(schema)):
        return []
    hints = typing.get_type_hints(schema)
    found = []
    for key, item in value.items():
        if key not in hints:
            found.append(f"{where}{key}")
            continue
        # Optional[X], Optional[List[X]], Dict[str, X]: the attrs class X the item holds
        hint = hints[key]
        nested = {c for inner in (hint, *typing.get_args(hint)) for c in (inner, *typing.get_args(inner))}
        for inner_schema in [c for c in nested if attr.has(c)][:1]:
            if isinstance(item, dict) and key == "services":  # name -> one service's settings
                entries = [(f"{key}.{name}.", entry) for name, entry in item.items()]
            else:
                entries = [(f"{key}.", entry) for entry in (item if isinstance(item, list) else [item])]
            for prefix, entry in entries:
                found += unknown_keys(entry, inner_schema, where + prefix)
    return found


def service_names() -> set[str]:
    import ast

    names = set()
    for node in ast.walk(ast.parse((REPO / "service.py").read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "service":
            names |= {k.value.value for k in node.keywords if k.arg == "name"}
    return names


def test_the_bentocloud_config_is_what_bentoml_deploy_reads():
    from _bentoml_sdk.service.config import validate
    from bentoml._internal.cloud.schemas.schemasv2 import CreateDeploymentSchema
    from bentoml._internal.utils.cattr import bentoml_cattr

    config = yaml.safe_load(BENTOCLOUD.read_text())
    deployment = bentoml_cattr.structure(config, CreateDeploymentSchema)  # what `bentoml deploy -f` sends
    assert unknown_keys(config, CreateDeploymentSchema) == []
    misspelt = {
        "services": {"x": {"scalling": {}, "scaling": {"min_replica": 1}}},
        "envs": [{"name": "A", "value": "1"}, {"nmae": "B"}],
    }
    assert unknown_keys(misspelt, CreateDeploymentSchema) == [
        "services.x.scalling",
        "services.x.scaling.min_replica",
        "envs.nmae",
    ]
    assert set(deployment.services) == service_names() == {"clipmorph", "clipmorph-model"}
    for service in deployment.services.values():
        validate(service.config_overrides)  # BentoML's own check of service settings
        assert 1 <= service.scaling.min_replicas <= service.scaling.max_replicas
    # No shared volume there: more than one API replica only with the jobs bucket.
    if deployment.services["clipmorph"].scaling.max_replicas > 1:
        assert any(env.name == "CLIPMORPH_JOBS_URL" and env.value.startswith("s3://") for env in deployment.envs)
    assert deployment.services["clipmorph-model"].instance_type.startswith("gpu")
    bento_name = yaml.safe_load((REPO / "bentofile.gpu.yaml").read_text())["name"]
    assert deployment.bento == f"{bento_name}:latest"
    settings = set(re.findall(r"CLIPMORPH_[A-Z_]+", (REPO / "clipmorph" / "serving" / "settings.py").read_text()))
    assert {env.name for env in deployment.envs} <= settings
    # The secrets are named, never held: only names appear in the file.
    assert all(re.fullmatch(r"[a-z0-9-]+", name) for name in deployment.secrets)
    assert "AWS_SECRET_ACCESS_KEY=" not in BENTOCLOUD.read_text().replace("AWS_SECRET_ACCESS_KEY=...", "")
