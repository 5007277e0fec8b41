"""The portal's web defences, each decided once: where a ``next`` may lead, the headers every
answer carries, how an id is read from a URL or a query string, which characters text may hold,
the public address of links, and how failed logins are throttled.

- :func:`safe_next` — a redirect target is a path on this site, read the way a browser reads it
  (tabs and line breaks dropped, ``\\`` taken as ``/``), or nothing.
- :func:`add_security_headers` — frame denial, ``nosniff``, a referrer policy, a
  Content-Security-Policy the pages and htmx work with (no inline script, no ``eval``; htmx is
  configured for it in ``base.html``), and ``Cache-Control: no-store`` on everything but static files.
- :class:`IdConverter` (``<id:contact_id>`` in every route) and :func:`id_arg` / :func:`int_arg`
  — ids beyond the 32-bit columns (or not numbers) are a 404 or "no filter", never a database error.
- :data:`CONTROL_CHARACTERS` and :func:`is_invisible` — the characters text fields refuse, and a
  value nobody can see (a BOM, an RTL override, zero-width spaces).
- :func:`public_url` — links sent back to clients are built on ``PUBLIC_BASE_URL``, never on the
  request's ``Host`` header.
- :class:`LoginThrottle` — failed logins counted in Redis per account and per address, so the
  limit holds across web processes; a Redis outage never blocks logins (it is logged).
"""
from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from flask import Response, current_app, has_request_context, request, url_for
from redis.exceptions import RedisError
from werkzeug.routing import BaseConverter, ValidationError
from werkzeug.urls import iri_to_uri

from portal.extensions import redis_store

log = logging.getLogger(__name__)

MAX_ID = 2**31 - 1
"""The largest id a row can have: the id columns are 32-bit integers on PostgreSQL."""

CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
"""Control characters no text field accepts (tab, line feed and carriage return are whitespace)."""

_URL_DROPPED = re.compile(r"[\x00-\x1f\x7f]")
_DIGITS = re.compile(r"[0-9]{1,10}")
# Characters that draw nothing although their Unicode category says "letter" or "symbol".
_INVISIBLE_EXTRA = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e")
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp", "Mn", "Me"})

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "style-src-attr 'unsafe-inline'",  # progress bars set their width inline; no <style> may be injected
    "img-src 'self' data:",
    "connect-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "object-src 'none'",
))


# --------------------------------------------------------------------------- redirects

def safe_next(target: object) -> str | None:
    """`target` as a path on this site (ready for a ``Location`` header), or None when it may lead elsewhere.

    Browsers drop tabs and line breaks anywhere in a URL and read ``\\`` as ``/``, so
    ``/\\t/evil.example`` or ``/\\evil.example`` would become ``//evil.example``: they are
    read the same way here before deciding. Only a path starting with one ``/`` passes.
    """
    if not isinstance(target, str) or not target or len(target) > 2048:
        return None
    cleaned = _URL_DROPPED.sub("", target).strip().replace("\\", "/")
    try:
        parts = urlsplit(cleaned)
    except ValueError:
        return None
    if parts.scheme or parts.netloc or not parts.path.startswith("/") or parts.path.startswith("//"):
        return None
    return iri_to_uri(urlunsplit(("", "", parts.path, parts.query, parts.fragment)))


def current_page() -> str:
    """The path (and query) of the page the user is on: htmx's ``HX-Current-URL``, else the request's own."""
    page = request.headers.get("HX-Current-URL")
    path = request.full_path.rstrip("?")
    if page:
        try:
            parts = urlsplit(_URL_DROPPED.sub("", page))
        except ValueError:  # not a URL at all (a client may send anything)
            return "/"
        path = urlunsplit(("", "", parts.path, parts.query, ""))
    return safe_next(path) or "/"


# --------------------------------------------------------------------------- headers

def add_security_headers(response: Response) -> Response:
    """Put the security headers on `response` (an ``after_request`` hook; a view's own values win)."""
    headers = response.headers
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
    if current_app.config.get("SESSION_COOKIE_SECURE"):
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if request.endpoint != "static":
        # Pages, fragments, JSON and CSV downloads all carry someone's contacts or account.
        headers["Cache-Control"] = "no-store"
        headers.pop("Expires", None)
    return response


# --------------------------------------------------------------------------- ids

def _up_to(limit: int) -> str:
    """A regular expression matching the whole numbers 1 to `limit` written without leading zeros."""
    digits = str(limit)
    shorter = f"[1-9][0-9]{{0,{len(digits) - 2}}}" if len(digits) > 1 else ""
    same_length = []
    for i, digit in enumerate(digits):
        low = "1" if i == 0 else "0"
        if int(digit) > int(low):
            rest = len(digits) - i - 1
            same_length.append(f"{digits[:i]}[{low}-{int(digit) - 1}]" + (f"[0-9]{{{rest}}}" if rest else ""))
    same_length.append(digits)
    return "(?:" + "|".join(filter(None, [shorter, *same_length])) + ")"


