#!/usr/bin/env bash
# Prepares a machine for `make run` / `make test`: system packages (as root on
# Debian/Ubuntu, otherwise the exact command to run), a Python >= 3.12 venv with
# pinned packages, and the front end's npm packages. Idempotent and quiet when
# there is nothing to do.
#
#   scripts/bootstrap.sh python        print the Python >= 3.12 interpreter to use
#   scripts/bootstrap.sh system run    PostgreSQL + PostGIS + pgRouting + GDAL
#   scripts/bootstrap.sh system test   ...and Debian's chromium for browser tests
#   scripts/bootstrap.sh venv [test]   .venv with the package (and test extras)
#   scripts/bootstrap.sh compile       the project's own modules byte-compiled
#   scripts/bootstrap.sh npm           frontend/node_modules from package-lock.json
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

say() { printf '%s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

find_python() {
    local candidate root
    for candidate in python3.13 python3.12 python3; do
        if command -v "$candidate" >/dev/null 2>&1 && python_ok "$(command -v "$candidate")"; then
            command -v "$candidate"; return 0
        fi
    done
    root=${PYENV_ROOT:-}
    if [ -z "$root" ] && command -v pyenv >/dev/null 2>&1; then root=$(pyenv root); fi
    [ -n "$root" ] || root="$HOME/.pyenv"
    for candidate in $(ls -d "$root"/versions/3.1[2-9]* 2>/dev/null | sort -rV); do
        for exe in "$candidate"/bin/python3.1[2-9]; do
            if [ -x "$exe" ] && python_ok "$exe"; then echo "$exe"; return 0; fi
        done
    done
    return 1
}

# True when the interpreter is >= 3.12 and can build a venv.
python_ok() {
    "$1" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1
}

pg_version() {
    # The PostgreSQL major version already installed, else the one apt would install.
    local v
    v=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -1)
    if [ -z "$v" ] && command -v apt-cache >/dev/null 2>&1; then
        v=$(apt-cache policy postgresql 2>/dev/null | awk '/Candidate:/ {print $2}' | sed -E 's/\+.*//; s/^([0-9]+).*/\1/')
    fi
    echo "${v:-15}"
}

missing_system_packages() {
    local purpose=$1 v
    v=$(pg_version)
    local missing=()
    [ -x "/usr/lib/postgresql/$v/bin/initdb" ] || command -v initdb >/dev/null 2>&1 || missing+=("postgresql-$v")
    [ -f "/usr/share/postgresql/$v/extension/postgis.control" ] || missing+=("postgresql-$v-postgis-3")
    [ -f "/usr/share/postgresql/$v/extension/pgrouting.control" ] || missing+=("postgresql-$v-pgrouting")
    command -v ogr2ogr >/dev/null 2>&1 || missing+=("gdal-bin")
    if [ "$purpose" = test ]; then
        [ -x /usr/bin/chromium ] || missing+=("chromium")
        # The nginx config check and the cluster test; a real Redis for the rate limits.
        command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=("nginx-light")
        command -v redis-server >/dev/null 2>&1 || missing+=("redis-server")
        command -v openssl >/dev/null 2>&1 || missing+=("openssl")
    fi
    echo "${missing[@]:-}"
}

system() {
    local purpose=${1:-run} missing
    missing=$(missing_system_packages "$purpose")
    [ -n "$missing" ] || return 0
    if [ -n "${DATABASE_URL:-}" ] && [ "$purpose" = run ]; then
        # An external database needs no local PostgreSQL server, only GDAL for loaders.
        missing=$(echo "$missing" | tr ' ' '\n' | grep -v '^postgresql' | tr '\n' ' ' | xargs || true)
        [ -n "$missing" ] || return 0
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "Installing system packages: $missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $missing >/dev/null \
            || die "apt-get could not install: $missing"
    else
        die "missing system packages. Install them, then run make again:
    sudo apt-get install $missing"
    fi
}

# An editable install leaves the project's own modules uncompiled (pip compiles what it
# installs), and PYTHONDONTWRITEBYTECODE (set on some machines) keeps Python from writing
# them: compiled at every make, so commands such as `mapserver load` start sooner. When
# they are up to date this only compares times.
compile_packages() {
    .venv/bin/python -m compileall -q mapserver layers loaders reports analysis >/dev/null
}

venv() {
    local extras=${1:-} python stamp spec
    stamp=.venv/.installed${extras:+-$extras}
    if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt requirements.lock ]; then
        compile_packages
        return 0
    fi
    if [ ! -x .venv/bin/python ] || ! python_ok .venv/bin/python; then
        python=$(find_python) || die "Python 3.12 or newer was not found (looked on PATH and under pyenv).
Install it, then run make again, for example:
    pyenv install 3.12      # or: sudo apt-get install python3.12 python3.12-venv"
        say "Creating .venv with $python"
        rm -rf .venv
        "$python" -m venv .venv
    fi
    spec="."
    [ -z "$extras" ] || spec=".[$extras]"
    say "Installing Python packages into .venv (pinned by requirements.lock)"
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q --disable-pip-version-check \
        -c requirements.lock -e "$spec" \
        || die "pip could not install the project's packages (see the messages above)."
    compile_packages
    if [ "$extras" = test ]; then
        # ogctests (the OGC API - Features Core checks of tests/clients) caps httpx < 0.28,
        # pytest < 9 and pyarrow < 18 in its packaging, not in its code: it runs on this
        # project's newer pins, so it is installed without its declared dependencies (the
        # ones it imports are pinned in pyproject.toml).
        .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps \
            "ogctests==0.1.15" \
            || die "pip could not install ogctests (see the messages above)."
    fi
    touch "$stamp"
}

npm_packages() {
    local stamp=frontend/node_modules/.installed
    if [ -f "$stamp" ] && [ "$stamp" -nt frontend/package-lock.json ]; then
        return 0
    fi
    command -v npm >/dev/null 2>&1 || die "npm was not found. Install Node.js 18 or newer:
    sudo apt-get install nodejs npm"
    say "Installing front-end packages (npm ci)"
    (cd frontend && npm ci --no-audit --no-fund --loglevel=error >/dev/null) \
        || die "npm ci failed in frontend/ (see the messages above)."
    touch "$stamp"
}

case "${1:-}" in
    python) find_python || die "Python 3.12 or newer was not found (looked on PATH and under pyenv).
Install it, for example: pyenv install 3.12   (or: sudo apt-get install python3.12 python3.12-venv)" ;;
    system) system "${2:-run}" ;;
    venv) venv "${2:-}" ;;
    npm) npm_packages ;;
    compile) compile_packages ;;
    *) die "usage: $0 python|system [run|test]|venv [test]|npm|compile" ;;
esac
