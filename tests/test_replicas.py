"""Two real `bentoml serve` replicas on one job folder (what a ReadWriteMany volume gives them):
a job submitted to one is polled, cancelled and downloaded through the other; a restarted
neighbour leaves running jobs alone; the jobs of a replica that died are failed by a survivor.
With stores of their own and one models bucket (a real S3-protocol server), a style created on
one is served by the other, and the training slots of their machine hold for both."""

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


def replica(shared_jobs: Path, made: list[Path], extra_env: dict | None = None):
    workdir = Path(tempfile.mkdtemp(prefix="cm-"))
    made.append(workdir)
    env = {
        "BENTOML_HOME": str(own_store(workdir)), "CLIPMORPH_JOBS_DIR": str(shared_jobs),
        "CLIPMORPH_REPLICA_TIMEOUT_SECONDS": str(TIMEOUT),
    }  # fmt: skip
    return start_server(workdir, env | (extra_env or {}))


def submit(client, clip: Path) -> str:
    with clip.open("rb") as handle:
        answer = client.post("/video_job/submit", files={"video": (clip.name, handle)}, data={"style": "rand-0"})
    assert answer.status_code == 200, answer.text
    return answer.json()["job_id"]


def listed_ok(client) -> list[dict]:
    answer = client.post("/styles", json={})
    assert answer.status_code == 200 and isinstance(answer.json(), list), (answer.status_code, answer.text)
    return answer.json()


def wait_running(client, job_id: str) -> None:
    deadline = time.monotonic() + 120
    while client.get(f"/jobs/{job_id}").json()["state"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.2)


def heartbeats(jobs: Path) -> dict[str, int]:
    """Each replica's heartbeat file under the job folder, by name: its last beat (ns)."""
    folder = jobs / ".replicas"
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} if folder.is_dir() else {}


