"""Starting the training child of a style job: this same package (wherever it was loaded
from), this process's model store, a lower CPU priority; its output goes to the job's log."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from clipmorph.serving.jobs.recovery import CHILD_PID_FILE
from clipmorph.serving.jobs.store import Job

LOG_FILE = "train.log"

CHILD_STORE_VARIABLE = "CLIPMORPH_CHILD_MODEL_STORE"  # parent to child only: not a setting


def child_env() -> dict[str, str]:
    """The training child imports this same package, wherever it was loaded from: inside a
    built bento that is the bento's source folder, which no installed package points to. It
    also uses this process's model store: a served bento reads its own (``index.store_folder``),
    where the child must find the backbone and save the new style."""
    import clipmorph
    from clipmorph.styles import index

    root = str(Path(clipmorph.__file__).resolve().parent.parent)
    paths = [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    store = str(index.store_folder())
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)), CHILD_STORE_VARIABLE: store}


def run_training_child(job: Job, nice: int) -> int:
    """Run ``clipmorph.serving.jobs.style_worker`` on the job's folder to its end; its exit code.
    The child's pid is in the folder while it runs, so a restarted service can stop it."""
    command = [sys.executable, "-m", "clipmorph.serving.jobs.style_worker", str(job.folder)]

    def lower_priority() -> None:
        os.nice(nice)

    with (job.folder / LOG_FILE).open("w") as log_file:
        child = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, preexec_fn=lower_priority, env=child_env()
        )
        (job.folder / CHILD_PID_FILE).write_text(str(child.pid))
        returncode = child.wait()
    (job.folder / CHILD_PID_FILE).unlink(missing_ok=True)
    return returncode
