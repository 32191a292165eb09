# Sourced by the benchmark scripts that drive HTTP load: installs wrk (Debian's package) when
# it is missing.
if ! command -v wrk >/dev/null; then
    echo "== installing wrk (Debian package)"
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq && apt-get install -y -qq wrk >/dev/null
    else
        sudo apt-get update -qq && sudo apt-get install -y -qq wrk >/dev/null
    fi
fi
