"""shoal.tree: the tree engine."""
