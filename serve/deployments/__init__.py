"""Ray Serve deployments other than the gateway: the recommendation models."""
