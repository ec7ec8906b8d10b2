"""Waking waiters: the ``Waker`` protocol and every implementation of it.

A change to a task is published, after its transaction commits, on two channels: the
task's (``task:<id>``) and its organisation's (``org:<id>``). A waiter subscribes *before*
it reads the task, so a change that lands between the read and the wait still wakes it.

- :class:`LocalWaker` wakes waiters in this process at once (threads and loops alike).
- :class:`ChangeFeedWaker` adds changes other processes commit to the same store, read
  from its change feed only while someone waits (SQLite across processes).
- :class:`handrail.wake.postgres.PostgresWaker` reaches every process on one PostgreSQL
  with ``LISTEN``/``NOTIFY`` (it needs the ``postgres`` extra, so it is imported from its
  own module).

(The server's email and Slack messages to people are *notifications*, in
``handrail_server.notifications``: another thing.)
"""

from ._local import (
    ChangeFeedWaker,
    LocalWaker,
    Subscription,
    Waker,
    org_channel,
    task_channel,
)

__all__ = [
    "ChangeFeedWaker",
    "LocalWaker",
    "Subscription",
    "Waker",
    "org_channel",
    "task_channel",
]
