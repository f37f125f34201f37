# PostgreSQL: the CI machines run one on 127.0.0.1:5432; start it if it has stopped.
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  for _ in $(seq 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
export DCM_TEST_DATABASE_URL=${DCM_TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
