"""Benchmarks and the deterministic synthetic inputs they (and some tests) run on."""
