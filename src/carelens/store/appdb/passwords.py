"""The password policy (OWASP ASVS 2.1): at least 12 characters, at most 128, not only spaces,
not the user name, not one of the 30,000 commonest passwords (the list zxcvbn ships) nor one
repeated, nor a piece of 1-3 characters repeated."""

from __future__ import annotations

from functools import cache

from carelens.core.errors import InputError

MIN_LENGTH, MAX_LENGTH = 12, 128


@cache
def common_passwords() -> frozenset[str]:
    """The common-password list, lower-cased (zxcvbn's frequency list of leaked passwords)."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(p.lower() for p in FREQUENCY_LISTS["passwords"])


def _repeats(text: str) -> bool:
    """Whether ``text`` is one short piece (or a common password) said again and again."""
    for size in range(1, len(text) // 2 + 1):
        piece = text[:size]
        if len(text) % size == 0 and piece * (len(text) // size) == text:
            return size < 4 or piece in common_passwords()
    return False


def check_password(username: str, password: str) -> None:
    """Raise ``InputError`` naming the rule a new password breaks (never echoing it)."""
    if len(password) < MIN_LENGTH:
        raise InputError(f"the password must have at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise InputError(f"the password must have at most {MAX_LENGTH} characters")
    if not password.strip():
        raise InputError("the password cannot be only spaces")
    folded = password.lower()
    if username and username.lower() in folded:
        raise InputError("the password cannot contain the user name")
    if folded in common_passwords() or folded.strip() in common_passwords() or _repeats(folded):
        raise InputError("this password is too common; choose a longer, less guessable one (a passphrase)")
