"""The WSGI entry point, for a pre-forking server:

    cd examples/django_app && gunicorn --preload -w 3 --threads 8 rpcsite.wsgi

`--preload` imports the site (and makes settings.RPC, which has not connected yet) once, in
gunicorn's master; each worker it forks connects on its first call, and serves its threads'
calls over that one connection.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rpcsite.settings")

application = get_wsgi_application()
