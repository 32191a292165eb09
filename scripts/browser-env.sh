# Sourced by the browser tests (scripts/browser.sh, scripts/sign-in.sh): installs Debian's
# chromium when missing and Playwright for Python (exact versions in
# tests/browser/requirements.txt) into .venv-browser; never downloads a browser of its own.
# Sets $chromium and $venv.
chromium=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
    echo "== installing chromium (Debian package)"
    sudo_=""
    [ "$(id -u)" -eq 0 ] || sudo_=sudo
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq chromium >/dev/null
fi

. scripts/venv.sh .venv-browser tests/browser/requirements.txt

# axe-core (npm, exact version in tests/browser/package-lock.json), which the console test runs
# in every page.
if ! cmp -s tests/browser/package-lock.json tests/browser/node_modules/.installed-lock 2>/dev/null; then
    if ! command -v npm >/dev/null; then
        echo "== installing Node.js and npm (Debian packages)"
        sudo_=""
        [ "$(id -u)" -eq 0 ] || sudo_=sudo
        $sudo_ apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq nodejs npm >/dev/null
    fi
    echo "== installing axe-core (npm ci)"
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error &&
        cp package-lock.json node_modules/.installed-lock)
fi
