"""Benchmarks: `python -m bench NAME [options]`, each printing one JSON document."""
