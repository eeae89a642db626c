"""Starts the platform on one machine: a local Redis when needed, then every process under
supervisord. ``make run`` calls ``python -m deploy.run``. Nothing here imports Django
settings at module level, so the test fixtures can use the Redis helpers before Django loads."""
