"""rthub core: configuration, the error tree and the command line, shared by every layer."""
