# The app image: the same bootstrap commands as `make run`, as a non-root user.
FROM python:3.12-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends gdal-bin nodejs npm \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 mapserver

WORKDIR /app
COPY --chown=mapserver:mapserver . /app
USER mapserver
RUN scripts/bootstrap.sh venv && scripts/bootstrap.sh npm && mkdir -p var

ENV PATH="/app/.venv/bin:$PATH" \
    MAPSERVER_HOST=0.0.0.0 \
    MAPSERVER_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"
CMD ["mapserver", "run"]
