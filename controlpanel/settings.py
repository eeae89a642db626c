"""Settings for Quantum Trader, read from the environment (see README.md for every variable)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from controlpanel.env import (
    env_bool,
    env_choice,
    env_decimal,
    env_float,
    env_int,
    env_list,
    env_origins,
    env_str,
    env_symbols,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("QT_VAR_DIR", str(BASE_DIR / "var"))).resolve()

DEBUG = env_bool("DJANGO_DEBUG", False)
if DEBUG:
    SECRET_KEY = env_str("DJANGO_SECRET_KEY", "insecure-development-key-for-debug-mode-only")
else:
    SECRET_KEY = env_str("DJANGO_SECRET_KEY")
    if len(SECRET_KEY) < 32:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is too short: use at least 32 random characters"
        )
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "django_prometheus",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "django_celery_beat",
    "axes",
    "controlpanel.health",
    "controlpanel.dashboard",
    "trading",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    # Before anything reads the body: an API body over the limit is a 413 in JSON.
    "controlpanel.request_limits.BodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last but Prometheus': turns a refused login into the lockout answer.
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "controlpanel.urls"
ASGI_APPLICATION = "controlpanel.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_url(
    "DATABASE_URL",
    f"sqlite:///{VAR_DIR / 'db.sqlite3'}",
    ("sqlite", "postgres", "postgresql"),
)
_database = dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)
if _database["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes share the file: WAL lets readers run beside the writer, IMMEDIATE
    # transactions take the write lock up front instead of failing half-way with "locked".
    # Each process keeps its connection: opening one (and its PRAGMAs) costs more than a query.
    _database["CONN_MAX_AGE"] = None
    _database["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    _database["TEST"] = {"NAME": str(Path(_database["NAME"]).with_suffix(".test.sqlite3"))}
    # The embedded default lives in the project's var directory, made on first use.
    Path(_database["NAME"]).parent.mkdir(parents=True, exist_ok=True)
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: one URL, one key prefix, split into broker, results, channel layer and cache -------
REDIS_URL = env_url("REDIS_URL", "redis://127.0.0.1:6379/0", ("redis", "rediss", "unix"))
REDIS_PREFIX = env_str("QT_REDIS_PREFIX", "qt")

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": f"{REDIS_PREFIX}:cache",
    }
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": f"{REDIS_PREFIX}:asgi"},
    }
}

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_BROKER_TRANSPORT_OPTIONS = {"global_keyprefix": f"{REDIS_PREFIX}:celery:"}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"global_keyprefix": f"{REDIS_PREFIX}:celery:"}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_WORKER_SEND_TASK_EVENTS = False
# Celery's Django fixup closes the database connection around every task unless this is set;
# the workers keep theirs (CONN_MAX_AGE applies through a task_prerun receiver in
# trading/observability/worker.py), reopening only every this many tasks.
CELERY_DB_REUSE_MAX = 1000
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"

# --- Service observability ------------------------------------------------------------------
# A worker writes its heartbeat every interval; it counts as gone once the heartbeat is older
# than the expiry, which is also the Redis TTL of the heartbeat record.
HEARTBEAT_INTERVAL_SECONDS = env_float("QT_HEARTBEAT_INTERVAL", 2.0, minimum=0.1, maximum=60)
HEARTBEAT_EXPIRY_SECONDS = env_float("QT_HEARTBEAT_EXPIRY", 10.0, minimum=0.5, maximum=600)
if HEARTBEAT_EXPIRY_SECONDS <= HEARTBEAT_INTERVAL_SECONDS:
    raise ImproperlyConfigured(
        "QT_HEARTBEAT_EXPIRY must be longer than QT_HEARTBEAT_INTERVAL "
        f"(got {HEARTBEAT_EXPIRY_SECONDS} <= {HEARTBEAT_INTERVAL_SECONDS})"
    )
# A web worker computes each health and ready answer at most once per this many seconds and
# serves it again until then (0: every request computes it). Heartbeats come every
# QT_HEARTBEAT_INTERVAL seconds, so a short reuse loses nothing and keeps probes under load cheap.
HEALTH_CACHE_SECONDS = env_float("QT_HEALTH_CACHE_SECONDS", 1.0, minimum=0, maximum=60)
# Health and ready views never wait longer than this on Redis.
HEALTH_REDIS_TIMEOUT_SECONDS = env_float("QT_HEALTH_REDIS_TIMEOUT", 0.5, minimum=0.05, maximum=10)
# Unset: the metrics pages are open, like /health and /ready. Set: they want it as a bearer token.
METRICS_TOKEN = env_str("QT_METRICS_TOKEN", "")
if METRICS_TOKEN and len(METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("QT_METRICS_TOKEN is too short: use at least 16 random characters")
PROMETHEUS_EXPORT_MIGRATIONS = False

# --- Notifications (trading.notifications) ---------------------------------------------------
# After a channel's message, what comes within this many seconds goes out as one summary.
NOTIFY_WINDOW_SECONDS = env_float("QT_NOTIFY_WINDOW_SECONDS", 60.0, minimum=0, maximum=86400)
# Sent messages (the admin's deliveries, with what each held) are kept this many days.
NOTIFY_RETENTION_DAYS = env_int("QT_NOTIFY_RETENTION_DAYS", 30, minimum=1, maximum=3650)
# Alertmanager's webhook wants it as a bearer token; unset, the webhook refuses every call.
ALERTMANAGER_TOKEN = env_str("QT_ALERTMANAGER_TOKEN", "")
if ALERTMANAGER_TOKEN and len(ALERTMANAGER_TOKEN) < 16:
    raise ImproperlyConfigured("QT_ALERTMANAGER_TOKEN is too short: use at least 16 characters")
# The operators' bot (manage.py run_telegram_bot) runs only with a token.
TELEGRAM_BOT_TOKEN = env_str("QT_TELEGRAM_BOT_TOKEN", "")
TELEGRAM_API_URL = env_url("QT_TELEGRAM_API_URL", "https://api.telegram.org/bot", ("http", "https"))

# --- Trading --------------------------------------------------------------------------------
EXCHANGE = env_choice("QT_EXCHANGE", "paper", ("paper", "binance"))
SYMBOLS = env_symbols("QT_SYMBOLS", ["BTCUSDT", "ETHUSDT", "SOLUSDT"])
MARKET_DATA_SOURCE = env_choice("QT_MARKET_DATA", "replay", ("replay", "binance"))
REPLAY_BAR_SECONDS = env_float("QT_REPLAY_BAR_SECONDS", 1.0, minimum=0, maximum=3600)
REPLAY_AT_END = env_choice("QT_REPLAY_AT_END", "loop", ("loop", "stop"))
KLINE_INTERVAL = env_str("QT_KLINE_INTERVAL", "5m")
# Quotes are stale after three bar intervals of the feed: trading.marketdata.health.
EVENT_LOG_MAXLEN = env_int("QT_EVENT_LOG_MAXLEN", 100_000, minimum=100)
EVENT_MAX_DELIVERIES = env_int("QT_EVENT_MAX_DELIVERIES", 5, minimum=1, maximum=100)
STARTING_CASH = env_decimal("QT_STARTING_CASH", "100000", minimum="0")
# The kind of the operator's account when it is first made: spot, or USDⓈ-M perpetual futures.
ACCOUNT_KIND = env_choice("QT_ACCOUNT_KIND", "spot", ("spot", "futures"))
PAPER_MAKER_FEE_RATE = env_decimal("QT_PAPER_MAKER_FEE", "0.001", minimum="0", maximum="0.1")
PAPER_TAKER_FEE_RATE = env_decimal("QT_PAPER_TAKER_FEE", "0.001", minimum="0", maximum="0.1")
PAPER_SLIPPAGE_BPS = env_decimal("QT_PAPER_SLIPPAGE_BPS", "5", minimum="0", maximum="1000")
PAPER_MAX_VOLUME_SHARE = env_decimal(
    "QT_PAPER_MAX_VOLUME_SHARE", "0.1", minimum="0.0001", maximum="1"
)
# The ai service: how much history a (re)training reads, and what a signal asks to trade.
TRAIN_DAYS = env_float("QT_TRAIN_DAYS", 30.0, minimum=1, maximum=3650)
# Replay is simulated live time: the first QT_REPLAY_START_DAYS of the bundled history seed the
# bar store and train the first model, the replay plays the rest. The store keeps bars this many
# days behind the newest of their symbol.
REPLAY_START_DAYS = env_float("QT_REPLAY_START_DAYS", 20.0, minimum=1, maximum=29)
BAR_RETENTION_DAYS = env_float("QT_BAR_RETENTION_DAYS", 90.0, minimum=1, maximum=3650)
AI_ORDER_NOTIONAL = env_decimal("QT_AI_ORDER_NOTIONAL", "100", minimum="0.01")
# A new model version is a challenger, shadow-scored beside the champion until each symbol has
# this many judged signals of both and they span this many hours of bars (in replay, a bar a
# second: about two minutes); then the promotion test decides (trading/ai/promotion.py).
CHALLENGER_MIN_SCORED = env_int("QT_CHALLENGER_MIN_SCORED", 100, minimum=2)
CHALLENGER_HOURS = env_float("QT_CHALLENGER_HOURS", 8.0, minimum=0)
# analytics: the drift alarm, and the largest share of equity one position may hold before it
# is trimmed.
DRIFT_THRESHOLD = env_float("QT_DRIFT_THRESHOLD", 0.2, minimum=0.01)
REBALANCE_TARGET_WEIGHT = env_decimal(
    "QT_REBALANCE_TARGET_WEIGHT", "0.4", minimum="0.01", maximum="1"
)
# Supervision (analytics): what counts as a backlog, and as a stuck event-log message.
SUPERVISION_QUEUE_BACKLOG = env_int("QT_SUPERVISION_QUEUE_BACKLOG", 100, minimum=1)
SUPERVISION_STUCK_SECONDS = env_float("QT_SUPERVISION_STUCK_SECONDS", 60.0, minimum=1)
CELERY_WORKER_POOL_RESTARTS = True
# --- Web serving -----------------------------------------------------------------------------
# Plain HTTP (pages, admin, API, health, ready, metrics) is served on PORT by WSGI workers
# (gunicorn); the dashboard's websocket on WS_PORT by the ASGI server (uvicorn). A sync middleware
# stack under an ASGI server costs a thread hop per middleware, which the health views' load
# cannot afford (docs/benchmarks.md).
_web_host = env_str("HOST", "127.0.0.1")
WEB_PORT = env_int("PORT", 8000, minimum=1, maximum=65535)
WS_PORT = env_int("WS_PORT", WEB_PORT + 1 if WEB_PORT < 65535 else 8001, minimum=1, maximum=65535)
if WS_PORT == WEB_PORT:
    raise ImproperlyConfigured(f"WS_PORT must differ from PORT (both are {WEB_PORT})")
# Where browsers open the dashboard's websocket. Unset: the page's host on WS_PORT. A path
# ("/ws/dashboard/"): the page's own origin, for a reverse proxy that sends /ws/ to the ASGI
# server. A ws:// or wss:// URL: used as it is.
DASHBOARD_SOCKET_URL = env_str("QT_DASHBOARD_SOCKET_URL", "")
if DASHBOARD_SOCKET_URL and not DASHBOARD_SOCKET_URL.startswith(("/", "ws://", "wss://")):
    raise ImproperlyConfigured(
        f"QT_DASHBOARD_SOCKET_URL={DASHBOARD_SOCKET_URL!r} is not valid: "
        "expected a path such as /ws/dashboard/ or a ws:// or wss:// URL"
    )
# The pages that may open the dashboard's websocket, by origin (scheme, host and port): the Origin
# header is the page's, wherever the socket is. Unset: each allowed host on PORT over http, and
# the CSRF trusted origins. Behind a reverse proxy the page's origin is the proxy's
# (https://trader.example.com): list it here or in DJANGO_CSRF_TRUSTED_ORIGINS.
DASHBOARD_ORIGINS = env_origins(
    "QT_DASHBOARD_ORIGINS",
    [f"http://{host}:{WEB_PORT}" for host in ALLOWED_HOSTS if host != "*"] + CSRF_TRUSTED_ORIGINS,
)
# System checks reach the platform's web server here.
SELFTEST_BASE_URL = env_url(
    "QT_SELFTEST_BASE_URL",
    f"http://{'127.0.0.1' if _web_host in ('0.0.0.0', '::') else _web_host}:{WEB_PORT}",  # noqa: S104
    ("http", "https"),
)
# RPC between services: a call gives up after this long and is retried this many times.
RPC_TIMEOUT_SECONDS = env_float("QT_RPC_TIMEOUT", 0.5, minimum=0.01, maximum=60)
RPC_RETRIES = env_int("QT_RPC_RETRIES", 2, minimum=0, maximum=10)

# --- Auth and API ---------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out login before the password is even checked.
    "controlpanel.auth.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Login throttling (django-axes), for the login page and the admin's alike: after this many
# failures from one address for one username, that pair is refused, even with the right password,
# until the cool-off has passed. Attempts are kept in the database (visible in the admin).
AXES_FAILURE_LIMIT = env_int("QT_LOGIN_FAILURE_LIMIT", 5, minimum=1, maximum=1000)
AXES_COOLOFF_TIME = timedelta(
    minutes=env_float("QT_LOGIN_COOLOFF_MINUTES", 15.0, minimum=0.1, maximum=7 * 24 * 60)
)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False  # no banner from every process; lockouts are still logged as warnings
# Failures are logged with the username and address (axes would mask them); never the password.
AXES_SENSITIVE_PARAMETERS: list[str] = []
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["trading.api.permissions.OperatorsWrite"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Exact numbers, bounded nesting; Django's refusals of a request answered in JSON too.
    "DEFAULT_PARSER_CLASSES": [
        "trading.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "trading.api.exceptions.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Quantum Trader API",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema is for callers of the API, who log in anyway.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Signals, orders and fills share one BUY/SELL enum.
    "ENUM_NAME_OVERRIDES": {"SideEnum": "trading.models.Side"},
}

# --- Internationalisation and static files --------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- Logging --------------------------------------------------------------------------------
LOG_LEVEL = env_str("QT_LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Production hardening ---------------------------------------------------------------------
# The defaults suit plain http on 127.0.0.1 (make run); a deployment behind TLS turns them on.
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
# Probes and scrapers (docker healthchecks, Prometheus) speak plain http inside the deployment.
SECURE_REDIRECT_EXEMPT = [r"^(health|ready|metrics)$", r"^services/[^/]+/(health|ready|metrics)$"]
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
# Behind a proxy that terminates TLS and sets X-Forwarded-Proto (and strips it from clients).
if env_bool("DJANGO_SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
