from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from trading.api import views

urlpatterns = [
    # --- Services ---
    path("services", views.ServicesView.as_view(), name="api-services"),
    # --- Schema ---
    path("schema", SpectacularAPIView.as_view(), name="api-schema"),
]
