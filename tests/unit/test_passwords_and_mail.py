"""Password hashing (real argon2, CPU only) and the email as the mailer sends it."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

import pytest
from argon2 import PasswordHasher

from api.passwords import Passwords
from api.problems import HTTPProblem
from contracts.domain import Mail
from reactor.mailer import SmtpSettings, message

# The cheapest parameters argon2 takes: these tests check behaviour, not cost.
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


async def test_a_hash_checks_its_password_only() -> None:
    passwords = Passwords(FAST)
    hashed = await passwords.hash("correct horse battery")
    assert hashed.startswith("$argon2id$")
    assert "correct horse" not in hashed
    assert await passwords.verify(hashed, "correct horse battery")
    assert not await passwords.verify(hashed, "correct horse battery!")
    assert await passwords.hash("correct horse battery") != hashed  # salted


async def test_an_unknown_user_is_refused_after_a_real_check() -> None:
    passwords = Passwords(FAST)
    assert not await passwords.verify(None, "anything at all")
    assert not await passwords.verify("not a hash", "anything at all")


def test_the_email_sent_carries_a_message_id_of_the_email() -> None:
    at = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    sent = message(
        Mail("ada@example.org", "Welcome, Ada", "Hello"), "n <no-reply@x.test>", "e1", at
    )
    assert sent["To"] == "ada@example.org"
    assert sent["Subject"] == "Welcome, Ada"
    assert sent["Message-ID"] == "<e1@notify-service>"
    assert sent.get_content().strip() == "Hello"


def test_retries_back_off_to_a_minute() -> None:
    settings = SmtpSettings(retry_base=1.0)
    assert [settings.backoff(n) for n in (1, 2, 3, 7, 8, 20)] == [1, 2, 4, 60, 60, 60]


class HeldHasher(PasswordHasher):
    """Real argon2, whose hashes wait until `release` is set (sign-ups piling up)."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.release = threading.Event()

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self.release.wait(10)
        return super().hash(password, salt=salt)


async def test_sign_ups_piling_up_leave_sign_ins_a_slot_and_the_rest_are_told_to_retry() -> None:
    """80 sign-ups sent at once held an honest sign-in for 8.6 s, and all were queued."""
    hasher = HeldHasher()
    hasher.release.set()
    passwords = Passwords(hasher, concurrency=2, max_waiting=3)
    hashed = await passwords.hash("correct horse battery")
    hasher.release.clear()
    sign_ups = [asyncio.create_task(passwords.hash(f"guess {n}")) for n in range(3)]
    await asyncio.sleep(0)  # they take their turns
    with pytest.raises(HTTPProblem) as refused:
        await passwords.hash("one more")
    assert refused.value.problem.status == 503
    assert refused.value.headers == {"Retry-After": "1"}
    # A sign-in is checked while every sign-up still waits on its hash.
    assert await asyncio.wait_for(passwords.verify(hashed, "correct horse battery"), 5)
    assert not any(task.done() for task in sign_ups)
    hasher.release.set()
    assert all(await asyncio.gather(*sign_ups))
