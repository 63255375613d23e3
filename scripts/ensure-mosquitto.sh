#!/usr/bin/env bash
# The IoT tests use a real MQTT broker: the Mosquitto at 127.0.0.1:1883 (the machine's, or one we
# start here) and private ones they start themselves from the mosquitto binary. Install Debian's
# mosquitto when it is missing and start a local broker on 1883 when nothing listens there.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(command -v mosquitto || true)"
[ -n "$bin" ] || { [ -x /usr/sbin/mosquitto ] && bin=/usr/sbin/mosquitto; }
if [ -z "$bin" ]; then
  echo "mosquitto not found; installing Debian's mosquitto package…" >&2
  if [ "$(id -u)" -eq 0 ]; then sudo=""
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"
  else echo "error: installing mosquitto needs root (apt-get install mosquitto)" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends mosquitto >/dev/null
  bin=/usr/sbin/mosquitto
fi
listening() { (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; }
if ! listening; then
  mkdir -p var
  conf="$PWD/var/mosquitto-1883.conf"
  printf 'listener 1883 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n' > "$conf"
  echo "nothing listens on 127.0.0.1:1883; starting mosquitto ($conf)" >&2
  "$bin" -d -c "$conf"
  for _ in $(seq 1 50); do listening && break; sleep 0.1; done
  listening || { echo "error: mosquitto did not start on 1883" >&2; exit 1; }
fi
