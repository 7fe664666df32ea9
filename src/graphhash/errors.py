"""The one exception type the stages turn into a one-line message, and how a library's exception becomes one line."""

import re


class GraphhashError(Exception):
    """A user-facing error: bad input, bad params, missing weights. Its message is one line naming the culprit."""


def describe(exc: BaseException, limit: int = 160) -> str:
    """An exception's first line, without object addresses (``<_io.BytesIO object at 0x...>`` becomes "the
    file"), with its type when the text says little, cut at ``limit`` characters."""
    text = re.sub(r"<[^<>]* at 0x[0-9a-fA-F]+>", "the file", str(exc)).strip().splitlines()
    line = text[0].strip() if text else ""
    if len(line) < 12 or line.isdigit():
        line = f"{type(exc).__name__}: {line}" if line else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."
