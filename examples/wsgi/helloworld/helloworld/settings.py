"""Settings of the article's minimal `helloworld` Django project: one view, no database."""

# Not a secret: this demo project signs nothing. A real project reads it from its environment.
SECRET_KEY = 'helloworld-demo-key-not-for-production'
DEBUG = False
ALLOWED_HOSTS = ['localhost', '127.0.0.1', '[::1]']

INSTALLED_APPS = []
MIDDLEWARE = ['django.middleware.common.CommonMiddleware']
ROOT_URLCONF = 'helloworld.urls'
WSGI_APPLICATION = 'helloworld.wsgi.application'
DATABASES = {}
USE_TZ = True
