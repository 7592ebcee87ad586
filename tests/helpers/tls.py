"""Certificates for TLS tests, made with the openssl command line.

``make_ca`` makes a self-signed certificate authority; ``make_server_cert``
signs a server certificate with it for the names given as subjectAltName
entries (``IP:127.0.0.1``, ``DNS:localhost``), which is what a client checking
hostnames compares against. Keys are EC P-256: quick to make, accepted by
MariaDB's OpenSSL and by Python's ssl module.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.mariadb import TlsFiles

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


@dataclass(frozen=True)
class Authority:
    """A CA's certificate and key."""

    cert: Path
    key: Path


def _openssl(*arguments: str | Path) -> None:
    result = subprocess.run(
        [OPENSSL, *map(str, arguments)], capture_output=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"openssl {arguments[0]} failed: {result.stderr.decode(errors='replace')}"
        )


def make_ca(folder: Path, name: str) -> Authority:
    """A self-signed CA valid for a day, in ``folder/name-ca.{pem,key}``."""
    folder.mkdir(parents=True, exist_ok=True)
    key = folder / f"{name}-ca.key"
    cert = folder / f"{name}-ca.pem"
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key)
    _openssl(
        "req", "-x509", "-new", "-key", key, "-out", cert, "-days", "1",
        "-subj", f"/CN={name} test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return Authority(cert, key)


def make_server_cert(
    folder: Path, authority: Authority, names: str, stem: str = "server"
) -> TlsFiles:
    """A server certificate signed by ``authority`` for ``names`` (a
    subjectAltName value such as ``IP:127.0.0.1,DNS:localhost``)."""
    key = folder / f"{stem}.key"
    request = folder / f"{stem}.csr"
    cert = folder / f"{stem}.pem"
    extensions = folder / f"{stem}.ext"
    extensions.write_text(
        f"subjectAltName={names}\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
    )

    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key)
    _openssl("req", "-new", "-key", key, "-out", request, "-subj", "/CN=mariadb")
    _openssl(
        "x509", "-req", "-in", request, "-CA", authority.cert, "-CAkey", authority.key,
        "-CAcreateserial", "-out", cert, "-days", "1", "-extfile", extensions,
    )  # fmt: skip
    return TlsFiles(ca=authority.cert, cert=cert, key=key)
