"""Reconciliation with the providers' own usage and cost reports: ``reports`` reads them, ``compare``
sets them beside the stored calls, ``command`` is `tokenpulse reconcile` and the daily import in `serve`."""
