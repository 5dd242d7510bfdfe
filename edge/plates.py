"""UK number-plate syntax: normalisation, format recognition, format-aware correction."""

from __future__ import annotations

import re

_NOT_ALNUM = re.compile(r"[^A-Z0-9]")


def normalise(text: str) -> str:
    """Upper case with everything but A-Z and 0-9 removed: 'ab12 cde' -> 'AB12CDE'."""
    return _NOT_ALNUM.sub("", text.upper())
