"""What the gateway checks before it trusts a client: addresses, rates, tokens, and the audit
of what it refused."""
