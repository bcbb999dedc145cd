"""The patches of BentoML's and uvicorn's internals run only on the code they were read against.

Each patch has its own behaviour test with a real server (test_request_timer.py, the body and
slowloris tests of test_service.py); these tests fail as soon as upstream moves under a patch:
another release installed, or the source of a patched function changed."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from clipmorph.serving import upstream

from conftest import REPO

# Fingerprints are taken in a fresh interpreter: once a patch is installed, the attribute is ours.
AS_RELEASED = textwrap.dedent(
    """
    import json, sys
    from clipmorph.serving.upstream import FINGERPRINTS, fingerprint
    print(json.dumps({name: fingerprint(name) for names in FINGERPRINTS.values() for name in names}))
    """
)


@pytest.fixture(scope="module")
def released_sources() -> dict[str, str]:
    done = subprocess.run([sys.executable, "-c", AS_RELEASED], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("patch", sorted(upstream.FINGERPRINTS))
def test_every_function_a_patch_relies_on_is_unchanged_upstream(patch, released_sources):
    changed = [name for name, digest in upstream.FINGERPRINTS[patch].items() if released_sources[name] != digest]
    assert not changed, f"upstream changed under clipmorph/serving/upstream/{patch}.py: review {changed}"


def test_the_installed_releases_are_the_ones_the_patches_were_written_for():
    upstream.check_versions()  # raises with the reason otherwise
    assert upstream.installed_versions() == upstream.WRITTEN_FOR


def test_pyproject_pins_exactly_the_releases_the_patches_were_written_for():
    text = (REPO / "pyproject.toml").read_text()
    for name, version in upstream.WRITTEN_FOR.items():
        assert f'"{name}=={version}"' in text


@pytest.mark.parametrize(
    ("found", "named"),
    [
        ({"bentoml": "1.4.40", "uvicorn": "0.55.0"}, "bentoml 1.4.40 (written for 1.4.39)"),
        ({"bentoml": "1.4.39", "uvicorn": "0.56.0"}, "uvicorn 0.56.0 (written for 0.55.0)"),
    ],
)
def test_another_release_is_refused_with_its_name(found, named):
    with pytest.raises(upstream.UnsupportedUpstream, match=named.replace("(", r"\(").replace(")", r"\)")):
        upstream.check_versions(found)


def test_a_service_on_another_release_refuses_to_start_and_says_why(tmp_path):
    """service.py is imported by every BentoML worker: on an unchecked release the import fails
    with the reason instead of serving with an unknown patch."""
    fake = tmp_path / "site"
    dist = fake / "bentoml-9.9.9.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: bentoml\nVersion: 9.9.9\n")
    script = "import sys; sys.path.insert(0, sys.argv[1]); import service"
    done = subprocess.run(
        [sys.executable, "-c", script, str(fake)], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert done.returncode != 0
    assert "bentoml 9.9.9 (written for 1.4.39)" in done.stderr
