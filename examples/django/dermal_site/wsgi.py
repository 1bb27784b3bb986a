"""WSGI entry point (runserver, PythonAnywhere, gunicorn, uWSGI): `dermal_site.wsgi.application`.

With PRELOAD_MODEL the model is loaded here, when the server imports the application, rather
than in AppConfig.ready(): ready() also runs for `manage.py check`, `test` and runserver's
file-watching parent process, none of which serves a request.
"""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dermal_site.settings")
application = get_wsgi_application()

from django.conf import settings  # noqa: E402  (after Django is set up)

from lesions import engine  # noqa: E402

if settings.PRELOAD_MODEL:
    engine.preload()
