"""Errors a user can fix: the command line prints their message on one line, never a traceback."""

from __future__ import annotations

import urllib.parse


class UserError(Exception):
    """A problem with the setup (a setting, a file, a port, a server), told in one line that names it."""

    exit_code = 2


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***``: fit for a message, a log line or `config check`."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class StorageUnreachable(UserError):
    """The ClickHouse server does not answer (or refuses us) when a command starts."""
