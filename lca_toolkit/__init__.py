"""lca_toolkit."""
