"""The fleet controller: node registry, lifecycle watchdog, replacement, cron jobs, metrics."""
