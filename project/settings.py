"""Settings for the AI gateway: one module, every value from the environment.

Every setting that an operator may change is read with django-environ and has a safe default;
a setting and its environment variable share one name. README.md lists them all.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import environ

from project.channel_layers import redis_channel_layer

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A real environment variable wins over .env (django-environ's read_env does not override).
if (BASE_DIR / ".env").exists():
    env.read_env(BASE_DIR / ".env")

INSECURE_DEV_SECRET_KEY = "insecure-dev-key-run-make-run-to-generate-a-real-one"

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default=INSECURE_DEV_SECRET_KEY)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Fernet keys for secrets at rest, newest first. Several keys allow rotation:
# encrypt with the first, decrypt with any, `manage.py rotate_secrets` re-encrypts.
ENCRYPTION_KEYS = env.list("ENCRYPTION_KEYS", default=[])

REDIS_URL = env.str("REDIS_URL", default="")
PORT = env.int("PORT", default=8000)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "csp",
    "axes",
    "django_htmx",
    "template_partials",
    "providers",
    "health",
    "analytics",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    # Inside django-csp: API answers get JSON errors and their own, stricter policy.
    "project.views.api_answers",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its lockout answer.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # refuses logins while a lockout lasts
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "project.urls"
ASGI_APPLICATION = "project.asgi.application"

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

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the one writer; IMMEDIATE takes the write lock at BEGIN so
    # two writers queue on busy_timeout instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": ("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000;"),
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
    # Tests use a file, not shared-cache memory: there WAL and busy_timeout apply as in
    # production, where memory's table locks fail at once ("database table is locked")
    # when a background writer and a test write together. One file per test process.
    DATABASES["default"]["TEST"] = {"NAME": str(Path(tempfile.gettempdir()) / f"gateway-test-{os.getpid()}.sqlite3")}
# Background work (config reloads, analytics batches, probes' results) runs in a few
# executor threads; keeping their connections open spares a reconnect per batch.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=300)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CHANNEL_LAYERS: dict[str, dict[str, Any]]
if REDIS_URL:
    CHANNEL_LAYERS = {"default": redis_channel_layer(REDIS_URL)}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
# The zone the console writes timestamps in (an IANA name such as Europe/Berlin); empty: each
# browser's own (the page is written in UTC and console.js rewrites it).
CONSOLE_TIME_ZONE = env.str("CONSOLE_TIME_ZONE", default="")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / ".staticfiles"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# Behind HTTPS (a reverse proxy that sets X-Forwarded-Proto and X-Forwarded-For) cookies are
# marked Secure, HSTS is sent and login throttling keys on the forwarded client address.
BEHIND_HTTPS_PROXY = env.bool("BEHIND_HTTPS_PROXY", default=False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_HTTPS_PROXY else None
SESSION_COOKIE_SECURE = BEHIND_HTTPS_PROXY
CSRF_COOKIE_SECURE = BEHIND_HTTPS_PROXY
SECURE_HSTS_SECONDS = 31536000 if BEHIND_HTTPS_PROXY else 0
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy: scripts only from our own static files (no inline script, no
# eval, no CDN); the console's websocket is same-origin. Inline styles stay allowed for the
# Django admin's templates.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# Login throttling (django-axes): after LOGIN_FAILURE_LIMIT failed logins for one username from
# one address, that pair is locked out for LOGIN_LOCKOUT_MINUTES.
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("LOGIN_LOCKOUT_MINUTES", default=15.0) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
AXES_CLIENT_IP_CALLABLE = "project.client_ip.client_ip"  # X-Forwarded-For only behind the proxy

DEFAULT_EXCEPTION_REPORTER_FILTER = "project.redaction.SecretSafeExceptionReporterFilter"

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"redact": {"()": "project.redaction.RedactSecretsFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's own defaults add handlers without the redaction filter (a console one when
        # DEBUG is on): none here, so every line reaches the root's, which has it.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.db.backends": {"level": "WARNING"},
        # httpx logs every request at INFO: far too much for a gateway's hot path.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}

# Demo configuration loaded by `make run` on an empty database unless NO_DEMO=1.
NO_DEMO = env.bool("NO_DEMO", default=False)

# SSRF guard for provider and alert URLs: hosts or networks (CIDR) refused or let through
# beyond the built-in rule (http/https only; link-local and cloud metadata refused).
PROVIDER_URL_DENY = env.list("PROVIDER_URL_DENY", default=[])
PROVIDER_URL_ALLOW = env.list("PROVIDER_URL_ALLOW", default=[])
# URLs a caller or an upstream hands the gateway to fetch (an `image_url` for an Ollama target,
# a Replicate output) are refused on loopback, private, link-local and metadata addresses;
# these hosts, domains or networks (CIDR) are let through.
FETCH_URL_ALLOW = env.list("FETCH_URL_ALLOW", default=[])

# The ASGI server `manage.py serve` (and so `make run`) uses: uvicorn (measured faster,
# docs/performance.md) or daphne.
ASGI_SERVER = env.str("ASGI_SERVER", default="uvicorn")
# Run the monitor inside the server process (the single-process default). With REDIS_URL
# the monitor is meant to run as its own `manage.py monitor` process.
MONITOR_EMBEDDED = env.bool("MONITOR_EMBEDDED", default=not REDIS_URL)
EMBEDDED_TASKS: list[str] = []

# The gateway.
GATEWAY_HTTP_TRANSPORT = env.str("GATEWAY_HTTP_TRANSPORT", default="aiohttp")  # aiohttp | httpx
GATEWAY_MAX_BODY_BYTES = env.int("GATEWAY_MAX_BODY_BYTES", default=26 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = GATEWAY_MAX_BODY_BYTES
# No provider answer is read past this (room for several base64 images or minutes of audio):
# beyond it the attempt fails (response_too_large) and the chain falls back.
GATEWAY_MAX_RESPONSE_BYTES = env.int("GATEWAY_MAX_RESPONSE_BYTES", default=64 * 1024 * 1024)
# How often each process checks whether the configuration changed (seconds).
CONFIG_POLL_INTERVAL_S = env.float("CONFIG_POLL_INTERVAL_S", default=1.0)
# Share breaker, cooldown and budget state through Redis when REDIS_URL is set.
SHARED_STATE = env.bool("SHARED_STATE", default=True)
# Each shared-state operation on Redis waits at most this long, then the local breaker decides
# (resilience.md §8: 50 ms; a Redis that is slower than that is treated as away).
REDIS_OP_TIMEOUT_S = env.float("REDIS_OP_TIMEOUT_S", default=0.05)
# API keys' limits while Redis is away: "open" (each worker enforces on its own counts) or
# "closed" (a limited key's requests get 503 until Redis answers); providers/keys.py says why.
KEY_LIMITS_WHEN_REDIS_DOWN = env.str("KEY_LIMITS_WHEN_REDIS_DOWN", default="open")
KEY_SPEND_FLUSH_INTERVAL_S = env.float("KEY_SPEND_FLUSH_INTERVAL_S", default=1.0)
# The event stream (GET /api/events/stream): a keep-alive comment this often; failed requests
# become one `request.failed` event per route and window (and one more for the rest of it),
# and only the newest EVENTS_REQUEST_FAILED_KEEP are kept.
# Flap damping: a provider's status change is taken once it held for this many consecutive
# evaluations and (when > 0) this many seconds; facts (forced open, every key refused) at once.
HEALTH_FLAP_CHECKS = env.int("HEALTH_FLAP_CHECKS", default=2)
HEALTH_FLAP_SECONDS = env.float("HEALTH_FLAP_SECONDS", default=0.0)
# Response cache (providers/gateway/serving.py): the largest answer kept; the in-process store's size.
RESPONSE_CACHE_MAX_BYTES = env.int("RESPONSE_CACHE_MAX_BYTES", default=1024 * 1024)
RESPONSE_CACHE_MAX_ENTRIES = env.int("RESPONSE_CACHE_MAX_ENTRIES", default=10_000)
EVENTS_KEEPALIVE_S = env.float("EVENTS_KEEPALIVE_S", default=15.0)
EVENTS_REQUEST_FAILED_WINDOW_S = env.float("EVENTS_REQUEST_FAILED_WINDOW_S", default=1.0)
EVENTS_REQUEST_FAILED_KEEP = env.int("EVENTS_REQUEST_FAILED_KEEP", default=10000)

# Analytics: request records are written in batches off the hot path.
ANALYTICS_FLUSH_INTERVAL_S = env.float("ANALYTICS_FLUSH_INTERVAL_S", default=1.0)
ANALYTICS_BATCH_SIZE = env.int("ANALYTICS_BATCH_SIZE", default=500)
ANALYTICS_MAX_QUEUE = env.int("ANALYTICS_MAX_QUEUE", default=200_000)
# A write refused with a connection-class error this many times in a row while the database
# answers is treated as a bad record: isolated, degraded and counted (quarantined).
ANALYTICS_WRITE_ATTEMPTS = env.int("ANALYTICS_WRITE_ATTEMPTS", default=5)
# Records that could not be written even in degraded form, kept in memory (and named at shutdown).
ANALYTICS_QUARANTINE_MAX = env.int("ANALYTICS_QUARANTINE_MAX", default=1000)

# The monitor.
MONITOR_TICK_S = env.float("MONITOR_TICK_S", default=1.0)
MONITOR_CONCURRENCY = env.int("MONITOR_CONCURRENCY", default=64)
MONITOR_LEASE_S = env.float("MONITOR_LEASE_S", default=10.0)
MONITOR_HOUSEKEEPING_S = env.float("MONITOR_HOUSEKEEPING_S", default=300.0)
PROBE_RETENTION_DAYS = env.int("PROBE_RETENTION_DAYS", default=7)
# At most this many analytics rows deleted per housekeeping pass of the monitor.
MONITOR_RETENTION_ROWS = env.int("MONITOR_RETENTION_ROWS", default=200_000)
CATALOG_REFRESH_S = env.float("CATALOG_REFRESH_S", default=6 * 3600.0)
# Weights of the health score's parts: probe, latency, reliability (they sum to 100).
HEALTH_SCORE_WEIGHTS = [float(w) for w in env.list("HEALTH_SCORE_WEIGHTS", default=["40", "30", "30"])]
if MONITOR_EMBEDDED:
    EMBEDDED_TASKS = ["health.monitor.run_embedded"]

# Analytics: what is recorded, how long it is kept, who may read /metrics.
# ANALYTICS_ENABLED=false records nothing (the gateway benchmark measures logging's cost with it).
ANALYTICS_ENABLED = env.bool("ANALYTICS_ENABLED", default=True)
# Retention of raw request rows and of minute and hour rollups; day rollups are kept unless
# ANALYTICS_DAY_RETENTION_DAYS is set (0 keeps them forever, and /metrics counters need them).
ANALYTICS_RAW_RETENTION_DAYS = env.float("ANALYTICS_RAW_RETENTION_DAYS", default=7)
ANALYTICS_MINUTE_RETENTION_HOURS = env.float("ANALYTICS_MINUTE_RETENTION_HOURS", default=48)
ANALYTICS_HOUR_RETENTION_DAYS = env.float("ANALYTICS_HOUR_RETENTION_DAYS", default=90)
ANALYTICS_DAY_RETENTION_DAYS = env.float("ANALYTICS_DAY_RETENTION_DAYS", default=0)
# Request and response bodies (scrubbed of credentials) are kept this many days, for the request
# page and GET /api/requests/<id> (admin keys); 0, the default, keeps none and forgets those kept.
REQUEST_BODY_RETENTION_DAYS = env.float("REQUEST_BODY_RETENTION_DAYS", default=0)
# The most of each body kept; the rest is cut, and a marker says how many bytes went.
REQUEST_BODY_MAX_BYTES = env.int("REQUEST_BODY_MAX_BYTES", default=65536)
# Rows deleted per statement when pruning, so a big delete never holds a long lock.
ANALYTICS_PRUNE_CHUNK = env.int("ANALYTICS_PRUNE_CHUNK", default=5000)
# The currency model prices (and so costs and key budgets) are written in: a label, never converted.
PRICE_CURRENCY = env.str("PRICE_CURRENCY", default="USD")
# Serve /metrics without an API key (for a scraper on a private network).
METRICS_PUBLIC = env.bool("METRICS_PUBLIC", default=False)

# Alerts (health/alerts.py): deliveries run beside the monitor, never inside its tick.
# A channel is disabled after this many permanent delivery errors in a row (HTTP 4xx other
# than 408/429, a redirect, an invalid address, an SMTP 5xx); transient ones never disable it.
ALERT_DISABLE_AFTER = env.int("ALERT_DISABLE_AFTER", default=5)
ALERT_TIMEOUT_S = env.float("ALERT_TIMEOUT_S", default=5.0)  # per delivery attempt
ALERT_RETRIES = env.int("ALERT_RETRIES", default=2)  # more attempts after a transient error
ALERT_RETRY_BASE_S = env.float("ALERT_RETRY_BASE_S", default=1.0)  # backoff: base × 2^(n-1), jittered
ALERT_CONCURRENCY = env.int("ALERT_CONCURRENCY", default=8)  # deliveries in flight at once
# Providers that go bad (or recover) in the same evaluation share one alert per channel,
# which lists them all; False sends one alert per provider.
ALERT_GROUPING = env.bool("ALERT_GROUPING", default=True)
# Where links in alerts point (the console's address as people reach it).
CONSOLE_URL = env.str("CONSOLE_URL", default=f"http://127.0.0.1:{PORT}")
# Email alerts go through Django's mail backend, e.g. smtp+tls://user:password@host:587;
# the default prints them to the console. EMAIL_URL is read here and not kept as a setting,
# so its password shows nowhere but in EMAIL_HOST_PASSWORD (which the debug page hides).
vars().update(
    {k: v for k, v in env.email_url("EMAIL_URL", default="consolemail://").items() if v is not None and k != "OPTIONS"}
)
EMAIL_TIMEOUT = ALERT_TIMEOUT_S
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="gateway@localhost")

# Local discovery: where `manage.py discover` and the console look for AI servers.
DISCOVERY_HOSTS = env.list("DISCOVERY_HOSTS", default=["127.0.0.1"])
DISCOVERY_OLLAMA_PORTS = [int(p) for p in env.list("DISCOVERY_OLLAMA_PORTS", default=["11434"])]
DISCOVERY_SDWEBUI_PORTS = [int(p) for p in env.list("DISCOVERY_SDWEBUI_PORTS", default=["7860"])]
DISCOVERY_OPENAI_PORTS = [int(p) for p in env.list("DISCOVERY_OPENAI_PORTS", default=["8080", "8000", "1234"])]
