"""One exception type for every user-facing failure.

The CLI prints ``str(error)`` as a single line and exits non-zero, so messages name the file
(or id) and the problem, and never carry a traceback.
"""


class EdgesrError(Exception):
    """A problem with the user's input: bad id, unreadable image, mismatched weights, ..."""
