"""The debounce alone: events in, cut times and batches out, on a clock the test moves.

No thread, no sleep, no file system except where a batch looks at its files
(``ChangeBatch.still_valid``), which uses ``tmp_path``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hotmod.reloader._debounce import (
    CLOSED,
    EDITED_MEMORY,
    GONE,
    LISTED,
    MAX_RETRIES,
    SETTLE,
    WRITING,
    ChangeBatch,
    Cut,
    Debouncer,
)
from hotmod.reloader._signature import Signature, file_signature

QUIET = 0.05
MAX_WAIT = 0.5
SIG = (10, 1_000, 7)  # size, mtime_ns, inode
LATER = (12, 2_000, 7)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def debounce(clock: Clock) -> Debouncer:
    return Debouncer(quiet=QUIET, max_wait=MAX_WAIT, clock=clock)


class Owner:
    """What the watcher does for a batch, without its lock."""

    def __init__(self, debounce: Debouncer) -> None:
        self.debounce = debounce
        self.given_up: list[str] = []

    def _changed_since(self, cut: Cut) -> bool:
        return self.debounce.changed_since(cut)

    def _requeue(self, cut: Cut) -> None:
        self.given_up += self.debounce.requeue(cut)


def cut_now(debounce: Debouncer, signatures: dict[str, Signature | None]) -> Cut:
    """Cut as the watcher does once the cut is due: unless a file is in flight."""
    assert not debounce.hold_in_flight(signatures)
    return debounce.cut(signatures)


# --- when a burst is cut --------------------------------------------------------------------


def test_nothing_pending_is_never_due(debounce: Debouncer) -> None:
    assert debounce.due() is None


def edited(debounce: Debouncer, path: str) -> None:
    """``path`` is saved alone once and delivered: from now on it is being edited."""
    debounce.note(path, CLOSED, SIG)
    assert cut_now(debounce, {path: SIG}).single


def test_a_file_saved_alone_before_is_due_at_once_when_saved_again_with_no_barrier(
    debounce: Debouncer, clock: Clock
) -> None:
    edited(debounce, "/p/a.py")
    clock.advance(5.0)
    debounce.note("/p/a.py", WRITING, (0, 1, 7))
    debounce.note("/p/a.py", CLOSED, SIG)

    assert debounce.due() == clock.now
    assert debounce.is_single()
    assert not debounce.needs_barrier()  # the consumer's still_valid() sends it


def test_a_file_saved_alone_before_and_renamed_into_place_is_due_at_once(
    debounce: Debouncer, clock: Clock
) -> None:
    edited(debounce, "/p/a.py")
    debounce.note("/p/a.py", CLOSED, SIG)  # what a rename into place leaves

    assert debounce.due() == clock.now
    assert not debounce.needs_barrier()


def test_the_first_single_save_of_a_file_waits_a_short_settle_window_and_a_barrier(
    debounce: Debouncer, clock: Clock
) -> None:
    """It may be the first file of a burst: the writer gets a moment to go on."""
    edited(debounce, "/p/a.py")
    debounce.note("/p/b.py", CLOSED, SIG)

    assert debounce.due() == pytest.approx(clock.now + QUIET * SETTLE)
    assert debounce.needs_barrier()


def test_a_file_whose_single_batch_is_followed_by_a_burst_is_no_longer_taken_as_edited(
    debounce: Debouncer, clock: Clock
) -> None:
    edited(debounce, "/p/a.py")
    debounce.note("/p/b.py", CLOSED, SIG)  # within quiet of a.py's batch: a burst went on
    clock.advance(QUIET)
    cut_now(debounce, {"/p/b.py": SIG})
    clock.advance(5.0)

    debounce.note("/p/a.py", CLOSED, SIG)

    assert debounce.due() == pytest.approx(clock.now + QUIET * SETTLE)
    assert debounce.needs_barrier()


def test_a_file_whose_single_batch_is_handed_back_is_no_longer_taken_as_edited(
    debounce: Debouncer, clock: Clock
) -> None:
    debounce.note("/p/a.py", CLOSED, SIG)
    debounce.requeue(cut_now(debounce, {"/p/a.py": SIG}))
    cut_now(debounce, {"/p/a.py": SIG})  # the handed-back batch: not single
    clock.advance(5.0)

    debounce.note("/p/a.py", CLOSED, SIG)

    assert debounce.due() == pytest.approx(clock.now + QUIET * SETTLE)
    assert debounce.needs_barrier()


def test_only_the_latest_files_saved_alone_are_remembered(debounce: Debouncer, clock: Clock) -> None:
    for i in range(EDITED_MEMORY + 1):
        edited(debounce, f"/p/m{i}.py")
        clock.advance(1.0)  # saved one after another, not in a burst

    debounce.note("/p/m0.py", CLOSED, SIG)
    assert debounce.due() == pytest.approx(clock.now + QUIET * SETTLE)
    assert debounce.needs_barrier()
    cut_now(debounce, {"/p/m0.py": SIG})
    clock.advance(1.0)
    debounce.note(f"/p/m{EDITED_MEMORY}.py", CLOSED, SIG)
    assert debounce.due() == clock.now
    assert not debounce.needs_barrier()


def test_several_files_always_need_the_barrier(debounce: Debouncer) -> None:
    edited(debounce, "/p/a.py")
    debounce.note("/p/a.py", CLOSED, SIG)
    debounce.note("/p/b.py", CLOSED, SIG)
    assert debounce.needs_barrier()


def test_a_file_still_open_for_writing_holds_the_burst_until_the_hard_cap(
    debounce: Debouncer, clock: Clock
) -> None:
    start = clock.now
    debounce.note("/p/a.py", WRITING, (0, 1, 7))
    clock.advance(0.3)
    debounce.note("/p/b.py", CLOSED, SIG)

    assert debounce.due() == start + 2 * MAX_WAIT


def test_several_files_wait_quiet_after_the_last_event(debounce: Debouncer, clock: Clock) -> None:
    debounce.note("/p/a.py", CLOSED, SIG)
    clock.advance(0.01)
    debounce.note("/p/b.py", CLOSED, SIG)
    assert debounce.due() == pytest.approx(clock.now + QUIET)

    clock.advance(0.03)
    debounce.note("/p/c.py", CLOSED, SIG)  # the burst goes on: the cut moves
    assert debounce.due() == pytest.approx(clock.now + QUIET)
    assert not debounce.is_single()


def test_a_deletion_waits_quiet_since_it_may_be_an_editors_first_step(
    debounce: Debouncer, clock: Clock
) -> None:
    debounce.note("/p/a.py", GONE, None)  # vim: the original renamed to a backup

    assert debounce.due() == pytest.approx(clock.now + QUIET)


def test_a_never_ending_stream_is_cut_at_max_wait(debounce: Debouncer, clock: Clock) -> None:
    start = clock.now
    for i in range(40):
        debounce.note(f"/p/m{i}.py", CLOSED, SIG)
        clock.advance(0.02)  # always inside the quiet window

    assert debounce.due() == pytest.approx(start + MAX_WAIT)


def test_polling_sees_no_close_so_one_file_waits_quiet(debounce: Debouncer, clock: Clock) -> None:
    debounce.reports_close = False
    debounce.note("/p/a.py", WRITING, SIG)  # polling reports "modified"

    assert debounce.due() == pytest.approx(clock.now + QUIET)
    assert not debounce.is_single()


# --- just before the cut ------------------------------------------------------------------------


def test_a_file_changed_with_no_event_yet_is_held_as_being_written(
    debounce: Debouncer, clock: Clock
) -> None:
    start = clock.now
    debounce.note("/p/a.py", CLOSED, SIG)

    assert debounce.hold_in_flight({"/p/a.py": LATER})  # the next save's truncate
    assert debounce.pending["/p/a.py"].state == WRITING
    assert debounce.due() == start + 2 * MAX_WAIT  # until its close


def test_a_touch_explains_a_change_seen_before_its_event(debounce: Debouncer, clock: Clock) -> None:
    edited(debounce, "/p/a.py")
    debounce.note("/p/a.py", CLOSED, SIG)
    assert debounce.hold_in_flight({"/p/a.py": LATER})

    debounce.refresh("/p/a.py", LATER)  # its attribute event arrives

    assert debounce.pending["/p/a.py"].state == CLOSED
    assert debounce.due() == clock.now
    assert not debounce.hold_in_flight({"/p/a.py": LATER})


def test_a_touch_does_not_end_a_real_write(debounce: Debouncer) -> None:
    debounce.note("/p/a.py", WRITING, SIG)

    debounce.refresh("/p/a.py", LATER)

    assert debounce.pending["/p/a.py"].state == WRITING


def test_past_the_hard_cap_nothing_holds_and_the_batch_is_unsettled(
    debounce: Debouncer, clock: Clock
) -> None:
    debounce.note("/p/a.py", WRITING, SIG)
    clock.advance(2 * MAX_WAIT)

    assert not debounce.hold_in_flight({"/p/a.py": LATER})
    cut = debounce.cut({"/p/a.py": LATER})

    assert cut.unsettled
    assert cut.closed == frozenset()


def test_polling_looks_again_a_moment_later_at_a_changed_file(
    debounce: Debouncer, clock: Clock
) -> None:
    debounce.reports_close = False
    debounce.note("/p/a.py", WRITING, SIG)
    clock.advance(QUIET)

    assert debounce.hold_in_flight({"/p/a.py": LATER})
    assert debounce.pending["/p/a.py"].state == LISTED
    assert debounce.due() == pytest.approx(clock.now + QUIET * SETTLE)


def test_without_a_barrier_even_a_file_being_edited_waits_a_short_settle_window(
    debounce: Debouncer, clock: Clock
) -> None:
    edited(debounce, "/p/a.py")
    event_at = clock.now
    debounce.note("/p/a.py", CLOSED, SIG)
    assert debounce.due() == event_at

    assert debounce.hold_unconfirmed()
    assert debounce.due() == pytest.approx(event_at + QUIET * SETTLE)
    clock.advance(QUIET * SETTLE)
    assert not debounce.hold_unconfirmed()


# --- the batch --------------------------------------------------------------------------------


def test_closed_holds_only_files_whose_content_is_known_complete(debounce: Debouncer) -> None:
    debounce.note("/p/saved.py", CLOSED, SIG)
    debounce.note("/p/emptied.py", CLOSED, (0, 5, 8))
    debounce.note("/p/listed.py", LISTED, SIG)
    debounce.note("/p/gone.py", GONE, None)

    cut = cut_now(
        debounce,
        {"/p/saved.py": SIG, "/p/emptied.py": (0, 5, 8), "/p/listed.py": SIG, "/p/gone.py": None},
    )

    assert cut.closed == {"/p/saved.py"}  # an empty file just closed may be a truncate
    assert not cut.single and not cut.unsettled
    assert debounce.due() is None


def test_a_single_file_cut_at_its_close_is_void_once_any_other_event_comes(
    debounce: Debouncer, clock: Clock
) -> None:
    debounce.note("/p/a.py", CLOSED, SIG)
    cut = cut_now(debounce, {"/p/a.py": SIG})
    assert cut.single and not debounce.changed_since(cut)

    debounce.note("/p/b.py", WRITING, SIG)  # the first file of a git checkout
    assert debounce.changed_since(cut)

    given_up = debounce.requeue(cut)  # what the consumer's retry() does
    debounce.note("/p/b.py", CLOSED, SIG)
    clock.advance(QUIET)
    assert given_up == []
    both = cut_now(debounce, {"/p/a.py": SIG, "/p/b.py": SIG})
    assert set(both.states) == {"/p/a.py", "/p/b.py"}
    assert not both.single


def test_a_batch_of_several_files_is_void_only_by_events_for_its_own_files(
    debounce: Debouncer,
) -> None:
    debounce.note("/p/a.py", CLOSED, SIG)
    debounce.note("/p/b.py", CLOSED, SIG)
    cut = cut_now(debounce, {"/p/a.py": SIG, "/p/b.py": SIG})

    debounce.note("/p/c.py", CLOSED, SIG)
    assert not debounce.changed_since(cut)
    debounce.note("/p/b.py", WRITING, SIG)
    assert debounce.changed_since(cut)


def test_a_handed_back_path_comes_again_after_quiet_doubling_then_is_given_up(
    debounce: Debouncer, clock: Clock
) -> None:
    debounce.note("/p/a.py", CLOSED, SIG)
    cut = cut_now(debounce, {"/p/a.py": SIG})
    delays = []
    for _ in range(MAX_RETRIES):
        assert debounce.requeue(cut) == []
        due = debounce.due()
        assert due is not None
        delays.append(round(due - clock.now, 6))
        clock.now = due
        cut = cut_now(debounce, {"/p/a.py": SIG})
        assert cut.closed == {"/p/a.py"} and not cut.single

    assert delays == [QUIET * 2**i for i in range(MAX_RETRIES)]
    assert debounce.requeue(cut) == ["/p/a.py"]
    assert debounce.due() is None
    assert (debounce.retries, debounce.gave_up) == (MAX_RETRIES, 1)


def test_a_handed_back_empty_file_unchanged_since_is_confirmed(debounce: Debouncer) -> None:
    empty = (0, 5, 8)
    debounce.note("/p/a.py", CLOSED, empty)
    cut = cut_now(debounce, {"/p/a.py": empty})
    assert cut.closed == frozenset()

    debounce.requeue(cut)
    again = cut_now(debounce, {"/p/a.py": empty})

    assert again.closed == {"/p/a.py"}


def test_a_path_still_being_written_is_not_handed_back_its_close_brings_it(
    debounce: Debouncer, clock: Clock
) -> None:
    debounce.note("/p/a.py", WRITING, SIG)
    clock.advance(2 * MAX_WAIT)
    cut = debounce.cut({"/p/a.py": SIG})

    assert debounce.requeue(cut) == []
    assert debounce.due() is None


def test_under_polling_a_handed_back_path_waits_at_least_one_scan(
    debounce: Debouncer, clock: Clock
) -> None:
    debounce.reports_close = False
    debounce.retry_floor = 0.5
    debounce.note("/p/a.py", WRITING, SIG)
    clock.advance(QUIET)
    cut = cut_now(debounce, {"/p/a.py": SIG})

    debounce.requeue(cut)

    assert debounce.due() == pytest.approx(clock.now + 0.5)


def test_change_batch_still_valid_compares_the_files_with_the_cut(
    debounce: Debouncer, tmp_path: Path
) -> None:
    mod = tmp_path / "mod.py"
    mod.write_text("VALUE = 1\n")
    debounce.note(str(mod), CLOSED, file_signature(mod))
    batch = ChangeBatch(Owner(debounce), cut_now(debounce, {str(mod): file_signature(mod)}))
    assert batch.paths == batch.closed == {mod}
    assert batch.still_valid()

    mod.write_text("VALUE = 22\n")  # a write whose events have not arrived yet

    assert not batch.still_valid()


def test_change_batch_retry_hands_back_once(debounce: Debouncer, tmp_path: Path) -> None:
    mod = tmp_path / "mod.py"
    mod.write_text("VALUE = 1\n")
    debounce.note(str(mod), CLOSED, file_signature(mod))
    owner = Owner(debounce)
    batch = ChangeBatch(owner, cut_now(debounce, {str(mod): file_signature(mod)}))

    batch.retry()
    batch.retry()

    assert list(debounce.pending) == [str(mod)]
    assert debounce.retries == 1
