"""Staff accounts and sessions: passwords hashed with scrypt (memory-hard, in the
standard library), session tokens stored as sha256 hashes, each session with its own
CSRF token, and a lockout after repeated failed logins."""

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Engine

from mapserver.access import ROLES, Principal, hash_key

SCRYPT = {"n": 2**14, "r": 8, "p": 1}
SESSION_HOURS = 8
MAX_FAILURES = 5
LOCKOUT_MINUTES = 15
MIN_PASSWORD = 12


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **SCRYPT)
    parts = [
        "scrypt",
        *(str(SCRYPT[k]) for k in "nrp"),
        *(base64.b64encode(b).decode() for b in (salt, digest)),
    ]
    return "$".join(parts)


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(
        password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32
    )
    return hmac.compare_digest(candidate, base64.b64decode(digest))


def create_user(engine: Engine, email: str, name: str, role: str, password: str) -> int:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"the password must have at least {MIN_PASSWORD} characters")
    with engine.begin() as conn:
        return conn.execute(
            text(
                "INSERT INTO app.users (email, name, role, password_hash)"
                " VALUES (lower(:email), :name, :role, :hash) RETURNING id"
            ),
            {"email": email.strip(), "name": name, "role": role, "hash": hash_password(password)},
        ).scalar_one()


class LockedOut(Exception):
    pass


@dataclass(frozen=True)
class Session:
    token: str  # for the cookie; only its hash is stored
    csrf_token: str


# A hash to check when the email is unknown, so that both answers take as long.
_DUMMY_HASH = hash_password("not a real password at all")


def log_in(engine: Engine, email: str, password: str) -> Session | None:
    """A new session, None for a wrong email or password, LockedOut after too many."""
    with engine.begin() as conn:
        user = conn.execute(
            text(
                "SELECT id, password_hash, locked_until > now() AS locked FROM app.users"
                " WHERE email = lower(:email) AND disabled_at IS NULL FOR UPDATE"
            ),
            {"email": email.strip()},
        ).one_or_none()
        if user is None:
            check_password(password, _DUMMY_HASH)
            return None
        if user.locked:
            raise LockedOut
        if not check_password(password, user.password_hash):
            conn.execute(
                text(
                    "UPDATE app.users SET failed_logins = failed_logins + 1,"
                    " locked_until = CASE WHEN failed_logins + 1 >= :max"
                    f" THEN now() + interval '{LOCKOUT_MINUTES} minutes' END"
                    " WHERE id = :id"
                ),
                {"id": user.id, "max": MAX_FAILURES},
            )
            return None
        conn.execute(
            text("UPDATE app.users SET failed_logins = 0, locked_until = NULL WHERE id = :id"),
            {"id": user.id},
        )
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(24))
        conn.execute(
            text(
                "INSERT INTO app.sessions (token_hash, user_id, csrf_token, expires_at)"
                f" VALUES (:hash, :user, :csrf, now() + interval '{SESSION_HOURS} hours')"
            ),
            {"hash": hash_key(session.token), "user": user.id, "csrf": session.csrf_token},
        )
        return session


def session_principal(engine: Engine, token: str) -> tuple[Principal, str] | None:
    """The principal and CSRF token of a live session."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT u.id, u.email, u.role, s.csrf_token FROM app.sessions s"
                " JOIN app.users u ON u.id = s.user_id"
                " WHERE s.token_hash = :hash AND s.expires_at > now() AND u.disabled_at IS NULL"
            ),
            {"hash": hash_key(token)},
        ).one_or_none()
    if row is None:
        return None
    return Principal(row.role, row.email, user_id=row.id), row.csrf_token


def log_out(engine: Engine, token: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("DELETE FROM app.sessions WHERE token_hash = :hash"), {"hash": hash_key(token)}
        )
