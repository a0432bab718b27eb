from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

handler404 = "project.views.not_found"

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("", include("providers.urls")),
    path("", include("providers.keys_urls")),
    path("", include("analytics.urls")),
    path("", include("health.urls")),
]
