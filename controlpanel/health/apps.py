from django.apps import AppConfig


class HealthConfig(AppConfig):
    name = "controlpanel.health"
    label = "health"
