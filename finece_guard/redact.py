"""Redaction: credentials never leave the process in an error message, repr, log line or report.

A base URL can carry a password (``http://user:secret@host/v1``) or a key in its query
(``?api_key=...``, ``key=``, ``token=`` ...), and an API key travels in every request header.
Anything that puts a URL, a request or a server's output into text goes through this module:

* :func:`redact_url` masks the userinfo and credential-like query values of one URL;
* :func:`redact_text` does that for every URL inside a longer text, masks ``Bearer`` tokens and
  ``--api-key`` arguments, and masks any extra secret strings given (e.g. the configured API key).

The mask keeps the shape (scheme, host, port, path, parameter names) so the message still says
*which* server and *which* setting, only not the secret itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"

#: query parameter names whose values are credentials (compared case-insensitively)
SECRET_PARAMS = frozenset(
    {
        "api_key", "apikey", "api-key", "key", "token", "access_token", "auth", "authorization",
        "password", "passwd", "pwd", "secret", "client_secret", "sig", "signature", "x-api-key",
    }
)  # fmt: skip

#: API keys that mean "no key" and need no masking (vLLM's and OpenAI-compatible servers' convention)
PLACEHOLDER_KEYS = frozenset({"", "EMPTY", "none", "None", "sk-no-key-required"})

_URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
_BEARER_RE = re.compile(r"(?i)(\bbearer\s+)[^\s'\",}]+")
_API_KEY_ARG_RE = re.compile(r"(?i)(--api-key(?:=|\s+))\S+")
_KV_RE = re.compile(
    r"(?i)(['\"]?\b(?:api[_-]?key|authorization|password|passwd|client_secret|secret)['\"]?\s*[:=]\s*['\"]?)(?!\*\*\*)[^\s'\",}&]+"
)


def redact_url(url: str) -> str:
    """``url`` with its userinfo and credential-like query values replaced by ``***``.

    >>> redact_url("http://user:pw@host:8000/v1?api_key=abc&x=1")
    'http://***@host:8000/v1?api_key=***&x=1'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return _KV_RE.sub(lambda m: m.group(1) + MASK, url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in SECRET_PARAMS for k, _ in pairs):
            query = urlencode([(k, MASK if k.lower() in SECRET_PARAMS else v) for k, v in pairs], safe="*")
    fragment = parts.fragment
    if fragment and "=" in fragment:
        fragment = _KV_RE.sub(lambda m: m.group(1) + MASK, fragment)
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def redact_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every URL redacted, bearer tokens and ``--api-key`` values masked, and ``secrets`` removed."""
    out = _URL_RE.sub(lambda m: redact_url(m.group(0)), text)
    out = _BEARER_RE.sub(lambda m: m.group(1) + MASK, out)
    out = _API_KEY_ARG_RE.sub(lambda m: m.group(1) + MASK, out)
    out = _KV_RE.sub(lambda m: m.group(1) + MASK, out)
    for secret in secrets:
        if secret and secret not in PLACEHOLDER_KEYS and len(secret) >= 3:
            out = out.replace(secret, MASK)
    return out


def redact_args(args: Iterable[str]) -> list[str]:
    """A command line with ``--api-key`` values and URLs redacted (for logs and error messages)."""
    out: list[str] = []
    hide_next = False
    for arg in args:
        if hide_next:
            out.append(MASK)
            hide_next = False
            continue
        if arg.lower() == "--api-key":
            hide_next = True
            out.append(arg)
            continue
        out.append(redact_text(arg))
    return out
