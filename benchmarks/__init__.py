"""Benchmarks for issue 7: ``python -m benchmarks`` runs them all and prints a table."""
