"""The Python client SDK: sans-I/O helpers a client application drives with its own socket."""
