# Sourced by the scripts that compare this workspace's build with another one given as their only
# argument (`run-pairs.sh`, `run-http-pairs.sh`).

# Checks that the script's arguments (after `$1`, what the other build's binary is, for the usage
# line) are one executable, sets `other` to its absolute path, and moves to the workspace root.
other_build() {
  local what=$1
  shift
  if [ $# -ne 1 ] || [ ! -x "$1" ]; then
    echo "usage: $0 <another build's $what>" >&2
    exit 2
  fi
  # Resolved before leaving the caller's directory.
  other=$(realpath "$1")
  cd "$(dirname "$0")/.."
}
