"""Load runs: HTTP through the example app on uvicorn (``http``) and key churn on the
in-memory backend (``churn``). Documented commands, not timed tests; ``test_load_smoke.py``
runs each for a moment so that they cannot rot."""
