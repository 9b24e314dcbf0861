"""``mapserver worker``: runs the service's periodic tasks.

A task is a function ``run_once(engine, settings) -> int`` (the items it handled), named
in :data:`TASKS` with how often it runs; registering one is one line there. Each tick
the worker runs every task that is due, one after the other:

- Several worker replicas are safe: a task runs under a PostgreSQL advisory lock named
  after it, and only when its last start (``app.worker_tasks``, shared by all replicas) is
  older than its interval, so it runs once per interval whichever replica gets there.
- One task's failure is logged and recorded (``last_error``) and the loop goes on.
- SIGTERM or SIGINT lets the running task finish, then the worker exits 0.

Each tick it also touches ``state_dir/worker.alive``, which the container health check
reads.
"""

import importlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

from mapserver.database import try_lock
from mapserver.settings import Settings

log = logging.getLogger("mapserver.worker")

RunOnce = Callable[[Engine, Settings], int]


@dataclass(frozen=True)
class Task:
    name: str
    every_s: float
    target: str  # "package.module:function", imported when the worker starts

    def load(self) -> RunOnce:
        module, _, function = self.target.partition(":")
        return getattr(importlib.import_module(module), function)


TASKS: tuple[Task, ...] = (
    Task("layer-refresh", 300, "loaders.refresh:run_once"),
    Task("rate-limit-cleanup", 300, "mapserver.ratelimit:run_once"),
    Task("email-outbox", 10, "reports.outbox:run_once"),
    Task("job-retention", 3600, "analysis.jobs:run_once"),
)

DUE = """
SELECT last_started_at IS NULL OR last_started_at <= now() - make_interval(secs => :every)
FROM app.worker_tasks WHERE name = :name
"""
STARTED = """
INSERT INTO app.worker_tasks (name, last_started_at, runs) VALUES (:name, now(), 1)
ON CONFLICT (name) DO UPDATE SET last_started_at = now(), runs = worker_tasks.runs + 1
"""
FINISHED = """
UPDATE app.worker_tasks SET last_finished_at = now(), last_outcome = :outcome,
    last_items = :items, last_error = :error,
    failures = failures + CASE WHEN :outcome = 'failed' THEN 1 ELSE 0 END
WHERE name = :name
"""


def run_due(
    engine: Engine, settings: Settings, tasks: Iterable[Task], stop: threading.Event | None = None
) -> dict[str, int | None]:
    """Run each due task once; returns {name: items} of those run (None: it failed)."""
    done: dict[str, int | None] = {}
    for task in tasks:
        if stop is not None and stop.is_set():
            break
        with try_lock(engine, f"task:{task.name}") as mine:
            if not mine:
                continue  # another replica is running it
            with engine.begin() as conn:
                due = conn.execute(text(DUE), {"name": task.name, "every": task.every_s}).scalar()
                if due is False:
                    continue
                conn.execute(text(STARTED), {"name": task.name})
            done[task.name] = _run(engine, settings, task)
    return done


def _run(engine: Engine, settings: Settings, task: Task) -> int | None:
    started = time.monotonic()
    items, error = None, None
    try:
        items = int(task.load()(engine, settings))
    except Exception as exc:  # one task's failure must not stop the others
        error = f"{type(exc).__name__}: {exc}"
        log.exception("task %s failed", task.name)
    else:
        log.info("task %s: %d handled in %.1f s", task.name, items, time.monotonic() - started)
    outcome = "failed" if error else "ok"
    with engine.begin() as conn:
        conn.execute(
            text(FINISHED),
            {"name": task.name, "outcome": outcome, "items": items, "error": error},
        )
    return items


def heartbeat_file(settings: Settings) -> Path:
    return settings.state_dir / "worker.alive"


def run_forever(
    engine: Engine, settings: Settings, tasks: Iterable[Task], stop: threading.Event
) -> None:
    """Tick every ``worker_tick_s`` until ``stop`` is set; a failing tick (the database
    away) is logged and retried at the next one."""
    tasks = tuple(tasks)
    beat = heartbeat_file(settings)
    beat.parent.mkdir(parents=True, exist_ok=True)
    log.info("worker started: %s", ", ".join(f"{t.name} every {t.every_s:g} s" for t in tasks))
    while not stop.is_set():
        try:
            run_due(engine, settings, tasks, stop)
        except Exception:
            log.exception("worker tick failed; retrying")
        beat.touch()
        stop.wait(settings.worker_tick_s)
    log.info("worker stopped")


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM (systemd, docker stop) or SIGINT (Ctrl-C)."""
    stop = threading.Event()

    def handle(signum: int, frame: object) -> None:
        log.info("signal %s: stopping after the running task", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop
