"""URL routes of the example site."""

from django.urls import path

from . import views

urlpatterns = [path("mul", views.mul)]
