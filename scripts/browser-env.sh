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

venv="$PWD/.venv-browser"
req="tests/browser/requirements.txt"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$req" "$venv/requirements.installed"; then
    echo "== installing Playwright for Python into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
    cp "$req" "$venv/requirements.installed"
fi
