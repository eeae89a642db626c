from django.contrib import admin
from django.contrib.auth import views as auth
from django.urls import include, path

from controlpanel.dashboard import views as dashboard
from controlpanel.health import views as health

urlpatterns = [
    # --- Health, readiness and metrics (no login; metrics may want QT_METRICS_TOKEN) ---
    path("", include("controlpanel.health.urls")),
    path("metrics", health.web_metrics, name="prometheus-django-metrics"),
    # --- Operators ---
    path("", dashboard.index, name="cp-dashboard"),
    path("backtests/", dashboard.backtests, name="cp-backtests"),
    # Django's auth views without the password reset ones: nothing but the login page answers
    # anonymous callers, and accounts are managed in the admin.
    path("accounts/login/", auth.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth.LogoutView.as_view(), name="logout"),
    path(
        "accounts/password_change/",
        auth.PasswordChangeView.as_view(),
        name="password_change",
    ),
    path(
        "accounts/password_change/done/",
        auth.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("admin/", admin.site.urls),
    # --- JSON API ---
    path("api/v1/", include("trading.api.urls")),
]
