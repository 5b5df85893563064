"""The one exception ftlab raises for bad input.

A learner who passes a wrong name should read one short paragraph that says what exists and what to do,
not a long traceback from inside a library. Where it replaces a library error, raise it ``from`` that
error and name the error in the text (``describe``): the learner reads one paragraph, and whoever debugs
still finds the original traceback.
"""


class FtlabError(ValueError):
    """Bad input to ftlab: the message says what was wrong and how to fix it."""

    def _render_traceback_(self):
        # IPython calls this instead of printing the whole stack: the learner sees only the message.
        return [f"\x1b[31mFtlabError\x1b[0m: {self}"]


def describe(error: BaseException, limit: int = 200) -> str:
    """``Type: first line of the message``, shortened to fit in a sentence of an FtlabError."""
    lines = str(error).strip().splitlines()
    text = lines[0].strip().rstrip(".") if lines else ""  # the caller's sentence goes on after it
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
