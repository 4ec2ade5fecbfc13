"""A small MaxMind-format country database for tests, written with ``mmdb-writer`` (nothing
is downloaded): the same format and reader as GeoLite2-Country."""

from __future__ import annotations

from pathlib import Path

from mmdb_writer import MMDBWriter
from netaddr import IPSet

COUNTRIES = {  # network -> ISO code (documentation and benchmark ranges)
    "198.51.100.0/24": "FR",
    "203.0.113.0/24": "KP",
    "2001:db8:f::/48": "FR",
    "2001:db8:b::/48": "KP",
}


def country_db(folder: Path, countries: dict[str, str] = COUNTRIES) -> str:
    """Write the database into ``folder``; its path."""
    writer = MMDBWriter(ip_version=6, database_type="GeoLite2-Country", ipv4_compatible=True)
    for network, code in countries.items():
        writer.insert_network(IPSet([network]), {"country": {"iso_code": code}})
    path = folder / "countries.mmdb"
    writer.to_db_file(str(path))
    return str(path)
