"""Secrets of actions and forwarders: a literal, an environment variable, or a file.

Every secret-bearing key of trailkeeper.toml comes in three spellings — ``password``
(the value itself, kept as a `SecretStr` so that it never shows in a repr or a log),
``password_env`` (the name of an environment variable holding it) and ``password_file``
(a file holding it, such as a Docker or Kubernetes secret; one trailing newline is
dropped). At most one of them may be given; `resolve_secret` reads the one given when the
live object is built, so a rotated file is picked up at the next start.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import SecretStr


def check_one_secret(literal: SecretStr | None, env: str | None, file: Path | None, *,
                     what: str) -> None:
    """`ValueError` when more than one spelling of the secret ``what`` is given (for a
    pydantic model validator: the configuration fails at load time)."""
    given = [n for n, v in ((what, literal), (f"{what}_env", env), (f"{what}_file", file))
             if v is not None]
    if len(given) > 1:
        raise ValueError(f"give only one of {', '.join(given)}")


def resolve_secret(literal: SecretStr | None, env: str | None, file: Path | None, *,
                   what: str) -> str | None:
    """The secret's value, None when none of the three spellings is given.

    ``what`` names the key (``"password"``) in the messages; a `ValueError` says which
    spelling is unusable (two given, the variable unset or empty, the file unreadable or
    empty) without ever quoting the secret.
    """
    check_one_secret(literal, env, file, what=what)
    if literal is not None:
        value = literal.get_secret_value()
        if not value:
            raise ValueError(f"{what} is empty")
        return value
    if env is not None:
        value = os.environ.get(env, "")
        if not value:
            raise ValueError(f"{what}_env: the environment variable {env} is not set or empty")
        return value
    if file is not None:
        try:
            value = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else \
                type(exc).__name__
            raise ValueError(f"{what}_file: cannot read {file}: {reason}") from None
        value = value.removesuffix("\n").removesuffix("\r")
        if not value:
            raise ValueError(f"{what}_file: {file} is empty")
        return value
    return None
