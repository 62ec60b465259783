"""Keep API keys out of everything we print, log or export."""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[REDACTED]"
# A known secret's fragment this long is removed too: text clipped for length can cut a key
# in two, and its first half must not survive the clip.
MIN_FRAGMENT = 8

# Shapes of common provider keys, for text that might carry a key we were not given
# (a provider echoing a key back, a key pasted into a URL).
_KEY_SHAPES = re.compile(
    r"(sk-ant-[A-Za-z0-9_\-]{8,}|sk-[A-Za-z0-9_\-]{16,}|gsk_[A-Za-z0-9]{16,}|csk-[A-Za-z0-9]{16,}"
    r"|AIza[0-9A-Za-z_\-]{20,}|fw_[A-Za-z0-9]{16,})"
)
_URL_KEY_PARAM = re.compile(r"([?&](?:key|api_key|apikey|token)=)[^&\s\"']+", re.IGNORECASE)


class Redactor:
    """Replaces known secrets (and key-shaped strings) with a fixed marker."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first so a key containing another key is removed whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def with_secret(self, secret: str | None) -> Redactor:
        return Redactor([*self._secrets, secret] if secret else self._secrets)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        for secret in self._secrets:
            if len(secret) > MIN_FRAGMENT:
                text = _scrub_cut(text, secret)
        text = _URL_KEY_PARAM.sub(r"\1" + REDACTED, text)
        return _KEY_SHAPES.sub(REDACTED, text)


def _scrub_cut(text: str, secret: str) -> str:
    """Replaces the start of `secret` (MIN_FRAGMENT characters or more) where text was cut
    right after it: at the end, or before an ellipsis. Keys sharing a prefix with `secret`
    are left alone here; the exact pass already replaced them whole."""
    head = secret[:MIN_FRAGMENT]
    start = text.find(head)
    while start != -1:
        end = start + MIN_FRAGMENT
        while end - start < len(secret) and end < len(text) and text[end] == secret[end - start]:
            end += 1
        if end == len(text) or text.startswith(("…", "..."), end):
            text = text[:start] + REDACTED + text[end:]
            start += len(REDACTED)
        else:
            start = end
        start = text.find(head, start)
    return text
