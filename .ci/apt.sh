# .ci/apt.sh — sourced (not run) by the scripts that install Debian packages for CI: one way to
# refresh the package lists and to install a pinned version, shared by conformance/run,
# browser/run and bench/run.
#
# Why a helper: `apt-get update` exits 0 when one of the archives failed to download (a network
# hiccup leaves, e.g., bookworm-security out of the lists), and with -qq it says nothing; a pinned
# version that only the security archive carries (chromium, openssl) then looks "no longer
# offered" and the run fails for a transient reason. And Debian's security archive keeps only the
# newest build of a package, so a pin goes stale the day a security update ships: then the
# current build is installed with a loud warning instead of failing CI.

# Refreshes the package lists, retrying when any index failed to download (--error-on=any,
# apt ≥ 2.1). Prints apt's own messages only when every try failed.
apt_refresh() {
  local try log
  log="$(mktemp)"
  for try in 1 2 3; do
    if apt-get update -qq --error-on=any >"$log" 2>&1; then
      rm -f "$log"
      return 0
    fi
    printf 'apt: package lists incomplete (try %s of 3), retrying in %s s\n' "$try" $((try * 5)) >&2
    sleep $((try * 5))
  done
  cat "$log" >&2
  rm -f "$log"
  printf 'apt: warning: the package lists could not be fully refreshed; going on with what is there\n' >&2
}

# apt_install_pinned PACKAGE VERSION: installs PACKAGE=VERSION, or — when the archive no longer
# offers that build — the archive's current PACKAGE, saying so. Needs root.
apt_install_pinned() {
  local package="$1" version="$2"
  if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "$package=$version" >/dev/null; then
    return 0
  fi
  printf 'apt: warning: %s %s is not offered by the archive (a newer build replaced it); installing the current %s (%s)\n' \
    "$package" "$version" "$package" \
    "$(apt-cache policy "$package" | awk '/Candidate:/ {print $2}')" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package" >/dev/null
}
