"""Benchmarks that prove the tracker's speed and size targets.

``python -m bench`` runs every benchmark, each in a fresh interpreter, prints a
table with PASS or FAIL per target and rewrites the figures in BENCHMARKS.md.
``python -m bench.soak --minutes 30`` is the long soak test, run by hand.

Every benchmark creates its own database on the server named by
``MBASIC_TRACKING_BENCH_DATABASE_URL`` (default: the test server's URL, else
``mysql://root@127.0.0.1:3306/test``), migrates it, and drops it afterwards.
"""
