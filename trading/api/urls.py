from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from trading.api import backtests, views
from trading.api.bars import BarsView
from trading.api.models import ModelsView, PromoteView, RollbackView
from trading.notifications.views import AlertmanagerWebhookView

urlpatterns = [
    # --- Services ---
    path("services", views.ServicesView.as_view(), name="api-services"),
    # --- Signals, orders, positions, portfolio ---
    path("signals", views.SignalsView.as_view(), name="api-signals"),
    path("signals/<uuid:signal_id>", views.SignalDetailView.as_view(), name="api-signal"),
    path("orders", views.OrdersView.as_view(), name="api-orders"),
    path("positions", views.PositionsView.as_view(), name="api-positions"),
    path("portfolio", views.PortfolioView.as_view(), name="api-portfolio"),
    # --- Market data ---
    path("bars", BarsView.as_view(), name="api-bars"),
    # --- Models ---
    path("models", ModelsView.as_view(), name="api-models"),
    path("models/<str:version>/promote", PromoteView.as_view(), name="api-model-promote"),
    path("models/<str:version>/rollback", RollbackView.as_view(), name="api-model-rollback"),
    # --- Event log ---
    path("events", views.EventsView.as_view(), name="api-events"),
    # --- Risk ---
    path("risk", views.RiskView.as_view(), name="api-risk"),
    path("risk/halt", views.HaltView.as_view(), name="api-risk-halt"),
    path("risk/resume", views.ResumeView.as_view(), name="api-risk-resume"),
    # --- Alerts ---
    path(
        "alerts/alertmanager",
        AlertmanagerWebhookView.as_view(),
        name="api-alerts-alertmanager",
    ),
    # --- System checks ---
    path("selftest/runs", views.SelfTestRunsView.as_view(), name="api-selftest-runs"),
    path("selftest/runs/<int:run_id>", views.SelfTestRunView.as_view(), name="api-selftest-run"),
    # --- Backtests ---
    path("backtests", backtests.BacktestsView.as_view(), name="api-backtests"),
    path("backtests/<int:run_id>", backtests.BacktestView.as_view(), name="api-backtest"),
    path(
        "backtests/<int:run_id>/trades.csv",
        backtests.BacktestTradesView.as_view(),
        name="api-backtest-trades",
    ),
    # --- Schema ---
    path("schema", SpectacularAPIView.as_view(), name="api-schema"),
]
