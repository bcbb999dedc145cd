"""Style creation in the service: how long the `fast` and `best` presets take on this machine,
and what image requests see while a style trains (clients/load.py idle, then during training).

Needs the trained catalogue (models/) and a folder of photos ($CLIPMORPH_DATA/content); not in
the default `make bench` (about 20 minutes on 2 CPU cores): `python -m bench --sections creation --merge`
(`CLIPMORPH_BENCH_PRESETS=fast` to time one preset).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.paths import CREATION_PAINTING, REPO, data_root
from bench.service import free_port, load_module, start

LOAD_SECONDS = 20


def create(url: str, preset: str, name: str) -> dict:
    painting = data_root() / "styles" / CREATION_PAINTING
    with httpx.Client(base_url=url, timeout=120) as client:
        with painting.open("rb") as handle:
            response = client.post(
                "/create_style", files={"painting": (painting.name, handle)}, data={"name": name, "preset": preset}
            )
        if response.status_code != 200:
            raise RuntimeError(f"/create_style answered {response.status_code}: {response.text[:500]}")
        return response.json()


def wait(url: str, job_id: str) -> dict:
    with httpx.Client(base_url=url, timeout=60) as client:
        while True:
            record = client.get(f"/jobs/{job_id}").json()
            if record["state"] in ("succeeded", "failed", "cancelled"):
                return record
            time.sleep(1.0)


def save_sample(url: str, style: str, preset: str) -> str | None:
    """scikit-image's cat (shipped in the wheel) in the new style -> bench/creation-<preset>.jpg."""
    try:
        import skimage
    except ImportError:
        return None
    photo = Path(skimage.__file__).parent / "data" / "chelsea.png"
    with httpx.Client(base_url=url, timeout=300) as client:
        response = client.post(
            "/stylize", files={"image": (photo.name, photo.read_bytes())},
            data={"style": style, "output_format": "jpeg"},
        )  # fmt: skip
    if response.status_code != 200:
        return None
    target = REPO / "bench" / f"creation-{preset}.jpg"
    target.write_bytes(response.content)
    return target.name


def run(quick: bool = False) -> list[dict]:
    if not (REPO / "models" / "manifest.json").is_file() or not (data_root() / "content").is_dir():
        print("creation: needs models/ and $CLIPMORPH_DATA/content; skipped", flush=True)
        return []
    load = load_module()
    rows = []
    with tempfile.TemporaryDirectory(prefix="clipmorph-bench-create-") as tmp:
        env = {**os.environ, "BENTOML_HOME": str(Path(tmp) / "bentoml"), "BENTOML_DO_NOT_TRACK": "true",
               "CLIPMORPH_TRAIN_CONTENT": str(data_root() / "content"), "CLIPMORPH_WANDB": "0",
               "CLIPMORPH_JOBS_DIR": str(Path(tmp) / "jobs")}  # fmt: skip
        subprocess.run([sys.executable, "-m", "clipmorph.cli", "styles", "import", str(REPO / "models")],
                       env=env, check=True, capture_output=True)  # fmt: skip
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        process = start(env, port, Path(tmp) / "serve.log")
        try:
            sizes, clients = [512], 2
            idle = load.run(url, clients, LOAD_SECONDS, sizes)
            rows.append({"section": "creation-load", "when": "idle", **idle})
            wanted = os.environ.get("CLIPMORPH_BENCH_PRESETS", "fast,best").split(",")
            presets = ["tiny"] if quick else wanted
            for preset in presets:
                started = time.monotonic()
                job = create(url, preset, f"bench {preset} {int(time.time())}")
                during = None
                if preset == presets[0]:  # image requests while this style trains
                    time.sleep(5)  # past start-up: the training loop is running
                    during = load.run(url, clients, LOAD_SECONDS, sizes)
                record = wait(url, job["job_id"])
                wall = time.monotonic() - started
                result = record.get("result", {})
                row = {"section": "creation", "preset": preset, "state": record["state"],
                       "steps": result.get("steps"), "training_s": result.get("seconds"),
                       "wall_s": round(wall, 1), "load_during": during is not None}  # fmt: skip
                rows.append(row)
                if record["state"] == "succeeded":
                    row["sample"] = save_sample(url, record["result"]["style"], preset)
                print(f"creation {preset}: {record['state']} {result.get('steps')} steps, training "
                      f"{result.get('seconds')} s, job wall {wall:.0f} s", flush=True)  # fmt: skip
                if during:
                    rows.append({"section": "creation-load", "when": f"during {preset} training", **during})
            for row in (r for r in rows if r["section"] == "creation-load"):
                print(f"creation load {row['when']:<24} {row['throughput_rps']:.2f} req/s  "
                      f"p50 {row['latency_p50_s']:.2f} s  p95 {row['latency_p95_s']:.2f} s", flush=True)  # fmt: skip
        except Exception:
            print((Path(tmp) / "serve.log").read_text()[-3000:], flush=True)
            raise
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)
    return rows
