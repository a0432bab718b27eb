"""The incidents' URL patterns: the API and the console page (included by health/urls.py)."""

from django.urls import path

from . import incidents_api, incidents_page

urlpatterns = [
    path("api/incidents", incidents_api.incidents_list, name="health-incidents-list"),
    path("api/incidents/<int:id>/acknowledge", incidents_api.incident_acknowledge, name="health-incident-ack-api"),
    path("api/incidents/<int:id>/mute", incidents_api.incident_mute, name="health-incident-mute-api"),
    path("incidents", incidents_page.incidents_page, name="health-incidents"),
    path("incidents/<int:pk>/acknowledge", incidents_page.acknowledge_incident, name="health-incident-acknowledge"),
    path("incidents/<int:pk>/mute", incidents_page.mute_incident, name="health-incident-mute"),
]
