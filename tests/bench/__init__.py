"""The performance benchmark: ``python -m tests.bench`` (see ``--help`` and README "Performance").

It starts a private Prosody on loopback, runs addinbot and bare slixmpp baselines against
it, and writes ``RESULTS.md``, ``results.json`` and ``latency.png`` to a results folder.
Not a unit test: ``tests/integration/test_bench_quick.py`` only checks that ``--quick``
produces them.
"""
