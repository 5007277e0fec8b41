"""WSGI entry point for `flask` and gunicorn: app = create_app()."""
from portal import create_app

app = create_app()
