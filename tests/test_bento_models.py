"""A bento packs the models its bentofile names, by exact version: the shipped catalogue and the
released loss network, never whatever else the builder's store holds."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from clipmorph.styles import assets, index

from conftest import REPO, run_cli
from service_fixture import own_store

pytestmark = [pytest.mark.service, pytest.mark.slow]

SHIPPED = [*index.catalogue_tags(REPO / "models" / "manifest.json"), assets.RELEASED_LOSS_NETWORK]


STORE_PLACEHOLDER = (
    "import sys, bentoml\n"
    "with bentoml.models.create(sys.argv[1], labels={'clipmorph.kind': 'loss-network'}) as model:\n"
    "    open(model.path_of('vgg19.safetensors'), 'wb').write(b'placeholder')\n"
)


def build(home: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bentoml", "build", "--output", "tag"], cwd=REPO, capture_output=True, text=True,
        timeout=600, env={**os.environ, "BENTOML_HOME": str(home)},
    )  # fmt: skip


@pytest.mark.parametrize("bentofile", ["bentofile.yaml", "bentofile.gpu.yaml"])
def test_each_bentofile_names_the_shipped_catalogue_and_the_loss_network(bentofile):
    check = subprocess.run(
        [sys.executable, str(REPO / "deploy" / "bento_models.py"), "--check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    named = yaml.safe_load((REPO / bentofile).read_text())["models"]
    assert named == SHIPPED
    manifest_styles = {tag.split(":")[0].removeprefix(index.STYLE_PREFIX) for tag in SHIPPED}
    assert {"starrynight", "starrynight-lite", "scream"} <= manifest_styles


def test_a_build_packs_exactly_the_named_versions_whatever_else_the_store_holds(tmp_path):
    home = own_store(tmp_path)  # random test styles: in the store, not in the list
    env = {"BENTOML_HOME": str(home)}
    imported = run_cli("styles", "import", str(REPO / "models"), env=env)
    assert imported.returncode == 0, imported.stderr
    # The released loss network's exact tag (what the list names); its weights do not matter here.
    stored = subprocess.run(
        [sys.executable, "-c", STORE_PLACEHOLDER, assets.RELEASED_LOSS_NETWORK], capture_output=True, text=True,
        env={**os.environ, **env}, timeout=120,
    )  # fmt: skip
    assert stored.returncode == 0, stored.stderr
    built = build(home)
    assert built.returncode == 0, built.stderr + built.stdout
    name, version = re.search(r"clipmorph:[a-z0-9]+", built.stdout).group(0).split(":")
    packed = yaml.safe_load((home / "bentos" / name / version / "bento.yaml").read_text())["models"]
    assert [model["tag"] for model in packed] == SHIPPED
    sources = home / "bentos" / name / version / "src"
    assert {p.name for p in sources.iterdir()} == {"service.py", "clipmorph", "README.md", "bentofile.yaml"}


def test_a_build_missing_a_named_model_fails_and_names_it(tmp_path):
    home = own_store(tmp_path)  # holds none of the shipped catalogue
    built = build(home)
    assert built.returncode != 0
    assert any(tag in built.stderr + built.stdout for tag in SHIPPED)
