#!/usr/bin/env bash
# Make sure the PostgreSQL, Redis and RabbitMQ the tests use answer; start them if
# they are installed but down (the machine's own start commands). Exits non-zero,
# saying which, when one cannot be had. (The fault suite starts RabbitMQ nodes of its
# own from the same installation; the machine's node is checked here so that a
# developer's `MLQ_BROKER_URL=amqp://guest:guest@127.0.0.1:5672//` works too.)
#
# Usage::
#
#     bash scripts/services.sh
set -u

PGHOST=${MLQ_TEST_PGHOST:-127.0.0.1}
PGPORT=${MLQ_TEST_PGPORT:-5432}
REDIS_HOST=${MLQ_TEST_REDIS_HOST:-127.0.0.1}
REDIS_PORT=${MLQ_TEST_REDIS_PORT:-6379}
RABBITMQ_HOST=${MLQ_TEST_RABBITMQ_HOST:-127.0.0.1}
RABBITMQ_PORT=${MLQ_TEST_RABBITMQ_PORT:-5672}

postgres_up() { pg_isready -q -h "$PGHOST" -p "$PGPORT" 2>/dev/null; }
redis_up() { [ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]; }
# An AMQP server answers the protocol header with its own (Connection.Start): "AMQP" or
# a connection.start frame, either way bytes back within a second.
rabbitmq_up() {
  timeout 3 bash -c "exec 3<>/dev/tcp/$RABBITMQ_HOST/$RABBITMQ_PORT && printf 'AMQP\x00\x00\x09\x01' >&3 && head -c 1 <&3 | grep -q ." 2>/dev/null
}

wait_for() {  # name, check function
  for _ in $(seq 1 30); do "$2" && return 0; sleep 1; done
  echo "services: $1 did not come up" >&2
  return 1
}

status=0
if ! postgres_up; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "services: starting PostgreSQL" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
    wait_for PostgreSQL postgres_up || status=1
  else
    echo "services: PostgreSQL is not answering on $PGHOST:$PGPORT and is not installed here" >&2
    status=1
  fi
fi
if ! redis_up; then
  if command -v redis-server >/dev/null; then
    echo "services: starting Redis" >&2
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" \
      --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
    wait_for Redis redis_up || status=1
  else
    echo "services: Redis is not answering on $REDIS_HOST:$REDIS_PORT and is not installed here" >&2
    status=1
  fi
fi
if ! rabbitmq_up; then
  if command -v rabbitmq-server >/dev/null; then
    echo "services: starting RabbitMQ" >&2
    rabbitmq-server -detached
    wait_for RabbitMQ rabbitmq_up || status=1
  else
    echo "services: RabbitMQ is not answering on $RABBITMQ_HOST:$RABBITMQ_PORT and is not installed here" >&2
    status=1
  fi
fi
[ $status -eq 0 ] && echo "services: PostgreSQL, Redis and RabbitMQ answer" >&2
exit $status
