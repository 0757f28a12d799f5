"""Alert notifiers (see the alerts issue)."""
