"""The store's SQL, written once as plain functions over a synchronous ``Connection``.

``SqlStore`` runs each function in one step: inline on the event loop for SQLite, through
``AsyncConnection.run_sync`` (asyncpg underneath) for PostgreSQL. One store call is one
hop, however many statements it takes.

``seen`` maps task ids to the assignments read in the current transaction, so an update
writes only the assignment rows that changed.

The functions live by concept (``_sql_tasks``, ``_sql_ledger``, ``_sql_workers``,
``_sql_governance``, ``_sql_audit``); this module gathers them for ``SqlStore``.
"""

from __future__ import annotations

from ._sql_audit import Heads as Heads
from ._sql_audit import audit_entries as audit_entries
from ._sql_audit import audit_head as audit_head
from ._sql_audit import audit_orgs as audit_orgs
from ._sql_audit import seal_audit as seal_audit
from ._sql_governance import CONFIGS_KEPT as CONFIGS_KEPT
from ._sql_governance import Configs as Configs
from ._sql_governance import Versions as Versions
from ._sql_governance import config_version as config_version
from ._sql_governance import delete_group as delete_group
from ._sql_governance import get_policy as get_policy
from ._sql_governance import get_standing as get_standing
from ._sql_governance import list_groups as list_groups
from ._sql_governance import list_standing as list_standing
from ._sql_governance import policy_context as policy_context
from ._sql_governance import put_group as put_group
from ._sql_governance import put_policy as put_policy
from ._sql_governance import put_standing as put_standing
from ._sql_governance import spend_token as spend_token
from ._sql_governance import token_spent as token_spent
from ._sql_ledger import balances as balances
from ._sql_ledger import due_settlements as due_settlements
from ._sql_ledger import find_payout as find_payout
from ._sql_ledger import find_posting as find_posting
from ._sql_ledger import get_hold as get_hold
from ._sql_ledger import ledger_totals as ledger_totals
from ._sql_ledger import list_entries as list_entries
from ._sql_ledger import payouts_of as payouts_of
from ._sql_ledger import pending_payouts as pending_payouts
from ._sql_ledger import post as post
from ._sql_ledger import put_hold as put_hold
from ._sql_ledger import put_payout as put_payout
from ._sql_ledger import put_settlement as put_settlement
from ._sql_ledger import settlements_for_task as settlements_for_task
from ._sql_ledger import spend_since as spend_since
from ._sql_ledger import sum_balances as sum_balances
from ._sql_tasks import Seen as Seen
from ._sql_tasks import append_events as append_events
from ._sql_tasks import backup_due as backup_due
from ._sql_tasks import changes_since as changes_since
from ._sql_tasks import due_tasks as due_tasks
from ._sql_tasks import escalation_due as escalation_due
from ._sql_tasks import find_by_key as find_by_key
from ._sql_tasks import get_task as get_task
from ._sql_tasks import insert_task as insert_task
from ._sql_tasks import last_seq as last_seq
from ._sql_tasks import list_events as list_events
from ._sql_tasks import list_tasks as list_tasks
from ._sql_tasks import open_tasks as open_tasks
from ._sql_tasks import org_events as org_events
from ._sql_tasks import sqlstate as sqlstate
from ._sql_tasks import update_task as update_task
from ._sql_workers import active_load as active_load
from ._sql_workers import add_samples as add_samples
from ._sql_workers import crowd_stats as crowd_stats
from ._sql_workers import get_worker as get_worker
from ._sql_workers import get_worker_stats as get_worker_stats
from ._sql_workers import learn as learn
from ._sql_workers import list_workers as list_workers
from ._sql_workers import put_worker as put_worker
from ._sql_workers import put_worker_stats as put_worker_stats
from ._sql_workers import stats_of_worker as stats_of_worker
