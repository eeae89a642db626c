from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "controlpanel.dashboard"
    label = "dashboard"
