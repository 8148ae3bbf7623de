"""Fleet triage: many dumps, a durable queue of stateless workers and a crash
database that remembers every dump it has seen.

- fingerprint.py: a dump's identity by content (pure)
- records.py, summary.py: the database's rows and its summary, rendered (pure)
- db.py: the crash database, SQLite or PostgreSQL (the only psycopg user)
- work.py: one dump's analysis on a worker and its result as JSON
- queue.py: Celery over Redis (the only celery/kombu/redis user)
- releases.py: the kernel releases a worker has debug info for
- run.py: a triage run with a database and/or a broker
"""
