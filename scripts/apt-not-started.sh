# Sourced by the scripts that install a Debian package whose server they run themselves
# (scripts/apache.sh, bench/slapd.sh): apt_install_not_started PKG... installs the packages
# with a policy-rc.d in place, so the packages start no server of their own, and takes it away
# again (also when the installation fails) unless the machine had one already. Needs root.
apt_install_not_started() {
    local had_policy=0 status=0
    [ -e /usr/sbin/policy-rc.d ] && had_policy=1
    if [ "$had_policy" -eq 0 ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null || status=$?
    [ "$had_policy" -eq 0 ] && rm -f /usr/sbin/policy-rc.d
    return "$status"
}