class IdConverter(BaseConverter):
    """``<id:name>``: a row id in a URL. Anything but 1 to :data:`MAX_ID` does not match (a 404,
    whatever the method: the limit is in the pattern, so no rule half-matches into a 405)."""

    regex = _up_to(MAX_ID)
    weight = 50
    part_isolating = True

    def to_python(self, value: str) -> int:
        """The id, or a non-match when out of range."""
        number = int(value)
        if not 1 <= number <= MAX_ID:
            raise ValidationError()
        return number

    def to_url(self, value: object) -> str:
        """The id as written in a URL."""
        return str(int(value))  # type: ignore[call-overload]


def parse_id(raw: object) -> int | None:
    """An id read from a form or a query string, or None when it is not one (empty, not a number, out of range)."""
    if not isinstance(raw, str):
        return None
    raw = raw.strip()
    if not _DIGITS.fullmatch(raw):
        return None
    number = int(raw)
    return number if 1 <= number <= MAX_ID else None


def id_arg(name: str) -> int | None:
    """The id in query-string parameter `name` (e.g. ``?tag=``), or None."""
    return parse_id(request.args.get(name))


def int_arg(name: str, default: int, low: int, high: int) -> int:
    """A whole number from the query string, brought within [low, high]; `default` when absent or not a number."""
    raw = (request.args.get(name) or "").strip()
    if not re.fullmatch(r"-?[0-9]{1,18}", raw):
        return default
    return max(low, min(int(raw), high))


# --------------------------------------------------------------------------- text

def has_control_characters(value: str) -> bool:
    """True when `value` holds a control character (NUL, escape, DEL, C1…; not tab or line breaks)."""
    return bool(CONTROL_CHARACTERS.search(value))


def without_control_characters(value: str) -> str:
    """`value` with its control characters dropped (for search words: a NUL never reaches the database)."""
    return CONTROL_CHARACTERS.sub("", value)


def is_invisible(value: str) -> bool:
    """True when `value` draws nothing: only spaces, format characters (BOM, RTL override,
    zero-width…), combining marks or fillers. An empty string is invisible too."""
    return not any(
        ch not in _INVISIBLE_EXTRA and unicodedata.category(ch) not in _INVISIBLE_CATEGORIES for ch in value
    )


# --------------------------------------------------------------------------- links

def public_url(endpoint: str, **values: object) -> str:
    """An absolute URL on ``PUBLIC_BASE_URL`` (the request's ``Host`` may be anything a client sent)."""
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    path = url_for(endpoint, **values)
    root = request.script_root if has_request_context() else ""
    if root and path.startswith(root):
        path = path[len(root):]
    return base + path


# --------------------------------------------------------------------------- login throttling

class LoginThrottled(Exception):
    """Too many failed logins for this account or from this address; try again in `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"login throttled for {retry_after} s")
        self.retry_after = max(1, int(retry_after))


@dataclass
class LoginThrottle:
    """Failed logins of one e-mail (whether an account has it or not) and one client address.

    Counted in Redis with a window that starts at the first failure
    (``LOGIN_THROTTLE_SECONDS``): past ``LOGIN_MAX_FAILURES_PER_ACCOUNT`` failures for the
    e-mail, or ``LOGIN_MAX_FAILURES_PER_ADDRESS`` from the address, logins are refused
    until the window ends. Unknown and known e-mails are counted alike, so the answer never
    tells which accounts exist. Redis down: nothing is refused (logged).
    """

    email: str
    address: str

    def _keys(self) -> tuple[str, str]:
        account = hashlib.sha256(self.email.strip().lower().encode("utf-8")).hexdigest()
        return f"anaba:login:account:{account}", f"anaba:login:address:{self.address or 'unknown'}"

    def check(self) -> None:
        """Raise :class:`LoginThrottled` when this e-mail or this address has failed too often."""
        config = current_app.config
        limits = (config["LOGIN_MAX_FAILURES_PER_ACCOUNT"], config["LOGIN_MAX_FAILURES_PER_ADDRESS"])
        try:
            with redis_store.redis.pipeline() as pipe:
                for key in self._keys():
                    pipe.get(key)
                    pipe.ttl(key)
                account, account_ttl, address, address_ttl = pipe.execute()
        except RedisError as exc:
            log.warning("login throttling skipped, Redis unavailable: %s", exc)
            return
        waits = [ttl for count, ttl, limit in ((account, account_ttl, limits[0]), (address, address_ttl, limits[1]))
                 if count is not None and int(count) >= limit]
        if waits:
            raise LoginThrottled(max(max(waits), 1))

    def failed(self) -> None:
        """Count a failed attempt for the e-mail and the address."""
        window = int(current_app.config["LOGIN_THROTTLE_SECONDS"])
        try:
            with redis_store.redis.pipeline() as pipe:
                for key in self._keys():
                    pipe.set(key, 0, ex=window, nx=True)
                    pipe.incr(key)
                pipe.execute()
        except RedisError as exc:
            log.warning("failed login not counted, Redis unavailable: %s", exc)

    def succeeded(self) -> None:
        """The account logged in: its own count starts again (the address's is left to expire)."""
        try:
            redis_store.redis.delete(self._keys()[0])
        except RedisError as exc:
            log.warning("login count not reset, Redis unavailable: %s", exc)
