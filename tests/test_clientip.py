"""Client address resolution behind trusted proxies."""

from __future__ import annotations

import re

import pytest

from mbasic_tracking.clientip import parse_address, parse_networks, resolve_client_ip

PROXIES = parse_networks(["10.0.0.0/8", "2001:db8:ffff::/48", "192.0.2.7"])


def test_untrusted_peer_is_the_client_and_its_header_is_ignored() -> None:
    """A header from a peer that is not a trusted proxy changes nothing."""
    assert resolve_client_ip("198.51.100.9", ["1.2.3.4"], PROXIES) == "198.51.100.9"


def test_trusted_peer_gives_the_rightmost_untrusted_hop() -> None:
    """Read right to left, skipping the trusted hops; what the client wrote
    further left is not believed."""
    header = ["6.6.6.6, 203.0.113.5, 10.1.2.3"]

    assert resolve_client_ip("10.0.0.1", header, PROXIES) == "203.0.113.5"


def test_several_header_lines_read_as_one_list() -> None:
    """Repeated headers are joined in the order received."""
    headers = ["6.6.6.6", "203.0.113.5", "10.9.9.9"]

    assert resolve_client_ip("192.0.2.7", headers, PROXIES) == "203.0.113.5"


def test_trusted_peer_without_header_is_the_client() -> None:
    """A trusted proxy that forwards nothing is itself the best we know."""
    assert resolve_client_ip("10.0.0.1", [], PROXIES) == "10.0.0.1"


def test_all_hops_trusted_gives_the_leftmost() -> None:
    """A client inside the trusted network is the farthest hop."""
    assert resolve_client_ip("10.0.0.1", ["10.5.5.5, 10.6.6.6"], PROXIES) == "10.5.5.5"


@pytest.mark.parametrize("garbage", ["unknown", "1.2.3", "<script>", "999.1.1.1"])
def test_malformed_hop_after_trusted_ones_gives_none(garbage: str) -> None:
    """Where a trusted proxy should have written an address, junk means unknown."""
    assert resolve_client_ip("10.0.0.1", [f"{garbage}, 10.2.2.2"], PROXIES) is None


def test_malformed_hop_beyond_the_client_is_not_read() -> None:
    """Entries left of the first untrusted hop are never parsed."""
    header = ["not-an-ip, 203.0.113.5"]

    assert resolve_client_ip("10.0.0.1", header, PROXIES) == "203.0.113.5"


def test_ipv6_peer_and_hops() -> None:
    """IPv6 proxies and clients, bracketed with ports or bare."""
    header = ["[2001:db8:1::5]:4711, 2001:db8:ffff::2"]

    assert resolve_client_ip("2001:db8:ffff::1", header, PROXIES) == "2001:db8:1::5"


def test_ipv4_mapped_peer_counts_as_ipv4() -> None:
    """``::ffff:10.0.0.1`` is the trusted 10.0.0.1."""
    assert (
        resolve_client_ip("::ffff:10.0.0.1", ["203.0.113.5"], PROXIES) == "203.0.113.5"
    )


def test_ports_on_hops_are_dropped() -> None:
    """Some proxies append ``address:port``."""
    assert resolve_client_ip("10.0.0.1", ["203.0.113.5:5555"], PROXIES) == "203.0.113.5"


def test_peer_that_is_not_an_address_gives_none() -> None:
    """Test clients report names such as ``testclient``."""
    assert resolve_client_ip("testclient", ["203.0.113.5"], PROXIES) is None
    assert resolve_client_ip(None, [], PROXIES) is None


def test_no_trusted_proxies_means_the_peer() -> None:
    """The default trusts nobody."""
    assert resolve_client_ip("10.0.0.1", ["203.0.113.5"], ()) == "10.0.0.1"


def test_a_huge_header_is_cut_from_the_left() -> None:
    """The right end, written by our proxies, is what is kept."""
    header = ["1.1.1.1, " * 2000 + "203.0.113.5"]

    assert resolve_client_ip("10.0.0.1", header, PROXIES) == "203.0.113.5"


def test_a_long_chain_of_trusted_hops_stops_at_the_limit() -> None:
    """At most 32 entries are read; the last one read is then the answer."""
    header = ["203.0.113.5, " + ", ".join(["10.0.0.9"] * 40)]

    assert resolve_client_ip("10.0.0.1", header, PROXIES) == "10.0.0.9"


def test_parse_networks_names_the_bad_entry() -> None:
    """A typo in the proxy list fails at once, naming the entry."""
    with pytest.raises(ValueError, match=re.escape("'10.0.0.0/33'")):
        parse_networks(["10.0.0.0/8", "10.0.0.0/33"])


def test_parse_networks_refuses_a_bare_string() -> None:
    """A string is not a list of CIDRs."""
    with pytest.raises(ValueError, match="list of CIDRs"):
        parse_networks("10.0.0.0/8")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.1", "192.0.2.1"),
        (" 192.0.2.1:80 ", "192.0.2.1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("", None),
        ("example.org", None),
    ],
)
def test_parse_address(text: str, expected: str | None) -> None:
    """Addresses with and without ports; names are not addresses."""
    address = parse_address(text)

    assert (None if address is None else str(address)) == expected
