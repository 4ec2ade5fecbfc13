"""Address rules: the client's real address behind trusted proxies, CIDR allow and deny
lists (IPv4 and IPv6), and countries from a MaxMind-format database."""

import pytest

from rthub import config
from rthub.errors import ConfigError
from serve.security.network import AddressRefused, NetworkPolicy
from tests.serve.geo import country_db


def policy(**env: str) -> NetworkPolicy:
    return NetworkPolicy.from_settings(config.load(env))


def test_x_forwarded_for_counts_only_from_trusted_proxies():
    rules = policy(RTHUB_TRUSTED_PROXIES="10.0.0.0/8, fd00::/8")
    # from a trusted proxy: the rightmost address that is not a proxy is the client
    assert rules.client_ip("10.1.2.3", "198.51.100.7, 10.9.9.9") == "198.51.100.7"
    assert rules.client_ip("fd00::1", "2001:db8:f::5") == "2001:db8:f::5"
    # a client cannot push an address in front of the real one: it reads right to left
    assert rules.client_ip("10.1.2.3", "1.2.3.4, 203.0.113.9, 10.0.0.2") == "203.0.113.9"
    # from anyone else the header is the client's own word: ignored
    assert rules.client_ip("203.0.113.9", "198.51.100.7") == "203.0.113.9"
    # garbage in the chain: judge the proxy itself rather than guess
    assert rules.client_ip("10.1.2.3", "198.51.100.7, not-an-ip") == "10.1.2.3"
    # with no trusted proxies configured the header never counts
    assert policy().client_ip("10.1.2.3", "198.51.100.7") == "10.1.2.3"


def test_deny_wins_then_allow_decides_for_ipv4_and_ipv6():
    rules = policy(RTHUB_IP_ALLOW="198.51.100.0/24, 2001:db8::/32",
                   RTHUB_IP_DENY="198.51.100.66, 2001:db8:bad::/48")
    rules.check("198.51.100.7")
    rules.check("2001:db8:1::1")
    rules.check("::ffff:198.51.100.7")  # an IPv4-mapped address is its IPv4 address
    with pytest.raises(AddressRefused, match=r"198\.51\.100\.66 are refused \(RTHUB_IP_DENY\)"):
        rules.check("198.51.100.66")
    with pytest.raises(AddressRefused, match="refused"):
        rules.check("2001:db8:bad::9")
    with pytest.raises(AddressRefused, match=r"203\.0\.113\.1 is not in RTHUB_IP_ALLOW"):
        rules.check("203.0.113.1")
    with pytest.raises(AddressRefused, match="unknown address"):
        rules.check("")


def test_no_rules_let_everyone_in_without_parsing_anything():
    rules = policy()
    assert not rules.active
    rules.check("not even an address")


def test_countries_come_from_the_database_and_unplaced_addresses_follow_the_allow_list(
        tmp_path):
    db = country_db(tmp_path)
    deny = policy(RTHUB_GEOIP_DB=db, RTHUB_GEO_DENY="kp")
    assert deny.country("198.51.100.7") == "FR"
    deny.check("198.51.100.7")
    deny.check("192.0.2.1")  # not in the database: a deny list does not refuse it
    with pytest.raises(AddressRefused, match="connections from KP are refused"):
        deny.check("203.0.113.5")
    with pytest.raises(AddressRefused, match="connections from KP are refused"):
        deny.check("2001:db8:b::77")
    allow = policy(RTHUB_GEOIP_DB=db, RTHUB_GEO_ALLOW="FR")
    allow.check("2001:db8:f::1")
    with pytest.raises(AddressRefused, match="KP are not allowed"):
        allow.check("203.0.113.5")
    with pytest.raises(AddressRefused, match="an address the database does not place"):
        allow.check("192.0.2.1")


@pytest.mark.parametrize(("env", "message"), [
    ({"RTHUB_IP_DENY": "10.0.0.0/33"}, "RTHUB_IP_DENY must be comma separated addresses or "
                                       "CIDRs, got '10.0.0.0/33'"),
    ({"RTHUB_TRUSTED_PROXIES": "proxy.local"}, "RTHUB_TRUSTED_PROXIES must be"),
    ({"RTHUB_GEO_DENY": "FRA"}, "RTHUB_GEO_DENY must be ISO country codes"),
    ({"RTHUB_GEO_ALLOW": "FR"}, "RTHUB_GEO_ALLOW / RTHUB_GEO_DENY need RTHUB_GEOIP_DB"),
    ({"RTHUB_RATE_LIMITS": "room:*=1/1"}, "RTHUB_RATE_LIMITS must be comma separated"),
    ({"RTHUB_RATE_LIMITS": "user:*=0/5"}, "RTHUB_RATE_LIMITS must be"),
    ({"RTHUB_RATE_LIMITS": "user:chat.send=5"}, "RTHUB_RATE_LIMITS must be"),
])
def test_wrong_security_settings_stop_start_up_naming_the_variable(env, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config.load(env)


def test_a_file_that_is_not_a_maxmind_database_stops_start_up(tmp_path):
    fake = tmp_path / "countries.mmdb"
    fake.write_bytes(b"not a database" * 100)
    with pytest.raises(ConfigError, match="RTHUB_GEOIP_DB cannot be read as a MaxMind"):
        config.load({"RTHUB_GEOIP_DB": str(fake)})


def test_rate_limit_rules_parse_into_scopes_and_the_default_is_on():
    rules = config.load({"RTHUB_RATE_LIMITS": "user:*=5/10, ip:connect=0.5/2"}).rate_limits
    assert rules == (("user", "*", 5.0, 10.0), ("ip", "connect", 0.5, 2.0))
    assert config.load({}).rate_limits  # limits are on unless configured off
    assert config.load({"RTHUB_RATE_LIMITS": ""}).rate_limits == ()
