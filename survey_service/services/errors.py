"""The one error type of the services: a request refused as it stands.

Every service error derives from :class:`ServiceError`, so the web layer handles them in one place (roll
back, answer with ``status`` and the message) and a view needs no try/except of its own unless it shows the
same form again with the problems marked.
"""
from __future__ import annotations


class ServiceError(ValueError):
    """A request a service cannot carry out: ``str()`` is a Vietnamese message for the user (commands may
    say it in English), ``status`` the HTTP status a page answers with. Whatever the request wrote is
    discarded."""

    status: int = 400

    def __init__(self, message: str = "", status: int | None = None):
        super().__init__(message)
        if status is not None:
            self.status = status
