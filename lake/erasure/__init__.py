"""Right to erasure (GDPR art. 17): remove every trace of one person from the lake, and prove it.

``erase_person(paths, user_id, reason=...)`` rewrites the landing zone, every Delta table (and
purges their history), the loose files, the online store and the warehouse, then records the
erasure without personal data. The subject is resolved through the identity graph to exact ids
(``lake.erasure.subject``), and rows and landed lines are matched on their parsed id fields, never
on substrings (``lake.erasure.lines``, ``lake.erasure.delta_tables.owned_rows``). Consent revocations
captured at ingestion become pending requests that ``process_pending_requests`` erases (the Dagster
asset ``["governance", "erasures"]``).
"""

from lake.erasure.core import ERASURE_LOCKS, ErasureReport, erase_person
from lake.erasure.errors import ErasureError, ErasureIncomplete, InvalidSubject, UnknownPersonColumn
from lake.erasure.record import ERASURES, subject_hash
from lake.erasure.requests import ERASURE_REQUESTS, pending_requests, process_pending_requests, record_requests
from lake.erasure.subject import Subject, resolve_subject, validate_subject_id
from lake.erasure.verify import erased_rows_remaining

__all__ = [
    "ERASURES",
    "ERASURE_LOCKS",
    "ERASURE_REQUESTS",
    "ErasureError",
    "ErasureIncomplete",
    "ErasureReport",
    "InvalidSubject",
    "Subject",
    "UnknownPersonColumn",
    "erase_person",
    "erased_rows_remaining",
    "pending_requests",
    "process_pending_requests",
    "record_requests",
    "resolve_subject",
    "subject_hash",
    "validate_subject_id",
]
