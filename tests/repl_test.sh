#!/usr/bin/env bash
# repl_test.sh - drives the `lunet` prompt in a real terminal (tmux): sends keys, reads the
# screen.  Checks: an expression's value appears; a multi-line `for` loop runs; a Lua error
# and a shape error each leave the prompt alive; a trailing `;` silences a value; tables
# print readably; Ctrl-C interrupts `while true do end` and discards a half-typed line;
# completion completes a tensor method, a module field and a module method; history
# survives a restart; `lunet -i script` stays at the prompt after the script; Ctrl-D exits.
# usage: tests/repl_test.sh [path/to/lunet]   (prints SKIP and exits 0 without tmux)
set -u
BIN=${1:-${LUNET_BUILD:-build}/lunet}
if ! command -v tmux >/dev/null 2>&1; then
  echo "SKIP: tmux is not installed (Debian package tmux)"
  exit 0
fi
if [ ! -x "$BIN" ]; then
  echo "FAIL: $BIN not built"
  exit 1
fi
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")

SOCK="lunet-test-$$"
TMP=$(mktemp -d)
export LUNET_HISTORY="$TMP/history"
fails=0
passes=0
cleanup() {
  tmux -L "$SOCK" kill-server >/dev/null 2>&1
  rm -rf "$TMP"
}
trap cleanup EXIT

tm() { tmux -L "$SOCK" "$@"; }
# the screen and scrollback, trailing blanks removed (an empty prompt reads ">")
screen() { tm capture-pane -p -J -S -200 -t repl 2>/dev/null | sed 's/[[:space:]]*$//'; }

start() { # start [args...]: the REPL in a fresh tmux session
  # a clean environment: the test's own history file, no user readline init file
  tm new-session -d -s repl -x 120 -y 40 \
    "env LUNET_HISTORY='$LUNET_HISTORY' INPUTRC=/dev/null '$BIN' $*"
  wait_for '^>$' 5 || { echo "FAIL: no prompt"; screen; exit 1; }
}

# wait_for REGEX [seconds]: polls the screen until a line matches (grep -E).
wait_for() {
  local re=$1 limit=${2:-5} i
  for ((i = 0; i < limit * 20; i++)); do
    if screen | grep -Eq -- "$re"; then return 0; fi
    sleep 0.05
  done
  return 1
}

# count of screen lines matching REGEX
count() { screen | grep -Ec -- "$1"; }

# type TEXT (literally) then Enter
line() {
  tm send-keys -t repl -l -- "$1"
  tm send-keys -t repl Enter
}

check() { # check NAME REGEX [seconds]
  if wait_for "$2" "${3:-5}"; then
    passes=$((passes + 1)); echo "ok   $1"
  else
    fails=$((fails + 1)); echo "FAIL $1 (no line matching /$2/ on the screen)"
    screen | sed 's/^/    | /'
  fi
}

# prompts counted after each step, to be sure the REPL came back
prompt_back() { # prompt_back NAME: a new empty prompt appears at the bottom
  local before=$1 name=$2 i
  for ((i = 0; i < 100; i++)); do
    if screen | grep -v '^$' | tail -n 1 | grep -q '^>$' && [ "$(count '^>( |$)')" -gt "$before" ]; then
      passes=$((passes + 1)); echo "ok   $name"; return 0
    fi
    sleep 0.05
  done
  fails=$((fails + 1)); echo "FAIL $name (prompt did not come back)"
  screen | sed 's/^/    | /'
}

start

# 1. an expression's value appears without print
line 'x = lunet.ones(2, 3)'
line 'x:sum()'
check "expression value printed" '^tensor\(6\.\)$'

# 2. several values at once, and a table shown readably
line '1 + 1, "two", {a = 1, 2}'
check "several values and a table" $'^2[[:space:]]+two[[:space:]]+\{2, a = 1\}$'

# 3. a trailing ; silences the value
line '12345 * 2\;'   # tmux reads a bare trailing ; as its command separator
line '"after-silent"'
check "trailing ; prints nothing" '^after-silent$'
if screen | grep -q '^24690$'; then
  fails=$((fails + 1)); echo "FAIL trailing ; printed the value"
fi

