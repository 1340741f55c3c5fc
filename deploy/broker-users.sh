#!/bin/sh
# Creates one RabbitMQ user per reminder role, each allowed only what its role does.
#
#   configure  declare the topology (every role that touches the broker declares all of it, so a
#              replica can start first on an empty broker), and the sender its delay queues
#   write      bind the work queues (a binding writes to its queue), publish to the events
#              exchange, dead-letter to {exchange}.dead (consumers), park through the
#              default exchange (the sender)
#   read       bind from the exchanges, consume its own queue
#   topic      the routing keys it may publish on the events exchange: the producer
#              maintenance.due, the sender message.sent/failed, the webhook message.status,
#              reply.received and consent.changed, the tracker and the api nothing
#
# The operator's user (dead list/replay, the management UI) is the broker's administrator.
#
# Environment: RABBITMQ_PASSWORD_<ROLE> for each role (PRODUCER, SENDER, TRACKER, WEBHOOK, API),
# EXCHANGE (reminder.events), QUEUE_PREFIX (reminder.), VHOST (/), and how to reach the broker:
#   BACKEND=http       the management API at MANAGEMENT_URL with ADMIN_USER/ADMIN_PASSWORD
#                      (what docker-compose.yml's broker-users service does)
#   BACKEND=rabbitmqctl  rabbitmqctl on this machine (RABBITMQ_NODE to pick a node)
set -eu

EXCHANGE=${EXCHANGE:-reminder.events}
QUEUE_PREFIX=${QUEUE_PREFIX:-reminder.}
VHOST=${VHOST:-/}
BACKEND=${BACKEND:-http}

# Names are matched as regular expressions: escape the dots.
re() { printf '%s' "$1" | sed 's/[.]/\\./g'; }
x=$(re "$EXCHANGE")
p=$(re "$QUEUE_PREFIX")

exchanges="$x|$x\\.dead"
work_queues="${p}sender|${p}tracker|${p}dead"
topology="^($exchanges|$work_queues)\$"
delay_queues="${p}sender\\.retry\\..*"

vhost_path() { if [ "$VHOST" = "/" ]; then printf '%%2f'; else printf '%s' "$VHOST"; fi; }

api() {
  curl -fsS -u "$ADMIN_USER:$ADMIN_PASSWORD" -H 'content-type: application/json' \
    -X PUT "$MANAGEMENT_URL/api/$1" -d "$2" >/dev/null
}

ctl() {
  if [ -n "${RABBITMQ_NODE:-}" ]; then rabbitmqctl -q -n "$RABBITMQ_NODE" "$@"; else rabbitmqctl -q "$@"; fi
}

json_escape() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }

# user password configure write read topic-write
grant() {
  user=$1 password=$2 configure=$3 write=$4 read=$5 topic=$6
  case "$BACKEND" in
    http)
      api "users/$user" "{\"password\":\"$(json_escape "$password")\",\"tags\":\"\"}"
      api "permissions/$(vhost_path)/$user" \
        "{\"configure\":\"$(json_escape "$configure")\",\"write\":\"$(json_escape "$write")\",\"read\":\"$(json_escape "$read")\"}"
      api "topic-permissions/$(vhost_path)/$user" \
        "{\"exchange\":\"$EXCHANGE\",\"write\":\"$(json_escape "$topic")\",\"read\":\".*\"}"
      ;;
    rabbitmqctl)
      ctl add_user "$user" "$password" >/dev/null 2>&1 || ctl change_password "$user" "$password"
      ctl set_permissions -p "$VHOST" "$user" "$configure" "$write" "$read"
      ctl set_topic_permissions -p "$VHOST" "$user" "$EXCHANGE" "$topic" ".*"
      ;;
    *) echo "BACKEND must be http or rabbitmqctl" >&2; exit 2 ;;
  esac
  echo "granted $user"
}

consumer_write="^($exchanges|$work_queues)\$"

grant reminder-producer "$RABBITMQ_PASSWORD_PRODUCER" \
  "$topology" "^($x|$work_queues)\$" "^($exchanges)\$" '^maintenance\.due$'
grant reminder-sender "$RABBITMQ_PASSWORD_SENDER" \
  "^($exchanges|$work_queues|$delay_queues)\$" "^($exchanges|$work_queues|$delay_queues|amq\\.default)\$" \
  "^($exchanges|${p}sender)\$" '^message\.(sent|failed)$'
grant reminder-tracker "$RABBITMQ_PASSWORD_TRACKER" \
  "$topology" "$consumer_write" "^($exchanges|${p}tracker)\$" '^$'
grant reminder-webhook "$RABBITMQ_PASSWORD_WEBHOOK" \
  "$topology" "^($x|$work_queues)\$" "^($exchanges)\$" '^(message\.status|reply\.received|consent\.changed)$'
# The api only reads PostgreSQL; its process connects to the broker but declares nothing.
grant reminder-api "$RABBITMQ_PASSWORD_API" '^$' '^$' '^$' '^$'
