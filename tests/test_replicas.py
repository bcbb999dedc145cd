"""Two real `bentoml serve` replicas on one job folder (what a ReadWriteMany volume gives them):
a job submitted to one is polled, cancelled and downloaded through the other; a restarted
neighbour leaves running jobs alone; the jobs of a replica that died are failed by a survivor."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest

from media_factory import make_video
from service_fixture import kill_tree, own_store, start_server, stop_server
from test_service import ffmpeg_probe, wait_for_job

TIMEOUT = 4  # CLIPMORPH_REPLICA_TIMEOUT_SECONDS for these replicas


@pytest.fixture
def shared_jobs():
    folder = Path(tempfile.mkdtemp(prefix="cm-jobs-"))  # short paths: BentoML's unix sockets
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def replica(shared_jobs: Path, made: list[Path]):
    workdir = Path(tempfile.mkdtemp(prefix="cm-"))
    made.append(workdir)
    env = {
        "BENTOML_HOME": str(own_store(workdir)), "CLIPMORPH_JOBS_DIR": str(shared_jobs),
        "CLIPMORPH_REPLICA_TIMEOUT_SECONDS": str(TIMEOUT),
    }  # fmt: skip
    return start_server(workdir, env)


def submit(client, clip: Path) -> str:
    with clip.open("rb") as handle:
        answer = client.post("/video_job/submit", files={"video": (clip.name, handle)}, data={"style": "rand-0"})
    assert answer.status_code == 200, answer.text
    return answer.json()["job_id"]


def wait_running(client, job_id: str) -> None:
    deadline = time.monotonic() + 120
    while client.get(f"/jobs/{job_id}").json()["state"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_replicas_on_one_job_folder_answer_for_each_others_jobs(shared_jobs, tmp_path):
    short = make_video(tmp_path / "short.mp4", frames=24, size=(96, 64), fps=12)
    # Long enough (frames x pixels) to still be running after a neighbour restarts.
    long = make_video(tmp_path / "long.mp4", frames=3000, size=(320, 240), fps=12, audio_codec=None)
    made: list[Path] = []
    a = replica(shared_jobs, made)
    b = replica(shared_jobs, made)
    try:
        with a.client() as on_a, b.client() as on_b:
            job = submit(on_a, short)
            final, _ = wait_for_job(on_b, job)  # polled through the other replica
            assert final["state"] == "succeeded", final
            result = on_b.get(f"/jobs/{job}/result")
            assert result.status_code == 200
            (tmp_path / "result.mp4").write_bytes(result.content)
            assert ffmpeg_probe(tmp_path / "result.mp4")[0] == 24

            job = submit(on_a, long)
            wait_running(on_b, job)
            assert on_b.post(f"/jobs/{job}/cancel").status_code == 202  # cancelled through the other
            assert wait_for_job(on_a, job)[0]["state"] == "cancelled"

            job = submit(on_a, long)
            wait_running(on_a, job)
        stop_server(b)  # a neighbour restarts while A works: A's job must go on
        b = replica(shared_jobs, made)
        time.sleep(2 * TIMEOUT)
        with a.client() as on_a, b.client() as on_b:
            assert on_b.get(f"/jobs/{job}").json()["state"] == "running"
            kill_tree(a)  # A dies with its job half done
            final, _ = wait_for_job(on_b, job, timeout=10 * TIMEOUT)
            assert final["state"] == "failed" and "submit it again" in final["error"], final
            assert sorted(p.name for p in (shared_jobs / job).iterdir()) == ["progress.json"]  # upload removed
    finally:
        for server in (a, b):
            stop_server(server)
        for folder in made:
            shutil.rmtree(folder, ignore_errors=True)
