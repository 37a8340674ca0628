"""shoal.deploy: local clusters, netns hosts and agent launch."""
