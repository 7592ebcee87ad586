"""What a client IP address becomes before it is stored.

Four modes, chosen by the ``ip_mode`` setting:

- ``truncate`` (the default): an IPv4 address keeps its first three octets
  (``203.0.113.77`` is stored as ``203.0.113.0``); an IPv6 address is cut to its
  /48 network. Enough to count distinct networks, not to find a person.
- ``hash``: a keyed HMAC-SHA256 of the address, 32 hex digits, prefixed ``h:``.
  Distinct visitors stay countable; without the secret the address cannot be
  recovered by trying every IPv4 address.
- ``raw``: the address as given. Only when an operator asks for it.
- ``none``: nothing is stored.

A value that is not an IP address is stored as NULL in every mode but ``none``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Callable
from typing import Final, Literal

__all__ = ["IP_MODES", "IpMode", "make_ip_filter"]

IpMode = Literal["truncate", "hash", "raw", "none"]
IP_MODES: Final[tuple[str, ...]] = ("truncate", "hash", "raw", "none")


def make_ip_filter(
    mode: IpMode, secret: bytes | None = None
) -> Callable[[object], str | None]:
    """Return the function that turns a client address into what is stored.

    The function never raises: anything that is not an IP address gives None.
    ``secret`` is required for ``hash``.
    """
    if mode == "none":
        return _nothing

    if mode == "raw":
        return _Remembered(_raw)

    if mode == "truncate":
        return _Remembered(_truncate)

    if mode == "hash":
        if not secret:
            raise ValueError("ip_mode 'hash' needs a secret (ip_hash_secret)")
        return _Remembered(_Hasher(secret))

    raise ValueError(f"unknown ip_mode {mode!r}; allowed: {', '.join(IP_MODES)}")


class _Remembered:
    """A filter that remembers its recent answers: parsing an address costs
    tens of microseconds, and the same clients come back again and again."""

    __slots__ = ("_answers", "_filter")

    _KEPT: Final = 4096

    def __init__(self, address_filter: Callable[[object], str | None]) -> None:
        self._filter = address_filter
        self._answers: dict[str, str | None] = {}

    def __call__(self, value: object) -> str | None:
        if type(value) is not str:
            return self._filter(value)

        answers = self._answers
        try:
            return answers[value]
        except KeyError:
            pass

        if len(answers) >= self._KEPT:
            answers.clear()
        answer = answers[value] = self._filter(value)

        return answer

    def __repr__(self) -> str:
        return f"<remembered {self._filter!r}>"


def _parse(value: object) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not isinstance(value, str) or len(value) > 64:
        return None

    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None

    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped

    return address


def _nothing(value: object) -> None:
    return None


def _raw(value: object) -> str | None:
    address = _parse(value)
    return None if address is None else str(address)


def _truncate(value: object) -> str | None:
    address = _parse(value)
    if address is None:
        return None

    prefix = 24 if address.version == 4 else 48
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)

    return str(network.network_address)


class _Hasher:
    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def __call__(self, value: object) -> str | None:
        address = _parse(value)
        if address is None:
            return None

        digest = hmac.new(self._secret, address.packed, hashlib.sha256).hexdigest()

        return "h:" + digest[:32]

    def __repr__(self) -> str:
        return "<ip hash filter secret=***>"
