"""Site-wide answers: the health check and the error pages (never a traceback)."""

from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe


@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return HttpResponse("database unavailable\n", status=503, content_type="text/plain")
    return HttpResponse("ok\n", content_type="text/plain")


def rate_limited(request: HttpRequest, exception: Exception) -> HttpResponse:
    return render(request, "newsletter/error.html", {"error": "rate_limited"}, status=429)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    return render(request, "newsletter/error.html", {"error": "csrf"}, status=403)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    return render(request, "newsletter/error.html", {"error": "bad_request"}, status=400)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    return render(request, "newsletter/error.html", {"error": "forbidden"}, status=403)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    return render(request, "newsletter/error.html", {"error": "not_found"}, status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    return render(request, "newsletter/error.html", {"error": "server_error"}, status=500)
