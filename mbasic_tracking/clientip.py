"""Which address a request really came from, when proxies stand in between.

The connection's peer is the client, unless the peer is one of the operator's
trusted proxies. Only then is ``X-Forwarded-For`` read, from right to left: each
proxy appends the address it received the request from, so the rightmost entries
were written by the proxies nearest to us. Entries written by trusted proxies are
skipped; the first address that is not a trusted proxy is the client. Anything
left of it was written by the client itself and may be invented.

A header sent by a client that is not a trusted proxy is ignored entirely: the
old helper believed any header, so anyone could write any address into the table.

Pure functions, no I/O. ``Forwarded`` (RFC 7239) is not read; proxies that only
send it leave the peer as the client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Final, TypeAlias

__all__ = [
    "IPAddress",
    "IPNetwork",
    "parse_address",
    "parse_networks",
    "resolve_client_ip",
]

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

_MAX_HOPS: Final = 32  # entries read from the right; a longer chain is cut there
_MAX_HEADER_CHARS: Final = 4096


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Turn CIDRs or single addresses (``10.0.0.0/8``, ``192.0.2.7``) into networks.

    Raises ValueError naming the bad entry. A bare string is refused too: it would
    otherwise be read one character at a time.
    """
    if isinstance(values, str):
        raise ValueError(
            f"trusted_proxies: expected a list of CIDRs, got the string {values!r}"
        )

    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"trusted_proxies: {value!r} is not an IP address or CIDR "
                "(for example 10.0.0.0/8 or 192.0.2.7)"
            ) from None

    return tuple(networks)


def parse_address(value: str | None) -> IPAddress | None:
    """An address from a peer or a header entry; None when it is not one.

    Accepts ``192.0.2.1``, ``192.0.2.1:4711``, ``2001:db8::1`` and
    ``[2001:db8::1]:4711``; an IPv4-mapped IPv6 address becomes its IPv4 form.
    """
    if not value:
        return None

    text = value.strip()
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]

    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None

    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped

    return address


def resolve_client_ip(
    peer: str | None,
    forwarded_for: Sequence[str],
    trusted: Sequence[IPNetwork],
) -> str | None:
    """The client's address as text, or None when it cannot be known.

    Args:
        peer: the connection's remote address (``request.client.host``).
        forwarded_for: every ``X-Forwarded-For`` header value, in received order.
        trusted: the proxies whose headers are believed (``parse_networks``).

    Returns the peer itself when it is not trusted. When every hop is trusted,
    the leftmost one is the client. A malformed entry where a trusted proxy
    should have written an address gives None: guessing would store a proxy's
    address, or one the client chose, as the user's.
    """
    address = parse_address(peer)
    if address is None:
        return None

    if not _is_trusted(address, trusted):
        return str(address)

    for entry in reversed(_hops(forwarded_for)):
        hop = parse_address(entry)
        if hop is None:
            return None
        address = hop
        if not _is_trusted(hop, trusted):
            break

    return str(address)


def _hops(headers: Sequence[str]) -> list[str]:
    joined = ",".join(headers)
    if len(joined) > _MAX_HEADER_CHARS:
        # Keep the right end, which our proxies wrote; drop the entry cut in half.
        joined = joined[-_MAX_HEADER_CHARS:].partition(",")[2]

    entries = [entry.strip() for entry in joined.split(",")]

    return [entry for entry in entries if entry][-_MAX_HOPS:]


def _is_trusted(address: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)
