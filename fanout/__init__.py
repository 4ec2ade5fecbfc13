"""Redis fan-out: topic streams with bounded history (publish side, in actor hosts) and the
per-replica subscriber that fans events out to local sockets (gateway side), on one Redis or
a Redis Cluster (``fanout.connect`` tells which; ``fanout.sharded`` on a cluster)."""
