"""Metrics are created once per process even when many request threads need them at once."""

import subprocess
import sys
import textwrap

from conftest import REPO

RACE = textwrap.dedent(
    """
    import threading, time
    import prometheus_client
    from clipmorph.serving import metrics

    original = prometheus_client.Counter.__init__

    def slow_init(self, *args, **kwargs):  # widen the window between "not cached" and "registered"
        time.sleep(0.2)
        original(self, *args, **kwargs)

    prometheus_client.Counter.__init__ = slow_init
    barrier, seen, errors = threading.Barrier(6), [], []

    def first_request():
        barrier.wait()
        try:
            seen.append(metrics.get())
        except Exception as error:
            errors.append(repr(error))

    threads = [threading.Thread(target=first_request) for _ in range(6)]
    [thread.start() for thread in threads]
    [thread.join() for thread in threads]
    assert not errors, errors
    assert len(seen) == 6 and all(one is seen[0] for one in seen)
    """
)


def test_six_threads_asking_for_the_metrics_first_get_one_set_and_no_duplicate_registration():
    done = subprocess.run([sys.executable, "-c", RACE], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
