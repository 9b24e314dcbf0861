"""Structured logs: one JSON object a line on standard error, for the request log (one
line per request, see :mod:`mapserver.observe`) and for the app's events. Each line
carries the request id of the request it belongs to."""

import logging
import sys
from typing import TextIO

from pythonjsonlogger.json import JsonFormatter

from mapserver import request_id
from mapserver.settings import Settings

FIELDS = "%(levelname)s %(name)s %(message)s"
TEXT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class _RequestContext(logging.Filter):
    """Adds the request id (text logs: "-" outside requests; JSON: only inside them)."""

    def __init__(self, placeholder: str | None) -> None:
        super().__init__()
        self.placeholder = placeholder

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.pop("color_message", None)  # uvicorn's copy with terminal colours
        if not hasattr(record, "request_id"):
            value = request_id.current.get() or self.placeholder
            if value is not None:
                record.request_id = value
        return True


def make_handler(settings: Settings, stream: TextIO = sys.stderr) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    json = settings.log_format == "json"
    if json:
        handler.setFormatter(
            JsonFormatter(
                FIELDS,
                rename_fields={"levelname": "level", "name": "logger"},
                timestamp="time",  # ISO 8601 in UTC
            )
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT))
    handler.addFilter(_RequestContext(None if json else "-"))
    return handler


def configure_logging(settings: Settings) -> None:
    """Send every logger (ours, uvicorn's, pygeoapi's) through one handler."""
    handler = make_handler(settings)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def event(name: str, **fields: object) -> None:
    """An app event (sign-in, backup, refused request…): a log line with its fields."""
    logging.getLogger("mapserver.events").info(name, extra={"event": name, **fields})
