"""Postgres durability: the embedded server, migrations, the entity log and checkpoints."""
