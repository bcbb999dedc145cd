"""The deployment descriptions under deploy/: valid Kubernetes objects (checked offline against
the bundled schemas), and true to the code they start (the CLI parses the Job's arguments, the
image copies files that exist, the Secrets hold the keys the pods read)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from conftest import REPO

DEPLOY = REPO / "deploy"
KUBERNETES_VERSION = "1.32"


def manifests() -> list[tuple[Path, dict]]:
    found = []
    for path in sorted(DEPLOY.rglob("*.yaml")):
        found += [(path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def by_kind(kind: str) -> list[dict]:
    return [doc for _, doc in manifests() if doc["kind"] == kind]


def test_every_manifest_is_a_valid_kubernetes_object():
    assert manifests()
    for path, doc in manifests():
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{path.relative_to(REPO)} ({doc['kind']}): {error.message} at {list(error.path)}")


def test_a_broken_manifest_is_caught():
    (job,) = by_kind("Job")
    broken = json.loads(json.dumps(job))
    broken["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = {"lots": True}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_the_training_job_runs_a_command_the_cli_accepts():
    from clipmorph.cli import build_parser

    (job,) = by_kind("Job")
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
    secrets = {s["metadata"]["name"]: set(s.get("stringData", {})) for s in by_kind("Secret")}
    (job,) = by_kind("Job")
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
