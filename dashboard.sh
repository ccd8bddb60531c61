#!/usr/bin/env bash
# Ponte dashboard: a live terminal view of GET /global-status.
#
#   ./dashboard.sh [URL]        default http://127.0.0.1:$SERVER_PORT (3000)
#
# The bearer token comes from PONTE_STATUS_TOKEN, STATUS_TOKEN or ADMIN_TOKEN
# (environment first, then .env next to this script). DASHBOARD_INTERVAL sets
# the refresh period in seconds (default 2). Ctrl-C exits.
set -u

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
from_env_file() {
  [ -f "$here/.env" ] || return 0
  sed -n "s/^$1=//p" "$here/.env" | tail -n 1 | tr -d '"'"'"
}

port="${SERVER_PORT:-$(from_env_file SERVER_PORT)}"
url="${1:-http://127.0.0.1:${port:-3000}}"
url="${url%/}"
token="${PONTE_STATUS_TOKEN:-${STATUS_TOKEN:-${ADMIN_TOKEN:-}}}"
[ -n "$token" ] || token="$(from_env_file STATUS_TOKEN)"
[ -n "$token" ] || token="$(from_env_file ADMIN_TOKEN)"
interval="${DASHBOARD_INTERVAL:-2}"

command -v curl >/dev/null || { echo "dashboard.sh needs curl" >&2; exit 1; }
command -v node >/dev/null || { echo "dashboard.sh needs node" >&2; exit 1; }

cleanup() { printf '\033[?25h\n'; exit 0; }
trap cleanup INT TERM

# Renders one /global-status document (stdin) for a terminal of $COLUMNS.
render='
const s = JSON.parse(require("fs").readFileSync(0, "utf8"));
const c = (code, t) => `\x1b[${code}m${t}\x1b[0m`;
const colour = { open: 32, awaiting_scan: 33, connecting: 36, reconnecting: 33, waiting_lease: 36, starting: 36, stopped: 90, qr_expired: 31, passkey_required: 31, logged_out: 31, halted: 31, host_down: 31 };
const mb = (b) => (b == null ? "-" : `${Math.round(b / 1048576)} MiB`);
const ago = (sec) => (sec == null ? "-" : sec < 60 ? `${sec}s` : sec < 3600 ? `${Math.floor(sec / 60)}m${String(sec % 60).padStart(2, "0")}s` : sec < 86400 ? `${Math.floor(sec / 3600)}h${String(Math.floor(sec / 60) % 60).padStart(2, "0")}m` : `${Math.floor(sec / 86400)}d${String(Math.floor(sec / 3600) % 24).padStart(2, "0")}h`);
const t = s.totals;
const hosts = s.hosts || [];
// Host ids are host names by default: the column is as wide as the longest, within reason.
const hw = Math.min(24, Math.max(4, ...hosts.map((h) => h.id.length + (h.self ? 2 : 0)), ...s.instances.map((i) => (i.host || "-").length)));
const out = [];
out.push(c("1", `Ponte ${s.primary.version}`) + `  host ${s.primary.host ?? "-"}, primary pid ${s.primary.pid}, up ${s.primary.uptimeS}s  ` + c("90", new Date().toLocaleTimeString()));
out.push(`workers: ` + s.workers.map((w) => `${w.id}:${w.ready ? c(32, "ready") : c(31, "down")} pid ${w.pid ?? "-"} ${w.instances} inst ${mb(w.memory && w.memory.rssBytes)}${w.restarts ? c(33, ` ${w.restarts} restarts`) : ""}`).join("  |  "));
out.push(`instances ${t.instances} (${c(32, t.open + " open")})  received ${t.received}  relayed ${t.relayed}  sent ${t.sent}  failed ${t.failed}  retried ${t.retried}  parked ${t.parked}  queues in ${t.inboundQueue} out ${t.outboundQueue}`);
if (hosts.length > 0) {
  out.push("");
  out.push(c("1", ["host".padEnd(hw), "status".padEnd(8), "numbers".padStart(7), "open".padStart(5), "workers".padStart(7), "uptime".padStart(8)].join(" ")));
  for (const h of hosts) {
    const st = !h.alive ? "down" : h.draining ? "draining" : "alive";
    const w = h.workers ? `${h.workers.ready}/${h.workers.total}` : "-";
    out.push([
      (h.id + (h.self ? " *" : "")).padEnd(hw), c({ alive: 32, draining: 33, down: 31 }[st], st.padEnd(8)), String(h.instances).padStart(7), String(h.open).padStart(5),
      c(h.workers && h.workers.ready < h.workers.total ? 33 : 0, w.padStart(7)), ago(h.uptimeS).padStart(8),
    ].join(" ") + (h.alive ? "" : c(90, `  last seen ${h.lastSeenAt.replace("T", " ").slice(0, 19)}`)));
  }
}
out.push("");
out.push(c("1", ["instance".padEnd(14), "state".padEnd(16), "number".padEnd(16), "host".padEnd(hw), "wk", "recv".padStart(7), "relay".padStart(7), "sent".padStart(7), "fail".padStart(5), "park".padStart(5), "q-in".padStart(5), "q-out".padStart(5), " last message"].join(" ")));
for (const i of s.instances) {
  const state = (i.state || "-").padEnd(16);
  out.push([
    i.instance.padEnd(14), c(colour[i.state] || 0, state), (i.phone ? "+" + i.phone : "-").padEnd(16), (i.host || "-").padEnd(hw), String(i.worker ?? "-").padStart(2),
    String(i.counters.received).padStart(7), String(i.counters.relayed).padStart(7), String(i.counters.sent).padStart(7),
    String(i.counters.failed).padStart(5), String(i.counters.parked).padStart(5), String(i.queues.inbound).padStart(5), String(i.queues.outbound).padStart(5),
    " " + (i.lastMessageAt ? i.lastMessageAt.replace("T", " ").slice(0, 19) : "-"),
  ].join(" ") + (i.lastError && i.state !== "open" ? c(90, "  " + i.lastError) : "")
    + (i.restricted ? c(33, `  ${i.restricted.kind === "cap" ? "new-chat cap" : "reach-out lock"} until ${i.restricted.until.replace("T", " ").slice(0, 16)} UTC`) : ""));
}
if (s.instances.length === 0) out.push(c(90, "no instances yet: npm run instance -- create <inbox> <account>"));
process.stdout.write(out.join("\n") + "\n");
'

printf '\033[?25l'
while true; do
  if [ -n "$token" ]; then
    body="$(curl -fsS -m 5 -H "Authorization: Bearer $token" "$url/global-status" 2>&1)"
  else
    body="$(curl -fsS -m 5 "$url/global-status" 2>&1)"
  fi
  status=$?
  printf '\033[H\033[2J'
  if [ $status -ne 0 ]; then
    printf 'Ponte at %s is not answering (%s). Retrying every %ss; Ctrl-C to quit.\n' "$url" "${body:-curl exit $status}" "$interval"
  elif ! printf '%s' "$body" | node -e "$render" 2>/dev/null; then
    printf 'Unexpected answer from %s/global-status; Ctrl-C to quit.\n' "$url"
  fi
  sleep "$interval" & wait $!
done
