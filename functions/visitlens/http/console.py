"""The web console's HTTP headers: one definition for every server of it (the local gateway in
`make dev`/`make demo`, the nginx of the cluster's static web service, rendered from here)."""

from __future__ import annotations

CONSOLE_CSP = (
    "default-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data: blob:; "
    # Ant Design writes its styles at run time (CSS-in-JS <style> elements)
    "style-src 'self' 'unsafe-inline'; font-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
CONSOLE_HEADERS = {
    "content-security-policy": CONSOLE_CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}
