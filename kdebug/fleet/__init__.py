"""Fleet triage: many dumps, a durable queue of stateless workers (Celery over
Redis, in queue.py only) and a crash database that remembers every dump it
has seen (db.py). The records and their rendering are pure (records.py,
summary.py); run.py wires a triage run together."""
