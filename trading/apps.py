from django.apps import AppConfig
from django.db.models.signals import post_migrate


class TradingConfig(AppConfig):
    name = "trading"
    verbose_name = "Trading"

    def ready(self) -> None:
        from trading.receivers import ensure_roles_after_migrate

        post_migrate.connect(ensure_roles_after_migrate, sender=self)

        from prometheus_client import REGISTRY

        from trading.selftest.metrics import SelfTestCollector

        if not any(isinstance(c, SelfTestCollector) for c in REGISTRY._collector_to_names):
            REGISTRY.register(SelfTestCollector())

        from trading.notifications.metrics import NotificationsCollector

        if not any(isinstance(c, NotificationsCollector) for c in REGISTRY._collector_to_names):
            REGISTRY.register(NotificationsCollector())

        # The system checks' catalogue, filled once for every reader (API, dashboard, runner).
        import trading.selftest.scenarios  # noqa: F401
