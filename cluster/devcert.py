"""A self-signed certificate for local TLS (tests, benchmarks, trying `wss://` on a laptop).

Nothing is downloaded: ``cryptography`` makes the key and the certificate. Never for
production: clients must be told to trust it.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed(folder: Path, name: str = "hub", host: str = "localhost") -> tuple[str, str, int]:
    """A certificate for ``host`` and 127.0.0.1 and its key, written to ``folder`` as
    ``<name>.pem`` / ``<name>.key`` (each replaced in one step); returns the paths and the
    certificate's serial number. Each has a subject of its own, so a client can trust two
    at once (a verifier finds the issuer by name)."""
    key = ec.generate_private_key(ec.SECP256R1())
    serial = x509.random_serial_number()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host),  # one name per cert:
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"test {serial}")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(serial)
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName(host), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    for path, data in ((key_path, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())), (cert_path, cert.public_bytes(
                serialization.Encoding.PEM))):
        staged = path.with_suffix(path.suffix + ".new")
        staged.write_bytes(data)
        os.replace(staged, path)
    return str(cert_path), str(key_path), cert.serial_number
