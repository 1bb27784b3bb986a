from django.apps import AppConfig


class LesionsConfig(AppConfig):
    # The model is not loaded in ready(): ready() also runs for `manage.py check` and `test` and in
    # runserver's file-watching parent process. With PRELOAD_MODEL, dermal_site/wsgi.py loads it.
    name = "lesions"
    verbose_name = "Skin-lesion classifier"
