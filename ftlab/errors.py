"""The one exception ftlab raises for bad input.

A learner who passes a wrong name should read one short sentence that says what exists and what to do,
not a long traceback from inside a library. Raise it `from None` where it replaces a library error.
"""


class FtlabError(ValueError):
    """Bad input to ftlab: the message says what was wrong and how to fix it."""

    def _render_traceback_(self):
        # IPython calls this instead of printing the whole stack: the learner sees only the message.
        return [f"\x1b[31mFtlabError\x1b[0m: {self}"]
