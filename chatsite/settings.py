"""Django settings, every knob read from the environment with safe defaults."""

from __future__ import annotations

from pathlib import Path

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from chatsite.env import (
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
    secret_from_file,
)
from chatsite.layers import redis_layer

# Lets generic classes such as ModelAdmin[Model] be subscripted at run time (typing).
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "data")))

SECRET_KEY = env_str("SECRET_KEY") or secret_from_file(DATA_DIR / "secret_key")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "conversations",
]

MIDDLEWARE = [
    "chatsite.connections.CloseConnectionsAfterRequest",
    "django.middleware.security.SecurityMiddleware",
    "chatsite.security.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "chatsite.urls"
ASGI_APPLICATION = "chatsite.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

_database_url = env_str("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'db.sqlite3'}"
# Kept open on the websocket thread (see chatsite/connections.py); PostgreSQL has its pool.
_conn_max_age = 600 if _database_url.startswith("sqlite") else 0
DATABASES = {
    "default": dj_database_url.parse(
        _database_url, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", _conn_max_age, minimum=0)
    )
}
POOL_SIZE = env_int("DATABASE_POOL_SIZE", 20, minimum=0)
# PostgreSQL: the submission path's plain SQL (conversations/sql.py) as prepared statements.
DATABASE_PREPARED_STATEMENTS = env_bool("DATABASE_PREPARED_STATEMENTS", True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    # Django turns preparing off on its connections (`None`). The ORM's cursors bind
    # parameters into the text and never prepare whatever this says; only sql.py's ask to.
    _options["prepare_threshold"] = 0 if DATABASE_PREPARED_STATEMENTS else None
    if POOL_SIZE:
        # Under ASGI every request and every consumer event closes its connection again
        # (persistent connections would leak with the per-request threads); a pool makes
        # that close a return instead of a new PostgreSQL backend per trip.
        if DATABASES["default"]["CONN_MAX_AGE"]:
            raise ImproperlyConfigured("Set DATABASE_POOL_SIZE=0 to use DATABASE_CONN_MAX_AGE.")
        _options["pool"] = {"min_size": 0, "max_size": POOL_SIZE, "timeout": 10}
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets page renders read while a generation checkpoints; the timeout rides out
    # the short write locks taken by concurrent runners.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {"default": redis_layer(REDIS_URL)}
else:
    # In-process queues drop what is past `capacity`; frames are coalesced into one every few
    # tens of milliseconds per answer, so a generous capacity covers a slow socket.
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "chatsite.layers.LocalChannelLayer", "CONFIG": {"capacity": 1000}}
    }

# The cache holds login throttling counters: shared through Redis across workers.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "teamchat",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_USER_MODEL = "conversations.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(DATA_DIR / "media")))
MEDIA_URL = "/media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # No manifest: a stale collectstatic can never break a page; WhiteNoise still serves
    # the compressed copies that `make run` collects.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Secure cookies and HSTS whenever the site is served over HTTPS in production.
SECURE_HTTPS = env_bool("SECURE_HTTPS", False)
SESSION_COOKIE_SECURE = SECURE_HTTPS
CSRF_COOKIE_SECURE = SECURE_HTTPS
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True  # pages carry the token themselves; no script reads the cookie
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_SSL_REDIRECT = SECURE_HTTPS and env_bool("SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if SECURE_HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HTTPS
SECURE_HSTS_PRELOAD = SECURE_HTTPS
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# chatsite/security.py adds Content-Security-Policy, Permissions-Policy and CORP.
if env_bool("BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Failed sign-ins per username and per client address within the window; past the
# limit, further attempts are refused (HTTP 429) until the window ends.
LOGIN_FAILURES_LIMIT = env_int("LOGIN_FAILURES_LIMIT", 5, minimum=1)
LOGIN_FAILURES_WINDOW = env_int("LOGIN_FAILURES_WINDOW", 15 * 60, minimum=1)

# Provider API keys are encrypted at rest with these Fernet keys: the first encrypts,
# every one decrypts (add a new key in front to rotate, then run `providers rekey`).
ENCRYPTION_KEYS = env_list("ENCRYPTION_KEYS", [])

# Streaming behaviour.
# 20 frames a second per answer: smooth to read, and each frame costs the worker a render and
# every viewing browser a DOM update (at 30 ms a streamed answer cost Chromium 60 % more script).
STREAM_FRAME_INTERVAL = env_float("STREAM_FRAME_INTERVAL", 0.05, minimum=0.0)
STREAM_CHECKPOINT_INTERVAL = env_float("STREAM_CHECKPOINT_INTERVAL", 2.0, minimum=0.05)
MAX_MESSAGE_CHARS = env_int("MAX_MESSAGE_CHARS", 100_000, minimum=1)

# The offline demo upstream is served by this app under /demo-upstream/.
DEMO_UPSTREAM_ENABLED = env_bool("DEMO_UPSTREAM", True)
DEMO_TOKEN_DELAY = env_float("DEMO_TOKEN_DELAY", 0.03, minimum=0.0)

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        # httpx logs every upstream request at INFO: a line per answer (and per title) that
        # says only that it was sent, written on the first token's way. Failures are logged
        # by the app itself; LOG_LEVEL=DEBUG brings httpx's lines back, with httpcore's.
        **{
            name: {"level": "DEBUG" if LOG_LEVEL == "DEBUG" else "WARNING"}
            for name in ("httpx", "httpcore")
        },
    },
}

# A running generation renews its lease every checkpoint; one whose lease has run out
# (its worker died) is marked interrupted by the sweeper.
GENERATION_LEASE_SECONDS = env_int("GENERATION_LEASE_SECONDS", 15, minimum=3)

# Image attachments: refused above these limits before decoding, downscaled so the longest
# side is IMAGE_MAX_SIDE before storing and sending upstream, shown as small thumbnails.
IMAGE_MAX_BYTES = env_int("IMAGE_MAX_BYTES", 10 * 1024 * 1024, minimum=1)
IMAGE_MAX_PIXELS = env_int("IMAGE_MAX_PIXELS", 40_000_000, minimum=1)
IMAGE_MAX_SIDE = env_int("IMAGE_MAX_SIDE", 2048, minimum=16)
IMAGE_THUMB_SIDE = env_int("IMAGE_THUMB_SIDE", 320, minimum=16)
MAX_ATTACHMENTS_PER_MESSAGE = env_int("MAX_ATTACHMENTS_PER_MESSAGE", 4, minimum=1)
# Images picked but never sent are deleted after this many hours (checked hourly).
UNSENT_UPLOAD_HOURS = env_int("UNSENT_UPLOAD_HOURS", 24, minimum=1)

# Ask the conversation's model for a title after the first answer (billed like any call).
AUTO_TITLES = env_bool("AUTO_TITLES", True)

# Answers a person may ask for per minute (a message, an edit, a regenerate; a user's own
# requests_per_minute wins); counted from saved answers, so it holds across workers.
# 0 means unlimited.
RATE_LIMIT_PER_MINUTE = env_int("RATE_LIMIT_PER_MINUTE", 20, minimum=0)
# Written before money amounts (budgets and refusals). Prices and costs are numbers in
# whatever currency the admin entered the prices in; this only names it.
CURRENCY_SYMBOL = env_str("CURRENCY_SYMBOL", "$")
