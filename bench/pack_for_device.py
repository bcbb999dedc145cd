"""Pack what the GPU video and service sections need onto the lent GPU machine, which has torch
but neither PyAV nor BentoML, no internet and no ../shared: wheels for its Python (pinned to the
versions installed here) and the test clip, in at most ~60 MiB (one call carries 64 MiB).

    python bench/pack_for_device.py              # -> .device-pack/bench/{wheels,data/videos}

Then one device call: carry [".device-pack/bench"], command `OUT=$OUT bash bench/gpu_session.sh`.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.paths import REPO, data_root

LIMIT_MIB = 60
# On the device already, with its own torch: a second copy would not fit, nor be wanted.
SKIP = ("numpy-",)
PLATFORMS = ["manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64"]


def download_wheels(folder: Path, python_version: str) -> list[Path]:
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in ("av", "bentoml")]
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--implementation", "cp",
               "--python-version", python_version, "--dest", str(folder), *pins]  # fmt: skip
    for platform in PLATFORMS:
        command += ["--platform", platform]
    subprocess.run(command, check=True)
    for wheel in folder.glob("*.whl"):
        if wheel.name.lower().startswith(SKIP):
            wheel.unlink()
    return sorted(folder.glob("*.whl"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / ".device-pack" / "bench")
    parser.add_argument("--data", type=Path, help="default $CLIPMORPH_DATA or ../shared/data")
    parser.add_argument("--python-version", default="3.12", help="the device's Python (3.12 when last seen)")
    args = parser.parse_args(argv)
    data = args.data or data_root()
    clip = data / "videos" / "ski.mov"
    if not clip.is_file():
        raise SystemExit(f"{clip} not found (set --data)")
    shutil.rmtree(args.out, ignore_errors=True)
    (args.out / "data" / "videos").mkdir(parents=True)
    shutil.copy2(clip, args.out / "data" / "videos" / clip.name)
    wheels = download_wheels(args.out / "wheels", args.python_version)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file()) / 2**20
    print(f"{len(wheels)} wheels and {clip.name} in {args.out}: {size:.1f} MiB")
    if size > LIMIT_MIB:
        raise SystemExit(f"the pack is {size:.1f} MiB: over the {LIMIT_MIB} MiB a device call can carry")
    return 0


if __name__ == "__main__":
    sys.exit(main())
