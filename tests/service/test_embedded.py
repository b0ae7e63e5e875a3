"""The same flows on the embedded default (`make run`): SQLite ledger, kombu filesystem broker, no servers."""

from __future__ import annotations

import base64
import json

import pytest

from tests.service.conftest import Api
from tests.service.test_auth import test_revoked_key_is_401_and_only_the_hash_is_stored  # noqa: F401
from tests.service.test_datasets import (  # noqa: F401
    test_a_bad_line_is_named_by_number_and_field,
    test_upload_stores_the_file_by_hash_with_counts,
    test_uploads_over_the_limits_are_refused,
)
from tests.service.test_isolation import test_every_object_of_one_tenant_is_404_for_another  # noqa: F401
from tests.service.test_jobs import (  # noqa: F401
    test_cancel_a_queued_job_ends_it_at_once_and_purges_its_records,
    test_job_detail_and_events_follow_the_state_machine,
    test_jobs_are_listed_newest_first_by_cursor_and_filtered,
    test_mask_download_and_report,
    test_sse_streams_events_until_the_job_ends,
)
from tests.service.test_models import (  # noqa: F401
    test_paths_outside_the_roots_are_refused,
    test_registration_hashes_every_file_and_creates_version_1,
)
from tests.service.test_state import test_a_stale_in_memory_status_cannot_win_a_race  # noqa: F401
from tests.service.test_unlearn import (  # noqa: F401
    test_accepted_job_is_queued_hashed_and_its_records_kept_aside,
    test_idempotency_replays_refuses_other_bodies_and_in_flight_keys,
    test_limits_on_records_size_and_jobs_in_flight,
    test_record_errors_name_the_index_and_field,
)


@pytest.fixture
def ledger_url() -> str:
    return ""  # Settings fills in sqlite:///<data_dir>/grin.sqlite3


@pytest.fixture
def broker_url() -> str:
    return ""  # Settings fills in the filesystem broker under <data_dir>/broker


def test_the_message_lands_in_the_filesystem_broker(api: Api) -> None:
    assert api.settings.embedded and api.settings.database_url.startswith("sqlite")
    headers = api.tenant()
    job = api.unlearn(headers, api.register(headers)["id"]).json()
    messages = [json.loads(path.read_bytes()) for path in (api.settings.broker_folder / "queue").iterdir()
                if path.name.endswith(f".{api.settings.gpu_queue}.msg")]
    assert len(messages) == 1
    assert messages[0]["headers"]["task"] == "grin.pipeline.run_job"
    assert json.loads(base64.b64decode(messages[0]["body"]))[0] == [job["id"]]
