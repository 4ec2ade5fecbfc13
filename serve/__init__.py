"""Ray Serve applications: the WebSocket + HTTP ingress and the recommendation deployments.

Import Ray's Serve as ``from ray import serve as rayserve`` in this package so the two never
shadow each other. The gateway lands with issue 3.
"""
