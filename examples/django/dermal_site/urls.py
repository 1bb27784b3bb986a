"""The site is the lesions app: /, /api/predict, /health, /memory-status."""
from django.urls import include, path

urlpatterns = [path("", include("lesions.urls"))]
