"""Security headers on every response (OWASP Secure Headers).

- `Content-Security-Policy`: scripts, styles, connections, images only from
  this origin (no inline script: the pages are ES modules and the docs
  page's start-up is a file); styles may also be inline (attributes that
  scripts set, Swagger UI's); no framing, no plugins, no `<base>`.
- `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`,
  `X-Frame-Options: DENY` (for browsers without `frame-ancestors`),
  `Cross-Origin-Opener-Policy: same-origin`.
"""

from __future__ import annotations

from typing import Final

POLICY: Final = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
HEADERS: Final = {
    "content-security-policy": POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}
RAW_HEADERS: Final = [(name.encode(), value.encode()) for name, value in HEADERS.items()]
