"""Command-line entry points: ``lca-run`` (training) and ``lca-plot`` (figures and tables)."""
