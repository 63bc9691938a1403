# Sourced by the installers (install-chromium.sh, install-lavapipe.sh, install-redis.sh): apt with its own
# sources.list, package lists, cache and download folder under $APT_DIR (nothing system-wide changes), resolving
# against the real dpkg status so that only what this system lacks is fetched. Uses the caller's `say`.
#   apt_local_install DIR PKG_SPEC [EXTRA_SUITE]
#                                      the whole fetch into a fresh DIR: init, resolve, download, then every
#                                      package of $PKGS unpacked (`dpkg -x`) into DIR/root in apt's install order;
#                                      the .debs stay in DIR/debs (apt_local_deb) until apt_local_finish
#   apt_local_deb NAME                 the downloaded .deb of package NAME
#   apt_local_finish                   removes the downloads, then writes the stamp DIR/installed ($PKGS), last
#   apt_local_init DIR [EXTRA_SUITE]   lists in DIR/apt; bookworm main, updates, security (+ EXTRA_SUITE)
#   apt_local ARGS...                  apt-get with those options
#   apt_local_resolve PKG_SPEC         sets PKGS: "name=version" lines `apt-get install PKG_SPEC` would install
#                                      or upgrade here, in apt's install order (dependencies first)
#   apt_local_download                 downloads $PKGS into DIR/debs

apt_local_init() {
  APT_DIR=$1
  mkdir -p "$APT_DIR/apt/lists/partial" "$APT_DIR/apt/cache/archives/partial" "$APT_DIR/debs" "$APT_DIR/root"
  {
    echo "deb http://deb.debian.org/debian bookworm main"
    echo "deb http://deb.debian.org/debian bookworm-updates main"
    echo "deb http://deb.debian.org/debian-security bookworm-security main"
    [ -z "${2:-}" ] || echo "deb http://deb.debian.org/debian $2 main"
  } >"$APT_DIR/apt/sources.list"
  say "apt-get update (project-local lists in $APT_DIR/apt)"
  apt_local update >"$APT_DIR/apt/update.log" 2>&1 || { cat "$APT_DIR/apt/update.log"; say "apt-get update failed"; exit 1; }
}

# Sandbox user root: as root, apt would otherwise try to drop to _apt, who cannot write into this checkout.
apt_local() {
  apt-get -o "Dir::Etc::SourceList=$APT_DIR/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null \
    -o "Dir::State::Lists=$APT_DIR/apt/lists" -o "Dir::Cache=$APT_DIR/apt/cache" \
    -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null \
    -o APT::Sandbox::User=root -o Debug::NoLocking=1 -q "$@"
}

apt_local_resolve() {
  # "Inst pkg [old] (new suite [arch])" lines
  apt_local -s --no-install-recommends install "$1" >"$APT_DIR/apt/simulate.log" 2>&1 ||
    { cat "$APT_DIR/apt/simulate.log"; say "cannot resolve $1"; exit 1; }
  PKGS=$(awk '/^Inst /{ v=$3; if (v ~ /^\[/) v=$4; gsub(/[()]/, "", v); print $2 "=" v }' "$APT_DIR/apt/simulate.log")
  [ -n "$PKGS" ] || { cat "$APT_DIR/apt/simulate.log"; say "nothing to download?"; exit 1; }
}

apt_local_download() {
  say "downloading $(echo $PKGS | wc -w) packages: $(echo $PKGS | tr '\n' ' ')"
  # shellcheck disable=SC2086
  (cd "$APT_DIR/debs" && apt_local download $PKGS >"$APT_DIR/apt/download.log" 2>&1) ||
    { cat "$APT_DIR/apt/download.log"; say "apt-get download failed"; exit 1; }
}

apt_local_deb() {
  ls "$APT_DIR/debs/${1%%:*}"_*.deb
}

apt_local_install() {
  rm -rf "$1"
  apt_local_init "$1" "${3:-}"
  apt_local_resolve "$2"
  apt_local_download
  for _apt_p in $PKGS; do
    _apt_deb=$(apt_local_deb "${_apt_p%%=*}") || { say "no downloaded .deb for ${_apt_p%%=*}"; exit 1; }
    dpkg -x "$_apt_deb" "$APT_DIR/root"
  done
}

apt_local_finish() {
  rm -rf "$APT_DIR/debs" "$APT_DIR/apt/cache"
  echo "$PKGS" >"$APT_DIR/installed"
}