# 4. a multi-line for loop
line 'for i = 1, 3 do'
check "continuation prompt" '^>>$'
line '  io.write("v", i * 7, " ")'
line 'end'
check "multi-line for loop runs" 'v7 v14 v21'

# 5. a Lua error leaves the prompt alive
n=$(count '^>( |$)')
line 'error("boom-lua")'
check "Lua error printed" 'boom-lua'
prompt_back "$n" "prompt back after a Lua error"

# 6. a shape error leaves the prompt alive
n=$(count '^>( |$)')
line 'x + lunet.ones(4, 3)'
check "shape error printed" 'The size of tensor a \(2\) must match the size of tensor b \(4\) at non-singleton dimension 0'
prompt_back "$n" "prompt back after a shape error"
line 'x:size()'
check "state kept after errors" '^lunet\.Size\(\[2, 3\]\)$'

# 7. Ctrl-C interrupts an endless loop
line 'while true do end'
sleep 0.5
n=$(count '^>( |$)')
tm send-keys -t repl C-c
check "Ctrl-C interrupts a running loop" 'interrupted!'
prompt_back "$n" "prompt back after Ctrl-C"
line '"alive-after-ctrl-c"'
check "REPL usable after Ctrl-C" '^alive-after-ctrl-c$'

# 8. Ctrl-C at the prompt discards the half-typed line
tm send-keys -t repl -l -- 'this is not lua'
wait_for 'this is not lua' 2
tm send-keys -t repl C-c
check "Ctrl-C discards the line" '^> this is not lua\^C$'
line '"after-discard"'
check "prompt after discarding a line" '^after-discard$'

# 9. completion: a tensor method, a module field, a module method, a global
tm send-keys -t repl -l -- 'x:unsq'
tm send-keys -t repl Tab
check "tensor method completes" '^> x:unsqueeze\($'
line '0):size()'
check "completed call runs" '^lunet\.Size\(\[1, 2, 3\]\)$'
line 'net = lunet.nn.Sequential(lunet.nn.Linear(3, 4), lunet.nn.ReLU())'
tm send-keys -t repl -l -- 'lunet.nn.Lin'
tm send-keys -t repl Tab
check "module field completes" '^> lunet\.nn\.Linear\($'
tm send-keys -t repl C-u
tm send-keys -t repl -l -- 'net:forw'
tm send-keys -t repl Tab
check "module method completes" '^> net:forward\($'
tm send-keys -t repl C-u
tm send-keys -t repl -l -- 'x.sha'
tm send-keys -t repl Tab
check "tensor property completes" '^> x\.shape$'
tm send-keys -t repl Enter
line 'net(x)'
check "module call runs" 'grad_fn=<ReluBackward0>'

# 10. Ctrl-D exits; history survives a restart
line '"history-marker-" .. 6 * 7'
check "value before restart" '^history-marker-42$'
tm send-keys -t repl C-d
sleep 0.3
tm kill-session -t repl >/dev/null 2>&1
if grep -q 'history-marker' "$LUNET_HISTORY" 2>/dev/null; then
  passes=$((passes + 1)); echo "ok   history file written"
else
  fails=$((fails + 1)); echo "FAIL history file $LUNET_HISTORY lacks the last line"
fi
# the second session is `lunet -i script`: the prompt stays after the script
cat > "$TMP/init.lua" <<'EOF'
print("script-ran")
answer = lunet.tensor({20, 22}):sum()
EOF
start -i "'$TMP/init.lua'"
check "lunet -i runs the script first" '^script-ran$'
line 'answer'
check "lunet -i keeps the script's globals" '^tensor\(42\)$'
tm send-keys -t repl Up Up
check "history recalled after a restart" '^> "history-marker-" \.\. 6 \* 7$'
tm send-keys -t repl Enter
check "recalled line runs" '^history-marker-42$'
tm send-keys -t repl C-d
for ((i = 0; i < 40; i++)); do tm has-session -t repl 2>/dev/null || break; sleep 0.05; done
if tm has-session -t repl 2>/dev/null; then
  fails=$((fails + 1)); echo "FAIL Ctrl-D did not exit"
else
  passes=$((passes + 1)); echo "ok   Ctrl-D exits"
fi

echo "repl_test: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
