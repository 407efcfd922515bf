"""HTTP Basic authentication against the users in the store."""

from __future__ import annotations

import base64
import time

import pytest

from tests.conftest import add_user
from trailkeeper.auth.authenticate import Authenticator
from trailkeeper.auth.principals import Role
from trailkeeper.errors import AuthenticationError
from trailkeeper.storage.base import Storage, UserRecord


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_right_password_gives_the_principal_and_wrong_ones_do_not(storage: Storage) -> None:
    add_user(storage, "carol", "s3cret-enough", Role.AUDITOR)
    auth = Authenticator(storage)
    principal = auth.authenticate(basic("carol", "s3cret-enough"))
    assert (principal.name, principal.role) == ("carol", Role.AUDITOR)
    for header in (basic("carol", "wrong"), basic("nobody", "s3cret-enough"), None, "",
                   "Bearer abc", "Basic !!!", basic("", "x"),
                   "Basic " + base64.b64encode(b"no-colon").decode()):
        with pytest.raises(AuthenticationError):
            auth.authenticate(header)


def test_a_disabled_user_is_refused_even_after_a_remembered_login(storage: Storage) -> None:
    add_user(storage, "dave", "pw-of-dave", Role.ADMIN)
    auth = Authenticator(storage)
    auth.authenticate(basic("dave", "pw-of-dave"))
    user = storage.get_user("dave")
    assert user is not None
    storage.put_user(UserRecord(user.name, user.password_hash, user.role, disabled=True))
    auth.forget()
    with pytest.raises(AuthenticationError):
        auth.authenticate(basic("dave", "pw-of-dave"))


def test_unknown_users_cost_as_much_as_wrong_passwords(storage: Storage) -> None:
    """No timing hint about which user names exist."""
    add_user(storage, "erin", "pw-of-erin", Role.USER)
    auth = Authenticator(storage)

    def cost(user: str) -> float:
        started = time.perf_counter()
        with pytest.raises(AuthenticationError):
            auth.authenticate(basic(user, "not-it"))
        return time.perf_counter() - started

    cost("ghost")  # the decoy hash is made once
    wrong = min(cost("erin") for _ in range(3))
    unknown = min(cost("ghost") for _ in range(3))
    assert unknown > wrong / 10  # without the decoy: about 1/500
