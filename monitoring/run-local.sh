#!/usr/bin/env bash
# `make monitor`: the service and Debian's Prometheus side by side on this machine, no Docker.
set -euo pipefail
cd "$(dirname "$0")/.."
HOST=${HOST:-127.0.0.1}; PORT=${PORT:-3000}; PROM_PORT=${PROM_PORT:-9090}
work=$(mktemp -d -t clipmorph-monitor-XXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cp -r monitoring/prometheus/rules "$work/rules"
sed "s/127.0.0.1:3000/$HOST:$PORT/" monitoring/prometheus/prometheus.yml > "$work/prometheus.yml"
.venv/bin/bentoml serve service.py --host "$HOST" --port "$PORT" &
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
  --web.listen-address="$HOST:$PROM_PORT" --log.level=warn &
echo "service:    http://$HOST:$PORT/ui/   metrics: http://$HOST:$PORT/metrics"
echo "prometheus: http://$HOST:$PROM_PORT/   alerts: http://$HOST:$PROM_PORT/alerts"
echo "dashboards: monitoring/grafana/dashboards/*.json (import into Grafana, or use monitoring/docker-compose.yml)"
wait
