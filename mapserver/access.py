"""Who is asking, and what they may see.

Roles: anonymous (the public), ``emergency`` (emergency planners, partner agencies),
``staff`` and ``admin``. A layer's ``access`` names the least role that reads it; fields
marked ``restricted`` are for staff and admin only. Machines authenticate with an API
key (``X-API-Key`` header or ``Authorization: Bearer``); people with a staff session.
"""

import hashlib
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from layers.model import Layer, LayerField

ROLES = ("emergency", "staff", "admin")
# Which layer access levels each role reads.
READS = {
    None: {"public"},
    "emergency": {"public", "emergency"},
    "staff": {"public", "emergency", "staff"},
    "admin": {"public", "emergency", "staff"},
}
RESTRICTED_FIELDS_FOR = {"staff", "admin"}
KEY_PREFIX = "msk"
SESSION_COOKIE = "msid"
CACHE_SECONDS = 10.0  # a revoked key stops working within this


@dataclass(frozen=True)
class Principal:
    role: str | None = None
    name: str = "anonymous"
    key_id: int | None = None
    user_id: int | None = None  # a person with a staff session

    def can_read(self, layer: Layer) -> bool:
        return layer.access in READS[self.role]

    def fields(self, layer: Layer) -> list[LayerField]:
        if self.role in RESTRICTED_FIELDS_FOR:
            return list(layer.fields)
        return layer.public_fields

    def has(self, role: str) -> bool:
        """At least ``role``: admin has every role, staff has emergency's."""
        order = {None: 0, "emergency": 1, "staff": 2, "admin": 3}
        return order[self.role] >= order[role]


ANONYMOUS = Principal()


def principal(connection: HTTPConnection) -> Principal:
    """The principal the authentication middleware attached to this request."""
    return connection.scope.get("principal", ANONYMOUS)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """A new key and the prefix shown in listings (never the whole key)."""
    prefix = secrets.token_hex(4)
    return f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}", prefix


class InvalidKey(Exception):
    pass


class KeyStore:
    """API keys from ``app.api_keys``, with a short in-process cache of lookups."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    def lookup(self, key: str) -> Principal:
        digest = hash_key(key)
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached is None or now - cached[0] > CACHE_SECONDS:
            with self.engine.begin() as conn:
                row = conn.execute(
                    text(
                        "UPDATE app.api_keys SET last_used_at = now()"
                        " WHERE key_hash = :hash AND revoked_at IS NULL"
                        " RETURNING id, name, role"
                    ),
                    {"hash": digest},
                ).one_or_none()
            found = Principal(row.role, row.name, row.id) if row else None
            cached = (now, found)
            self._cache[digest] = cached
        if cached[1] is None:
            raise InvalidKey
        return cached[1]


def presented_key(scope: Scope) -> str | None:
    headers = dict(scope.get("headers") or [])
    if key := headers.get(b"x-api-key"):
        return key.decode("latin-1").strip()
    authorization = headers.get(b"authorization", b"").decode("latin-1")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None


class Authentication:
    """Attaches the request's principal to the ASGI scope; a wrong key is a 401, never a
    silent fall-back to anonymous."""

    def __init__(self, app: ASGIApp, keys: KeyStore) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        key = presented_key(scope)
        if key:
            try:
                scope["principal"] = await run_in_threadpool(self.keys.lookup, key)
            except InvalidKey:
                await _unauthorised(send)
                return
        elif token := HTTPConnection(scope).cookies.get(SESSION_COOKIE):
            from mapserver.sessions import session_principal

            # An expired or unknown session is simply anonymous: the pages ask to log in.
            found = await run_in_threadpool(session_principal, self.keys.engine, token)
            if found:
                scope["principal"], scope["csrf_token"] = found
        await self.app(scope, receive, send)


async def send_json(send: Send, status: int, body: bytes, headers: list | None = None) -> None:
    """Answer from a middleware, before any app: a small JSON body."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _unauthorised(send: Send) -> None:
    body = b'{"code": "InvalidApiKey", "description": "The API key is not valid or was revoked."}'
    await send_json(send, 401, body, [(b"www-authenticate", b'Bearer realm="council maps"')])


def create_key(engine: Engine, name: str, role: str) -> tuple[int, str]:
    """Store a new key's hash; the key itself is returned once and never kept."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    key, prefix = new_key()
    with engine.begin() as conn:
        key_id = conn.execute(
            text(
                "INSERT INTO app.api_keys (name, role, key_hash, prefix)"
                " VALUES (:name, :role, :hash, :prefix) RETURNING id"
            ),
            {"name": name, "role": role, "hash": hash_key(key), "prefix": prefix},
        ).scalar_one()
    return key_id, key


def list_keys(engine: Engine) -> list:  # noqa: ANN401 (rows)
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT id, name, role, prefix, created_at, last_used_at, revoked_at"
                " FROM app.api_keys ORDER BY id"
            )
        ).all()


def revoke_key(engine: Engine, key_id: int) -> bool:
    with engine.begin() as conn:
        return bool(
            conn.execute(
                text(
                    "UPDATE app.api_keys SET revoked_at = now()"
                    " WHERE id = :id AND revoked_at IS NULL"
                ),
                {"id": key_id},
            ).rowcount
        )
