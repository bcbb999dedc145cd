"""Video-job admission (queue depth, order, position, cleanup) and recovery after a restart,
without a server (the real-server twins are in test_service.py)."""

import os
import subprocess
import sys
import threading
import time

import pytest

from clipmorph.errors import BadInput
from clipmorph.serving.jobs.recovery import CHILD_MODULE, CHILD_PID_FILE, recover_orphans
from clipmorph.serving.jobs.store import JobStore
from clipmorph.serving.jobs.video_queue import VideoJobQueue, queue_position


def wait_until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_video_jobs_wait_their_turn_and_a_full_queue_says_429(tmp_path):
    store = JobStore(tmp_path / "jobs", 3600)
    queue = VideoJobQueue(store, max_running=1, max_queued=2)
    release = threading.Event()
    started = []

    def run(job, source):
        started.append((job.id, source.read_bytes()))
        job.write("running")
        release.wait(10)
        job.write("succeeded")
        return {}

    uploads = []
    for number in range(3):
        upload = tmp_path / f"clip{number}.MOV"
        upload.write_bytes(b"clip %d" % number)
        uploads.append(upload)
    answers = [queue.submit(upload, run) for upload in uploads]
    first = store.get(answers[0]["job_id"])
    wait_until(lambda: len(started) == 1 and first.read().get("state") == "running")  # it has said so
    with pytest.raises(BadInput, match="queue is full") as refused:
        queue.submit(uploads[0], run)
    assert refused.value.reason == "busy"
    jobs = [store.get(a["job_id"]) for a in answers]
    assert [queue_position(store, job) for job in jobs] == [None, 1, 2]  # running, next, after it
    assert answers[2]["position"] in (2, 3) and answers[2]["task_id"] == answers[2]["job_id"]  # 3 if #1 had not started
    assert (jobs[2].folder / "input.mov").read_bytes() == b"clip 2"  # a copy: the upload may go
    release.set()
    wait_until(lambda: all(job.read()["state"] == "succeeded" for job in jobs))
    assert [s[1] for s in started] == [b"clip 0", b"clip 1", b"clip 2"]  # in order
    wait_until(lambda: not list(jobs[2].folder.glob("input*")))
    assert all(not list(job.folder.glob("input*")) for job in jobs)  # no upload kept
    queue.submit(uploads[0], run)  # room again


def test_a_job_cancelled_while_it_waits_never_runs_and_a_crash_is_recorded(tmp_path):
    store = JobStore(tmp_path / "jobs", 3600)
    queue = VideoJobQueue(store, max_running=1, max_queued=4)
    gate = threading.Event()
    ran = []

    def slow(job, source):
        gate.wait(10)
        job.write("succeeded")
        return {}

    def crashing(job, source):
        ran.append(job.id)
        raise RuntimeError("decoder exploded at /secret/path")

    upload = tmp_path / "clip.mp4"
    upload.write_bytes(b"x")
    first = queue.submit(upload, slow)
    waiting = store.get(queue.submit(upload, crashing)["job_id"])
    waiting.request_cancel()
    crash = store.get(queue.submit(upload, crashing)["job_id"])
    gate.set()
    wait_until(lambda: crash.read()["state"] == "failed")
    assert waiting.read()["state"] == "cancelled" and ran == [crash.id]
    assert "/secret" not in crash.read()["error"]
    assert store.get(first["job_id"]).read()["state"] == "succeeded"


