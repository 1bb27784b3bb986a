from django.urls import path

from . import views

urlpatterns = [
    path("", views.index, name="index"),
    path("api/predict", views.api_predict, name="api_predict"),
    path("health", views.health, name="health"),
    path("memory-status", views.memory_status, name="memory_status"),
]
