# The application image: web, websocket, workers, beat, the feed and the one-shot init all run
# from it with different commands.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    QT_VAR_DIR=/var/lib/quantum-trader

RUN apt-get update \
    && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /app trader

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY --chown=trader:trader . .
# The feed replays and the first model trains on the recorded klines in the source tree
# (trading/marketdata/data/klines): the build fails if they did not come along.
RUN python -c "from trading.marketdata.klines import bundled_symbols as s; assert s(), 'no klines'" \
    && mkdir -p "$QT_VAR_DIR/static" && chown -R trader:trader "$QT_VAR_DIR"

USER trader
EXPOSE 8000 8001
ENV HOST=0.0.0.0 PORT=8000
CMD ["python", "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "controlpanel.wsgi:application"]