def test_a_restart_fails_unfinished_jobs_cleans_them_and_stops_their_training_child(tmp_path):
    store = JobStore(tmp_path / "jobs", 3600)
    running, queued, done = (store.create(name) for name in ("style-running", "video-queued", "video-done"))
    running.write("running", kind="style", style="half-trained")
    queued.write("queued", kind="video")
    done.write("succeeded", kind="video")
    for job in (running, queued, done):
        (job.folder / "input.mp4").write_bytes(b"upload")
    (running.folder / "checkpoint").mkdir()
    child = subprocess.Popen(  # looks like the training child of that job (its command line names both)
        [sys.executable, "-c", "import time; time.sleep(120)", CHILD_MODULE, str(running.folder)]
    )
    (running.folder / CHILD_PID_FILE).write_text(str(child.pid))
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    (queued.folder / CHILD_PID_FILE).write_text(str(stranger.pid))  # a reused pid: not ours to stop
    try:
        assert sorted(recover_orphans(store)) == ["style-running", "video-queued"]
        assert child.wait(timeout=10) != 0
        assert stranger.poll() is None
        for job in (running, queued):
            record = job.read()
            assert record["state"] == "failed" and "submit it again" in record["error"]
            assert sorted(p.name for p in job.folder.iterdir()) == ["progress.json"]
        assert done.read()["state"] == "succeeded" and (done.folder / "input.mp4").exists()
        assert recover_orphans(store) == []
    finally:
        for process in (child, stranger):
            process.kill()
            process.wait()


def test_replicas_sharing_a_folder_fail_only_the_jobs_of_a_replica_that_stopped_beating(tmp_path):
    from clipmorph.serving.jobs.replicas import Replicas

    root = tmp_path / "jobs"
    first, second = Replicas(root, "replica-a", 30), Replicas(root, "replica-b", 30)
    first.beat()
    second.beat()
    mine = JobStore(root, 3600, owner="replica-a").create("video-of-a")
    mine.write("running", kind="video")
    theirs = JobStore(root, 3600, owner="replica-b").create("video-of-b")
    assert theirs.read()["owner"] == "replica-b" and theirs.read()["state"] == "queued"
    store = JobStore(root, 3600, owner="replica-b")
    assert recover_orphans(store, second.alive()) == []  # a restarted or busy neighbour keeps its jobs
    long_ago = time.time() - 120
    os.utime(root / ".replicas" / "replica-a", (long_ago, long_ago))  # replica A died two minutes ago
    assert second.alive() == {"replica-b"}
    assert recover_orphans(store, second.alive()) == ["video-of-a"]
    assert mine.read()["state"] == "failed" and theirs.read()["state"] == "queued"
    legacy = store.create("no-owner")  # written before replicas had ids: nobody owns it
    legacy.write("running", owner=None)
    assert recover_orphans(store, second.alive()) == ["no-owner"]


def test_a_job_mirrored_to_a_bucket_is_read_and_cancelled_by_a_replica_with_another_folder(tmp_path):
    from clipmorph.serving.jobs import store as job_store

    remote = tmp_path / "bucket"  # any fsspec location; the real S3 server is in test_replicas
    owner = JobStore(tmp_path / "a", 60, owner="a", remote=remote)
    other = JobStore(tmp_path / "b", 60, owner="b", remote=remote)
    job = owner.create("video-mirrored")
    assert other.get("video-mirrored").read()["state"] == "queued"
    job.write("running", done=1, total=4)  # within MIRROR_SECONDS of the last upload: not sent yet
    assert other.get("video-mirrored").read()["state"] == "queued"
    time.sleep(job_store.MIRROR_SECONDS)
    job.write("running", done=2, total=4)
    assert other.get("video-mirrored").read()["done"] == 2
    seen = other.get("video-mirrored")
    assert not seen.folder.exists() and seen.shared_file("result.mp4") is None
    assert not job.cancel_requested
    seen.request_cancel()
    time.sleep(job_store.MIRROR_SECONDS)  # the owner looks at the bucket at most this often
    assert job.cancel_requested  # and sees another replica's cancel
    job.output(".mp4").write_bytes(b"video")
    job.write("succeeded")  # the end: result first, then the record, whatever the time
    assert seen.read()["state"] == "succeeded"
    assert seen.shared_file("result.mp4").read_bytes() == b"video"
    assert other.get("video-unknown") is None
    owner.ttl_seconds = -1
    owner.sweep()  # a swept job leaves the bucket too
    assert other.get("video-mirrored") is None and not list((remote / "video-mirrored").iterdir())
