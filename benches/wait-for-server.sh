# Sourced by the scripts that start the bench server (`run-http.sh`, `run-http-pairs.sh`).

# Waits up to 5 s for a server to accept connections on `$1` (host:port); stops the script when
# none does.
wait_for_server() {
  for _ in $(seq 50); do
    (echo >"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return
    sleep 0.1
  done
  echo "no server answered on $1" >&2
  exit 1
}
