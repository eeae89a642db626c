"""Telling operators: the platform's events and Alertmanager's alerts, through apprise, to the
channels configured in the admin, rate-limited and grouped per channel; and the operators' bot."""
