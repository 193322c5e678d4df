"""What no free text a user writes may hold, said once for every service: control characters.

A NUL reaches Postgres, which refuses it (a 500 once); escape sequences and other C0/C1 controls
end up in someone else's terminal or page. Tabs and line breaks are text: they stay."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
CONTROL_PROBLEM = "must not contain control characters"


def has_control_characters(value: str) -> bool:
    return _CONTROL.search(value) is not None
