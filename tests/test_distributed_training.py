"""Data-parallel training for real: `torchrun --nproc-per-node 2` (gloo on the CPU) against one
process, resumes across world sizes, SIGTERM, and checkpoints/exports in a real S3 server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from s3_server import s3_server

from conftest import REPO, TINY, run_cli

WORKER = Path(__file__).with_name("distributed_worker.py")


def launch(processes: int, pictures: Path, checkpoint_dir: str | Path, out: Path, steps: int, vgg_env: dict,
           resume: bool = False, extra_env: dict | None = None) -> dict[int, dict]:  # fmt: skip
    """Run the worker under torchrun (or alone for 1) and return each rank's saved state."""
    args = [str(WORKER), str(pictures), str(checkpoint_dir), str(out), "--steps", str(steps)] + ["--resume"] * resume
    if processes > 1:
        args = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}", *args]
    env = {**os.environ, **vgg_env, "PYTHONPATH": str(REPO / "tests"), "OMP_NUM_THREADS": "1", **(extra_env or {})}
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return {rank: torch.load(out / f"rank{rank}.pt", weights_only=False) for rank in range(processes)}


def assert_same_pictures(a: dict, b: dict, atol: float) -> None:
    """The two runs' networks paint the same fixed pictures (what the losses see)."""
    difference = (a["painted"] - b["painted"]).abs().max().item()
    assert difference <= atol, (difference, atol)


