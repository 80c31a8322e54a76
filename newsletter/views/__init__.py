"""Views by audience: `reader` (public pages), `clients` (who is asking: address and
rate-limit keys), `webhooks` (ESP events), `site` (health check, error pages)."""
