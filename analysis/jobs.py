"""Analysis jobs: the OGC API Processes job model that pygeoapi keeps in ``app.jobs`` (status,
progress, message; results as files under ``<state_dir>/jobs``), plus who started each job.

A job is for staff and for whoever started it (the same API key or account); to anyone else
it does not exist (404). Jobs started anonymously (public processes only) stay capability
links: their ids are random UUIDs. Finished jobs and their results are deleted after
``jobs_retention_days`` by :func:`run_once` (the worker's periodic task, or
``mapserver jobs clean``).
"""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine, Row

from mapserver.access import Principal
from mapserver.settings import Settings

COLUMNS = (
    "identifier, process_id, status, progress, message, created, started, finished, updated,"
    " location, mimetype, owner_role, owner_name, owner_key_id, owner_user_id"
)


def record_owner(engine: Engine, job_id: str, who: Principal) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE app.jobs SET owner_role = :role, owner_name = :name,"
                " owner_key_id = :key, owner_user_id = :user WHERE identifier = :id"
            ),
            {"role": who.role, "name": who.name, "key": who.key_id, "user": who.user_id,
             "id": job_id},
        )  # fmt: skip


def may_see(job: Row, who: Principal) -> bool:
    if who.has("staff"):
        return True
    if job.owner_key_id is not None:
        return job.owner_key_id == who.key_id
    if job.owner_user_id is not None:
        return job.owner_user_id == who.user_id
    return job.owner_role is None  # started anonymously: the link is the capability


def visible_job(engine: Engine, job_id: str, who: Principal) -> Row | None:
    """The job, if it exists and this principal may see it."""
    with engine.connect() as conn:
        job = conn.execute(
            text(f"SELECT {COLUMNS} FROM app.jobs WHERE identifier = :id"), {"id": job_id}
        ).one_or_none()
    return job if job is not None and may_see(job, who) else None


def recent_jobs(engine: Engine, limit: int = 200) -> list[Row]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(f"SELECT {COLUMNS} FROM app.jobs ORDER BY created DESC LIMIT :limit"),
                {"limit": limit},
            )
        )


def job_result(job: Row) -> dict[str, Any] | None:
    """A successful job's JSON result, read from its file."""
    if job.status != "successful" or not job.location:
        return None
    path = Path(job.location)
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def reporter(engine: Engine, job_id: str | None) -> Callable[[int, str], None]:
    """Writes a running job's progress (percent) and message where clients poll it."""

    def report(percent: int, message: str) -> None:
        if job_id is None:
            return
        with engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE app.jobs SET status = 'running', progress = :p, message = :m,"
                    " updated = now() WHERE identifier = :id AND status IN ('accepted', 'running')"
                ),
                {"p": max(5, min(percent, 94)), "m": message, "id": job_id},
            )

    return report


def run_once(engine: Engine, settings: Settings) -> int:
    """Delete jobs created more than ``jobs_retention_days`` ago, with their result files
    (only files inside the jobs folder). Returns how many jobs were deleted."""
    jobs_dir = (settings.state_dir / "jobs").resolve()
    with engine.begin() as conn:
        rows = conn.execute(
            text(
                "DELETE FROM app.jobs WHERE created < now() - make_interval(days => :days)"
                " RETURNING location"
            ),
            {"days": settings.jobs_retention_days},
        ).all()
    for (location,) in rows:
        if location:
            path = Path(location).resolve()
            if path.is_relative_to(jobs_dir):
                path.unlink(missing_ok=True)
    return len(rows)
