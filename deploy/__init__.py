"""A real multi-instance deployment of lsmigrate for tests and benchmarks (see cluster.py and docs/deployment.md)."""
