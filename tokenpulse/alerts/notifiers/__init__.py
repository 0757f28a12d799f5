"""One notifier per receiver kind, each behind ``delivery.Notifier``."""
