"""The error every part of the local stack raises when a server or app will not come up.

Its own module because the server launchers, the readiness checks and the supervisor all
raise it, and none of them should have to import another just for the exception.
"""

from __future__ import annotations


class StackError(RuntimeError):
    """A server or app did not start or become healthy."""
