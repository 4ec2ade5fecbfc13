"""Certificates the tests make for themselves (``cryptography``): nothing is downloaded."""

from __future__ import annotations

from cryptography import x509

from cluster.devcert import self_signed

__all__ = ["self_signed", "serial_of"]


def serial_of(der: bytes) -> int:
    return x509.load_der_x509_certificate(der).serial_number
