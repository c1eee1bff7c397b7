"""Beyond one machine: the fleet sync on Celery workers, one Graph budget in Redis for all of them.

* :mod:`cspgraph.distributed.redis_limiter`: :class:`RedisLimiter`, the Graph limiter's budgets
  kept in Redis and updated atomically (Lua), so every worker paces against the same budgets.
* :mod:`cspgraph.distributed.engine`: the Celery application, the per-customer task, and
  :func:`enqueue_sync` (``cspgraph sync --engine celery``), which follows the run in the store.

Needs the ``scale`` extra (``pip install 'cspgraph[scale,postgres]'``); docs/scale.md.
"""
