"""The one exception type the stages turn into a one-line message."""


class GraphhashError(Exception):
    """A user-facing error: bad input, bad params, missing weights. Its message is one line naming the culprit."""