def wait_for_new_beats(jobs: Path, known: set[str], beats: int, still, timeout: float = 120) -> None:
    """Wait until a replica that is not in ``known`` has beaten ``beats`` times, checking at every
    look that ``still()`` says "running": the window is the new replica's own cycles, not a time."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < beats:
        assert time.monotonic() < deadline, "the new replica never beat"
        assert still() == "running"
        seen |= {beat for name, beat in heartbeats(jobs).items() if name not in known}
        time.sleep(0.1)


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
        known = set(heartbeats(shared_jobs))
        b = replica(shared_jobs, made)
        with a.client() as on_a, b.client() as on_b:
            # B looks for orphans after each heartbeat: three of its beats, and A's job is untouched.
            wait_for_new_beats(shared_jobs, known, beats=3, still=lambda: on_b.get(f"/jobs/{job}").json()["state"])
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


def test_a_style_made_on_one_replica_is_served_by_the_other_and_slots_hold_for_both(shared_jobs, tmp_path, vgg_assets):
    from PIL import Image
    from s3_server import s3_server
    from test_style_creation import create

    from clipmorph.styles.catalogue import write_catalogue

    from conftest import random_library, run_cli
    from media_factory import gradient_frame

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(4):
        Image.fromarray(gradient_frame(96, 72, t=i)).save(photos / f"{i}.jpg")
    made: list[Path] = []
    with s3_server(tmp_path / "moto.log") as s3:
        env = {
            **s3.env, "CLIPMORPH_MODELS_URL": s3.bucket("shared-models") + "/catalogue",
            "CLIPMORPH_MODELS_POLL_SECONDS": "1", "CLIPMORPH_CACHE": str(vgg_assets[1].parent),
            "CLIPMORPH_TRAIN_CONTENT": str(photos), "CLIPMORPH_WANDB": "0", "PIP_NO_INDEX": "1",
        }  # fmt: skip
        servers = []
        try:
            servers += [replica(shared_jobs, made, env)]
            servers += [replica(shared_jobs, made, env)]
            a, b = servers
            with a.client() as on_a, b.client() as on_b:
                long = create(on_a, name="Long One", preset="best")
                assert long.status_code == 200, long.text
                wait_running(on_b, long.json()["job_id"])
                short = create(on_b, name="Shared Stripes", preset="tiny")
                assert short.status_code == 200, short.text
                short_id = short.json()["job_id"]
                # One training slot on this machine, held by A's job: B's waits while A's trains on.
                long_id = long.json()["job_id"]
                first = on_a.get(f"/jobs/{long_id}").json().get("step", 0)
                deadline = time.monotonic() + 300
                while on_a.get(f"/jobs/{long_id}").json().get("step", 0) < first + 2:
                    assert time.monotonic() < deadline, "the long training stopped taking steps"
                    assert on_a.get(f"/jobs/{short_id}").json()["state"] == "queued"
                    time.sleep(0.2)
                assert on_a.get(f"/jobs/{short_id}").json()["state"] == "queued"
                assert on_b.post(f"/jobs/{long.json()['job_id']}/cancel").status_code == 202
                final, _ = wait_for_job(on_a, short_id)
                assert final["state"] == "succeeded" and final["result"]["published"] is True, final
                deadline = time.monotonic() + 60  # A's poller pulls what B pushed
                while "shared-stripes" not in {row["id"] for row in on_a.post("/styles", json={}).json()}:
                    assert time.monotonic() < deadline, "the new style never reached the other replica"
                    time.sleep(0.5)
                photo = (photos / "0.jpg").read_bytes()
                painted = on_a.post("/stylize", files={"image": ("p.jpg", photo)}, data={"style": "shared-stripes"})
                assert painted.status_code == 200, painted.text
                # Deleted on A: out of the bucket, so B, which made it, drops it too, and keeps it dropped.
                assert on_a.post("/delete_style", json={"style": "shared-stripes"}).status_code == 200
                deadline = time.monotonic() + 60
                while "shared-stripes" in {row["id"] for row in listed_ok(on_b)}:
                    assert time.monotonic() < deadline, "the deleted style stayed on the other replica"
                    time.sleep(0.5)
                # A style pushed after the delete reaches both: each poller has read the bucket
                # since, and the deleted one stays gone.
                write_catalogue(random_library("marker", num_styles=1), tmp_path / "marker")
                pusher = {**s3.env, "BENTOML_HOME": str(tmp_path / "marker-home")}
                assert run_cli("styles", "import", str(tmp_path / "marker"), env=pusher).returncode == 0
                assert run_cli("styles", "push", env["CLIPMORPH_MODELS_URL"], env=pusher).returncode == 0
                for client in (on_a, on_b):
                    deadline = time.monotonic() + 60
                    while "marker-0" not in (ids := {row["id"] for row in listed_ok(client)}):
                        assert time.monotonic() < deadline, "a style pushed later never arrived"
                        time.sleep(0.5)
                    assert "shared-stripes" not in ids
        finally:
            for server in servers:
                stop_server(server)
            for folder in made:
                shutil.rmtree(folder, ignore_errors=True)


def test_replicas_without_a_shared_folder_share_their_jobs_through_a_bucket(tmp_path):
    """Each replica its own job folder (BentoCloud, pods without a shared volume), one jobs bucket."""
    from s3_server import s3_server

    short = make_video(tmp_path / "short.mp4", frames=24, size=(96, 64), fps=12)
    long = make_video(tmp_path / "long.mp4", frames=3000, size=(320, 240), fps=12, audio_codec=None)
    made: list[Path] = []
    with s3_server(tmp_path / "moto.log") as s3:
        url = s3.bucket("shared-jobs") + "/jobs"
        servers = []
        try:
            for _ in range(2):
                workdir = Path(tempfile.mkdtemp(prefix="cm-"))
                made.append(workdir)
                env = {"BENTOML_HOME": str(own_store(workdir)), "CLIPMORPH_JOBS_URL": url, **s3.env}
                env["CLIPMORPH_REPLICA_TIMEOUT_SECONDS"] = str(TIMEOUT)
                servers.append(start_server(workdir, env))  # its own CLIPMORPH_JOBS_DIR under workdir
            a, b = servers
            assert a.jobs != b.jobs
            with a.client() as on_a, b.client() as on_b:
                job = submit(on_a, short)
                assert on_b.get(f"/jobs/{job}").status_code == 200  # known to B at once
                final, _ = wait_for_job(on_b, job)
                assert final["state"] == "succeeded", final
                result = on_b.get(f"/jobs/{job}/result")  # streamed from the bucket
                assert result.status_code == 200 and result.content == on_a.get(f"/jobs/{job}/result").content
                (tmp_path / "result.mp4").write_bytes(result.content)
                assert ffmpeg_probe(tmp_path / "result.mp4")[0] == 24
                assert not (b.jobs / job).exists()  # B holds nothing of A's job
                assert on_b.get("/jobs/video-0000000000000000000000000000dead").status_code == 404

                job = submit(on_a, long)
                wait_running(on_b, job)  # progress reaches B through the bucket
                assert on_b.post(f"/jobs/{job}/cancel").status_code == 202
                assert wait_for_job(on_a, job, timeout=60)[0]["state"] == "cancelled"
                assert wait_for_job(on_b, job, timeout=30)[0]["state"] == "cancelled"
                assert on_b.post(f"/jobs/{job}/cancel").status_code == 409  # it has ended

                job = submit(on_a, long)
                wait_running(on_b, job)
                kill_tree(a)  # A dies mid-job; its heartbeat in the bucket stops
                final, _ = wait_for_job(on_b, job, timeout=10 * TIMEOUT)
                assert final["state"] == "failed" and "submit it again" in final["error"], final
        finally:
            for server in servers:
                stop_server(server)
            for folder in made:
                shutil.rmtree(folder, ignore_errors=True)
