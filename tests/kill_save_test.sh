#!/usr/bin/env bash
# kill_save_test.sh LUNET - kill -9 during checkpoint saves (issue 10, item 5).
#
# A child lunet process saves an 8 MB checkpoint in a loop; it is killed with SIGKILL at
# several points of a save.  After every kill the checkpoint must load (the old or a new
# one, complete), and after the next save no temporary file of it may remain.  Run twice:
# with O_TMPFILE (the default on Linux: a kill leaves no temporary at all) and with the named
# temporary fallback (LUNET_NO_TMPFILE=1: a kill leaves one, the next save removes it).
set -u
LUNET=${1:?usage: kill_save_test.sh path/to/lunet}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail=0

cat > "$dir/saver.lua" <<'LUA'
local lunet = require "lunet"
lunet.manual_seed(0)
local t = lunet.randn(2 * 1024 * 1024)
local step = 0
while true do
  step = step + 1
  lunet.save({ step = step, t = t }, arg[1])
  if arg[2] == "once" then break end
end
LUA
cat > "$dir/check.lua" <<'LUA'
local lunet = require "lunet"
lunet.manual_seed(0)
local want = lunet.randn(2 * 1024 * 1024)
local ck = lunet.load(arg[1])
assert(ck.step >= 1, "bad step")
assert(lunet.equal(ck.t, want), "tensor differs")
print("step " .. ck.step)
LUA

temps() { ls "$dir" | grep -c '^ck\.lnt\.tmp\.' ; }

for mode in tmpfile named; do
  if [ $mode = named ]; then export LUNET_NO_TMPFILE=1; else unset LUNET_NO_TMPFILE; fi
  rm -f "$dir"/ck.lnt*
  "$LUNET" "$dir/saver.lua" "$dir/ck.lnt" once || { echo "FAIL: first save"; exit 1; }
  left=0
  for delay in 0.03 0.07 0.12 0.18 0.25; do
    "$LUNET" "$dir/saver.lua" "$dir/ck.lnt" &
    pid=$!
    sleep $delay
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    if ! out=$("$LUNET" "$dir/check.lua" "$dir/ck.lnt" 2>&1); then
      echo "FAIL ($mode): checkpoint unreadable after kill -9 at ${delay}s: $out"; fail=1
    fi
    left=$((left + $(temps)))
    if [ $mode = tmpfile ] && [ "$(temps)" -ne 0 ]; then
      # mkstemp's suffix has letters: the filesystem refused O_TMPFILE and the writer fell
      # back to a named temporary, which only the next save removes (checked below)
      if ls "$dir" | grep -q '^ck\.lnt\.tmp\..*\.[0-9]*[A-Za-z][A-Za-z0-9]*$'; then
        [ -z "${noted:-}" ] && echo "kill_save_test: no O_TMPFILE here, named temporaries used"
        noted=1
      else
        echo "FAIL ($mode): kill -9 at ${delay}s left $(ls "$dir" | grep '^ck\.lnt\.tmp\.')"; fail=1
      fi
    fi
  done
  "$LUNET" "$dir/saver.lua" "$dir/ck.lnt" once || { echo "FAIL ($mode): save after kills"; fail=1; }
  if [ "$(temps)" -ne 0 ]; then
    echo "FAIL ($mode): temporaries left after the next save: $(ls "$dir")"; fail=1
  fi
  echo "kill_save_test ($mode): 5 kills, temporaries seen after kills: $left, after the next save: $(temps)"
done
[ $fail = 0 ] && echo "kill_save_test: ok"
exit $fail
