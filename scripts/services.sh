#!/usr/bin/env bash
# Make sure the PostgreSQL and Redis the tests use answer; start them if they are
# installed but down (the machine's own start commands). Exits non-zero, saying
# which, when one cannot be had.
#
# Usage::
#
#     bash scripts/services.sh
set -u

PGHOST=${MLQ_TEST_PGHOST:-127.0.0.1}
PGPORT=${MLQ_TEST_PGPORT:-5432}
REDIS_HOST=${MLQ_TEST_REDIS_HOST:-127.0.0.1}
REDIS_PORT=${MLQ_TEST_REDIS_PORT:-6379}

postgres_up() { pg_isready -q -h "$PGHOST" -p "$PGPORT" 2>/dev/null; }
redis_up() { [ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]; }

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
[ $status -eq 0 ] && echo "services: PostgreSQL and Redis answer" >&2
exit $status
