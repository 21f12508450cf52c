"""The asset cache's policy, pure: LRU eviction under the budget, leased entries never evicted, one download per
content hash however many leases ask for it."""

from __future__ import annotations

import pytest

from handlers.worker._asset_cache import Admission, CacheFull, CachePolicy

A, B, C, D = ("a" * 64, "b" * 64, "c" * 64, "d" * 64)


def held(policy: CachePolicy, *shas: str) -> None:
    for sha in shas:
        policy.ready(sha)
        policy.release(sha)


def test_a_second_lease_waits_for_the_first_download_then_hits() -> None:
    policy = CachePolicy(budget=100)
    assert policy.lease(A, 10) == (Admission.DOWNLOAD, [])
    assert policy.lease(A, 10) == (Admission.WAIT, [])  # one download for both
    assert policy.used_bytes == 10  # the download in flight is reserved
    policy.ready(A)
    assert policy.lease(A, 10) == (Admission.HIT, [])
    assert policy.leases(A) == 3


def test_least_recently_used_goes_first() -> None:
    policy = CachePolicy(budget=30)
    for sha in (A, B, C):
        policy.lease(sha, 10)
        held(policy, sha)
    policy.lease(A, 10)  # A is used again: B is now the oldest
    policy.release(A)
    assert policy.lease(D, 10) == (Admission.DOWNLOAD, [B])
    assert not policy.holds(B) and policy.holds(A) and policy.holds(C)


def test_leased_and_downloading_entries_are_never_evicted() -> None:
    policy = CachePolicy(budget=30)
    policy.lease(A, 10)
    policy.ready(A)  # leased by a running job
    policy.lease(B, 10)  # downloading
    policy.lease(C, 10)
    held(policy, C)
    assert policy.lease(D, 10) == (Admission.DOWNLOAD, [C])
    with pytest.raises(CacheFull, match="30 of the cache budget of 30 bytes are held by assets in use"):
        policy.lease("e" * 64, 10)
    assert policy.used_bytes == 30  # a refusal changes nothing


def test_an_asset_larger_than_the_budget_is_refused() -> None:
    policy = CachePolicy(budget=30)
    with pytest.raises(CacheFull, match="more than the whole cache budget"):
        policy.lease(A, 31)


def test_a_failed_download_frees_its_reservation_and_its_waiters_see_it_gone() -> None:
    policy = CachePolicy(budget=30)
    policy.lease(A, 20)
    policy.lease(A, 20)
    policy.failed(A)
    assert not policy.holds(A) and policy.used_bytes == 0
    policy.release(A)
    policy.release(A)  # releases after the failure are harmless
    assert policy.lease(A, 20) == (Admission.DOWNLOAD, [])


def test_adopted_files_are_evicted_oldest_first() -> None:
    policy = CachePolicy(budget=20)
    policy.adopt(A, 10)
    policy.adopt(B, 10)
    assert policy.lease(C, 10) == (Admission.DOWNLOAD, [A])


def test_the_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="budget"):
        CachePolicy(budget=0)
