# Debian's docker-compose (1.29): CI validates docker-compose.yml with `docker-compose config`
# (tests/test_compose.py); no engine or registry is needed for that (issue 16).
if ! command -v docker-compose >/dev/null 2>&1; then
  apt-get update -qq || true
  apt-get install -y -qq --no-install-recommends docker-compose
fi
