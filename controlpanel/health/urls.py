from django.urls import path

from controlpanel.health import views

urlpatterns = [
    # --- The web process itself ---
    path("health", views.web_health, name="health-web"),
    path("ready", views.web_ready, name="ready-web"),
    # --- Each service: ai, exec-risk, analytics ---
    path("services/<str:service>/health", views.service_health, name="health-service"),
    path("services/<str:service>/ready", views.service_ready, name="ready-service"),
    path("services/<str:service>/metrics", views.service_metrics, name="metrics-service"),
]
