"""shoal gateway: one Jobe REST API in front of many Jobe servers."""
