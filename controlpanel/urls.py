from django.contrib import admin
from django.urls import include, path

from controlpanel.dashboard import views as dashboard

urlpatterns = [
    # --- Health, readiness and metrics (no login) ---
    path("", include("controlpanel.health.urls")),
    path("", include("django_prometheus.urls")),
    # --- Operators ---
    path("", dashboard.index, name="cp-dashboard"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    # --- JSON API ---
    path("api/v1/", include("trading.api.urls")),
]
