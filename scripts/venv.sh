# Sourced by the scripts that run a Python tool from PyPI: makes (or reuses) the virtualenv
# $PWD/$1 holding exactly the packages of the requirements file $2, and sets $venv to it. A
# changed requirements file makes it again.
venv="$PWD/$1"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$2" "$venv/requirements.installed"; then
    echo "== installing $2 into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$2"
    cp "$2" "$venv/requirements.installed"
fi
