"""How rthub is run: the local launcher here; Ray cluster, KubeRay and Serve configs beside it."""
