# The app image: built with the same bootstrap commands as `make run` (every Python package
# pinned by requirements.lock, the npm packages by package-lock.json), run as a non-root
# user. One container serves one `mapserver run` process; scale with more replicas.
# The same image runs the worker (`mapserver worker`).

FROM python:3.12-slim-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 mapserver
WORKDIR /app
COPY --chown=mapserver:mapserver . /app
USER mapserver
RUN scripts/bootstrap.sh venv && scripts/bootstrap.sh npm \
    && rm -rf frontend/node_modules/.cache /home/mapserver/.cache /home/mapserver/.npm

FROM python:3.12-slim-bookworm
RUN useradd --create-home --uid 10001 mapserver
WORKDIR /app
COPY --from=build --chown=mapserver:mapserver /app /app
USER mapserver
RUN mkdir -p var/photos
ENV PATH="/app/.venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    MAPSERVER_HOST=0.0.0.0 \
    MAPSERVER_PORT=8000
EXPOSE 8000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"
CMD ["mapserver", "run"]
