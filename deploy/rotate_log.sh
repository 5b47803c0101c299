#!/bin/sh
# Usage: rotate_log.sh PATH KEEP
# Move the last run's log aside before a new run truncates it: PATH -> PATH.1 -> ... -> PATH.KEEP
# (the oldest dropped), the same names device/log.py's --log-max-mb rotation uses. Nothing to do
# when PATH is missing or empty. The systemd unit runs it before every start (ExecStartPre).
set -eu
path=$1 keep=$2
[ -s "$path" ] || exit 0
if [ "$keep" -eq 0 ]; then
  rm -f "$path"
  exit 0
fi
k=$keep
while [ "$k" -gt 1 ]; do
  [ -e "$path.$((k - 1))" ] && mv -f "$path.$((k - 1))" "$path.$k"
  k=$((k - 1))
done
mv -f "$path" "$path.1"