def _flatten(tree: dict, prefix: str = ""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def test_the_processes_share_out_each_batch_and_the_stream_goes_on_across_steps():
    from clipmorph.training.distributed import ShardedSampleStream, World

    for size in (1, 2, 4):
        taken = [World(rank, size).samples(3, 8) for rank in range(size)]
        assert sorted(s for part in taken for s in part) == list(range(24, 32))  # every sample of step 3, once
    stream = iter(ShardedSampleStream(5, 4, World(1, 2)))
    assert [next(stream) for _ in range(6)] == [21, 23, 25, 27, 29, 31]
    with pytest.raises(Exception, match="multiple of the 4 processes"):
        World(0, 4).local_batch(6)


def test_an_images_random_draws_do_not_depend_on_the_rest_of_its_batch():
    from clipmorph.training.temporal import MotionRange, random_motion, relight

    def generators(samples):
        return [torch.Generator().manual_seed(1000 + s) for s in samples]

    images = torch.rand(4, 3, 8, 8)
    together = relight(images, MotionRange(), generators(range(4)))
    apart = torch.cat([relight(images[i : i + 1], MotionRange(), generators([i])) for i in range(4)])
    assert torch.equal(together, apart)
    assert torch.equal(
        random_motion(4, MotionRange(), generators(range(4)))[2:], random_motion(2, MotionRange(), generators([2, 3]))
    )


def test_locations_keep_urls_as_text_and_write_local_files_whole(tmp_path):
    from clipmorph import locations

    assert locations.local_or_url("s3://bucket/run") == "s3://bucket/run"
    assert locations.local_or_url("runs/x") == Path("runs/x")
    assert locations.local_or_url(f"file://{tmp_path}") == tmp_path
    assert locations.join("s3://bucket/run/", "checkpoint.pt") == "s3://bucket/run/checkpoint.pt"
    source = tmp_path / "source.bin"
    source.write_bytes(b"weights")
    target = locations.upload(source, tmp_path / "deep" / "checkpoint.pt")
    assert Path(target).read_bytes() == b"weights" and not list((tmp_path / "deep").glob(".*partial*"))
    with pytest.raises(Exception, match="no file system for nosuch://"):
        locations.exists("nosuch://bucket/x")


def test_two_processes_train_like_one_and_resume_with_either_world_size(pictures, vgg_env, tmp_path):
    two = launch(2, pictures, tmp_path / "two", tmp_path / "out-two", 2, vgg_env)
    one = launch(1, pictures, tmp_path / "one", tmp_path / "out-one", 2, vgg_env)
    # The ranks hold the same weights after their steps: DDP averaged the same gradients into both.
    for part in ("backbone", "styles"):
        for (key, a), (_, b) in zip(_flatten(two[0][part]), _flatten(two[1][part]), strict=True):
            assert torch.equal(a, b), key
    assert two[0]["main"] and not two[1]["main"] and two[0]["step"] == 2
    assert two[0]["processes"] == 2 and one[0]["processes"] == 1  # on the styles' record
    # Two processes of two images each take the steps one process of four images takes.
    assert_same_pictures(two[0], one[0], atol=1e-4)
    assert two[0]["losses"].keys() == one[0]["losses"].keys()
    for key, value in one[0]["losses"].items():
        assert two[0]["losses"][key] == pytest.approx(value, rel=1e-3, abs=1e-6), key
    # Resuming is exact: two steps, a stop, two more steps paint what four steps in a row paint.
    shutil.copytree(tmp_path / "two", tmp_path / "two-again")
    two_then_two = launch(2, pictures, tmp_path / "two-again", tmp_path / "out-22", 4, vgg_env, resume=True)
    four = launch(2, pictures, tmp_path / "four", tmp_path / "out-4", 4, vgg_env)
    assert torch.equal(two_then_two[0]["painted"], four[0]["painted"])
    # Each run goes on with the other world size from its checkpoint; the step count continues.
    two_then_one = launch(1, pictures, tmp_path / "two", tmp_path / "out-21", 4, vgg_env, resume=True)
    one_then_two = launch(2, pictures, tmp_path / "one", tmp_path / "out-12", 4, vgg_env, resume=True)
    assert two_then_one[0]["step"] == one_then_two[0]["step"] == 4
    # Summing a batch in two halves rounds differently, and Adam's first updates are about
    # lr x sign(gradient): weights whose gradient is near zero move by rounding noise, so the
    # world sizes drift apart over the first steps; still far below what two steps change.
    change = (two_then_one[0]["painted"] - two[0]["painted"]).abs().max().item()
    assert change > 2e-2
    assert_same_pictures(two_then_one[0], one_then_two[0], atol=change / 10)
    saved = torch.load(tmp_path / "two" / "checkpoint.pt", weights_only=False)
    assert saved["step"] == 4


def test_a_batch_that_does_not_split_over_the_processes_is_refused(pictures, vgg_env, tmp_path):
    env = {**os.environ, **vgg_env, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "clipmorph.cli",
        "train", str(pictures / "stripes.png"), "--content", str(pictures / "photos"), "--steps", "1", "--no-wandb",
        "--no-save", "--checkpoint-dir", str(tmp_path), *TINY[:-4], "--batch-size", "3", "--workers", "0",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode != 0
    assert "batch size (3) must be a multiple of the 2 processes" in done.stderr


def test_sigterm_stops_every_process_with_one_checkpoint_to_resume_from(pictures, vgg_env, tmp_path):
    """What a preempted pod gets: SIGTERM to torchrun, which passes it to its workers."""
    env = {**os.environ, **vgg_env, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "clipmorph.cli",
        "train", str(pictures / "stripes.png"), "--content", str(pictures / "photos"), "--steps", "100000",
        "--no-wandb", "--checkpoint-dir", str(tmp_path), "--sample-every", "1", *TINY[:-4], "--batch-size", "2",
        "--workers", "0",
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not (tmp_path / "samples").is_dir() and time.monotonic() < deadline:  # rank 0 took its first step
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=180)
    assert "checkpoint saved" in stderr and "--resume" in stderr, stderr[-3000:]
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert 1 <= state["step"] < 100000
    resumed = run_cli(
        "train", str(pictures / "stripes.png"), "--content", str(pictures / "photos"), "--steps",
        str(state["step"] + 1), "--no-wandb", "--no-save", "--resume", "--checkpoint-dir", str(tmp_path), *TINY,
        env=vgg_env,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert f"trained {state['step'] + 1} steps" in resumed.stdout


def test_checkpoints_and_exports_go_to_a_bucket_and_a_run_resumes_from_it(pictures, vgg_env, tmp_path):
    from clipmorph.styles.catalogue import read_catalogue

    with s3_server(tmp_path / "moto.log") as s3:
        bucket = s3.bucket("training")
        env = {**vgg_env, **s3.env}
        base = ["train", str(pictures / "stripes.png"), str(pictures / "checks.png"), "--name", "bucketed",
                "--content", str(pictures / "photos"), "--no-wandb", "--no-save", *TINY]  # fmt: skip
        run = f"{bucket}/runs/bucketed"
        first = run_cli(*base, "--steps", "2", "--checkpoint-dir", run, env=env)
        assert first.returncode == 0, first.stderr
        fs = s3.filesystem()
        assert fs.exists("training/runs/bucketed/checkpoint.pt")
        assert not (Path.cwd() / "s3:").exists()  # a URL never becomes a local folder
        resumed = run_cli(
            *base, "--steps", "3", "--resume", "--checkpoint-dir", run, "--export", f"{bucket}/catalogue", env=env
        )
        assert resumed.returncode == 0, resumed.stderr
        assert "trained 3 steps" in resumed.stdout
        fs.get("training/catalogue", str(tmp_path / "downloaded"), recursive=True)
        library = read_catalogue(tmp_path / "downloaded")  # every file the manifest names, with its hash
        assert set(library.styles) == {"stripes", "checks"}
        assert library.styles["stripes"].metadata["training"]["steps"] == 3
        manifest = json.loads(fs.cat("training/catalogue/manifest.json"))
        assert {s["id"] for s in manifest["styles"]} == {"stripes", "checks"}
        # A bucket that cannot be reached is a clear error, not a traceback.
        s3.process.terminate()
        s3.process.wait(10)
        failed = run_cli(*base, "--steps", "4", "--resume", "--checkpoint-dir", run, env=env, timeout=300)
        assert failed.returncode == 1 and "clipmorph: error:" in failed.stderr and "Traceback" not in failed.stderr


def test_a_style_is_added_to_a_stored_backbone_by_two_processes_and_saved_once(pictures, vgg_env, tmp_path):
    env = {**vgg_env, "BENTOML_HOME": str(tmp_path / "home")}
    photos = ["--content", str(pictures / "photos"), "--no-wandb"]
    base = run_cli(
        "train", str(pictures / "stripes.png"), "--name", "ddp-base", "--steps", "1", "--checkpoint-dir",
        str(tmp_path / "base"), *photos, *TINY, env=env,
    )  # fmt: skip
    assert base.returncode == 0, base.stderr
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "clipmorph.cli",
        "train", str(pictures / "mirror.png"), "--id", "mirrored", "--add-to", "ddp-base", "--steps", "2",
        "--checkpoint-dir", str(tmp_path / "add"), *photos, *TINY[:-4], "--batch-size", "2", "--workers", "0",
    ]  # fmt: skip
    added = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, **env, "OMP_NUM_THREADS": "1"}, timeout=300
    )
    assert added.returncode == 0, added.stderr[-3000:]
    assert added.stdout.count("+ clipmorph-style-mirrored:") == 1  # rank 0 alone saves
    assert added.stdout.count("trained 2 steps") == 1
    listing = json.loads(run_cli("styles", "list", "--json", env=env).stdout)
    assert {row["id"] for row in listing} == {"stripes", "mirrored"}
    assert len({row["backbone"] for row in listing}) == 1  # the backbone stayed frozen: same version
