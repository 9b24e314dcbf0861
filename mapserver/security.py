"""Security headers on every response.

Our own pages get a strict Content-Security-Policy: scripts and styles only from this
site, no inline code at all (data reaches the scripts through ``data-*`` attributes and
``<script type="application/json">`` blocks), no framing. Pages written by others —
pygeoapi's HTML under ``/ogc`` and Swagger UI at ``/api/docs`` (its assets served from
npm) — carry inline scripts, so they get a looser policy of their own that allows inline
code but nothing from another site; it still forbids framing, plugins and form posts
elsewhere (see docs/security.md).
"""

from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mapserver.ogc import MOUNT
from mapserver.settings import Settings

THIRD_PARTY_PAGES = (MOUNT, "/api/docs")
PERMISSIONS = (
    "geolocation=(self), camera=(), microphone=(), payment=(), usb=(), serial=(), "
    "bluetooth=(), magnetometer=(), gyroscope=(), accelerometer=(), browsing-topics=()"
)
HSTS = "max-age=31536000; includeSubDomains"


def _policy(directives: dict[str, str]) -> str:
    return "; ".join(f"{name} {value}".strip() for name, value in directives.items())


def _origin(url: str | None) -> str:
    """The scheme and host of an external service the pages use (the base map)."""
    if not url:
        return ""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") else ""


def policies(settings: Settings) -> tuple[str, str]:
    """The strict policy of our pages, and the looser one of third-party pages."""
    basemap = _origin(settings.basemap_url)
    common = {
        "default-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'self'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }
    if settings.base_url.startswith("https://"):
        common["upgrade-insecure-requests"] = ""
    strict = {
        **common,
        "script-src": "'self'",
        "style-src": "'self'",
        # data: and blob: for the PNG/PDF export (html-to-image draws the map into them).
        "img-src": f"'self' data: blob: {basemap}".strip(),
        "connect-src": f"'self' {basemap}".strip(),
        "font-src": "'self'",
    }
    third_party = {
        **common,
        # Inline code, but nothing from elsewhere: the service needs no internet, and
        # pygeoapi's templates' CDN assets (its HTML pages' map and styling) are left out.
        "script-src": "'self' 'unsafe-inline'",
        "style-src": "'self' 'unsafe-inline'",
        "img-src": "'self' data:",
        "connect-src": "'self'",
        "font-src": "'self' data:",
    }
    return _policy(strict), _policy(third_party)


class SecurityHeaders:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.strict, self.third_party = policies(settings)
        self.common = {
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "strict-origin-when-cross-origin",
            "Permissions-Policy": PERMISSIONS,
            "Cross-Origin-Opener-Policy": "same-origin",
        }
        if settings.base_url.startswith("https://"):
            # Only behind TLS: a browser told so over plain HTTP would refuse the site.
            self.common["Strict-Transport-Security"] = HSTS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        third_party = any(path == p or path.startswith(p + "/") for p in THIRD_PARTY_PAGES)
        policy = self.third_party if third_party else self.strict

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.common.items():
                    headers.setdefault(name, value)
                headers.setdefault("Content-Security-Policy", policy)
            await send(message)

        await self.app(scope, receive, send_with_headers)
