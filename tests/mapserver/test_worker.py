"""The worker: due tasks run once per interval across replicas, a failing task does not
stop the others, and SIGTERM stops the process cleanly."""

import os
import secrets
import signal
import subprocess
import sys
import threading
import time

from mapserver.worker import TASKS, Task, run_due

CALLS: list[str] = []


def counting_task(engine, settings) -> int:
    CALLS.append("count")
    return 7


def slow_task(engine, settings) -> int:
    CALLS.append("slow")
    time.sleep(1)
    return 1


def failing_task(engine, settings) -> int:
    raise RuntimeError("the mail server said no")


def task(kind: str, every_s: float = 3600) -> Task:
    return Task(f"test-{kind}-{secrets.token_hex(3)}", every_s, f"{__name__}:{kind}_task")


def test_every_registered_task_can_be_loaded():
    assert {"layer-refresh", "rate-limit-cleanup"} <= {t.name for t in TASKS}
    for registered in TASKS:
        assert callable(registered.load())


def test_a_failing_task_is_recorded_and_the_others_run(engine, settings, scalar):
    CALLS.clear()
    failing, counting = task("failing"), task("counting")
    done = run_due(engine, settings, [failing, counting])
    assert done == {failing.name: None, counting.name: 7}
    error = scalar("SELECT last_error FROM app.worker_tasks WHERE name = :n", n=failing.name)
    assert error == "RuntimeError: the mail server said no"
    assert scalar("SELECT failures FROM app.worker_tasks WHERE name = :n", n=failing.name) == 1
    assert scalar("SELECT last_items FROM app.worker_tasks WHERE name = :n", n=counting.name) == 7
    # Not due again within its interval, whichever worker asks.
    assert run_due(engine, settings, [counting]) == {}
    assert CALLS == ["count"]


def test_several_replicas_run_a_task_once_per_interval(engine, settings):
    CALLS.clear()
    slow = task("slow")
    results: list[dict] = []
    replicas = [
        threading.Thread(target=lambda: results.append(run_due(engine, settings, [slow])))
        for _ in range(3)
    ]
    for replica in replicas:
        replica.start()
    for replica in replicas:
        replica.join()
    assert CALLS == ["slow"]
    assert sorted(len(r) for r in results) == [0, 0, 1]


def test_sigterm_lets_the_worker_finish_and_exit(settings, tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "MAPSERVER_STATE_DIR": str(tmp_path),
        "MAPSERVER_WORKER_TICK_S": "0.2",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "mapserver.cli", "worker", "--task", "rate-limit-cleanup"],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    beat = tmp_path / "worker.alive"
    deadline = time.monotonic() + 60
    while not beat.exists():
        assert worker.poll() is None, worker.stderr.read()
        assert time.monotonic() < deadline, "the worker never ticked"
        time.sleep(0.1)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    log = worker.stderr.read()
    assert "worker started: rate-limit-cleanup every 300 s" in log
    assert "SIGTERM: stopping after the running task" in log
    assert "worker stopped" in log
