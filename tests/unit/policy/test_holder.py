import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from gatepass.clock import FrozenClock
from gatepass.errors import ConfigurationError
from gatepass.policy import PolicyHolder, PolicyRequest, ReloadResult

RequestFactory = Callable[..., PolicyRequest]
DirFactory = Callable[..., Path]

READ = 'permit (principal, action == Gatepass::Action::"read", resource);\n'
WRITE = 'permit (principal, action == Gatepass::Action::"write", resource);\n'


def touch(path: Path, mtime_ns: int) -> None:
    """Give a file an explicit mtime, so tests never depend on clock resolution."""
    os.utime(path, ns=(mtime_ns, mtime_ns))


class TestPolicyHolder:
    """The live set, its change detection and its hot reload."""

    def test_loads_at_construction(self, make_policy_dir: DirFactory) -> None:
        """The holder loads the directory at once and records when."""
        clock = FrozenClock()
        holder = PolicyHolder(make_policy_dir({"a.cedar": READ}), clock=clock)
        assert holder.current.policy_count == 1
        assert holder.loaded_at == clock.now()
        assert holder.last_error is None
        assert holder.directory.name == "policies"

    def test_broken_directory_at_construction_raises(
        self, make_policy_dir: DirFactory
    ) -> None:
        """A broken set stops startup."""
        directory = make_policy_dir({"a.cedar": "nonsense"})
        with pytest.raises(ConfigurationError):
            PolicyHolder(directory, clock=FrozenClock())

    def test_changed_on_disk_tracks_edits(self, make_policy_dir: DirFactory) -> None:
        """An edited, added or removed file shows as a change; nothing else does."""
        directory = make_policy_dir({"a.cedar": READ})
        holder = PolicyHolder(directory, clock=FrozenClock())
        assert not holder.changed_on_disk()
        touch(directory / "a.cedar", 1_000_000_000)
        assert holder.changed_on_disk()
        holder.reload()
        assert not holder.changed_on_disk()
        (directory / "b.cedar").write_text(WRITE, encoding="utf-8")
        assert holder.changed_on_disk()
        holder.reload()
        (directory / "b.cedar").unlink()
        assert holder.changed_on_disk()

    def test_files_outside_the_set_are_ignored(
        self, make_policy_dir: DirFactory
    ) -> None:
        """Editing a case file or a note is not a policy change."""
        directory = make_policy_dir({"a.cedar": READ})
        holder = PolicyHolder(directory, clock=FrozenClock())
        (directory / "notes.md").write_text("hello", encoding="utf-8")
        assert not holder.changed_on_disk()

    def test_reload_swaps_in_a_changed_set(self, make_policy_dir: DirFactory) -> None:
        """A sound new set replaces the live one and moves loaded_at."""
        directory = make_policy_dir({"a.cedar": READ})
        clock = FrozenClock()
        holder = PolicyHolder(directory, clock=clock)
        old = holder.current
        clock.advance(30)
        (directory / "b.cedar").write_text(WRITE, encoding="utf-8")
        result = holder.reload()
        assert result == ReloadResult(
            changed=True, error=None, digest=holder.current.digest
        )
        assert holder.current is not old
        assert holder.current.policy_count == 2
        assert holder.loaded_at == clock.now()

    def test_reload_of_unchanged_files_keeps_the_set(
        self, make_policy_dir: DirFactory
    ) -> None:
        """Reloading identical content reports no change and keeps the instance."""
        directory = make_policy_dir({"a.cedar": READ})
        clock = FrozenClock()
        holder = PolicyHolder(directory, clock=clock)
        old, loaded_at = holder.current, holder.loaded_at
        clock.advance(30)
        touch(directory / "a.cedar", 2_000_000_000)
        result = holder.reload()
        assert not result.changed
        assert result.error is None
        assert holder.current is old
        assert holder.loaded_at == loaded_at

    def test_broken_reload_keeps_the_old_set(self, make_policy_dir: DirFactory) -> None:
        """A broken new set is refused, the old one stays live, the error is kept."""
        directory = make_policy_dir({"a.cedar": READ})
        holder = PolicyHolder(directory, clock=FrozenClock())
        old = holder.current
        (directory / "b.cedar").write_text("permit (principal", encoding="utf-8")
        result = holder.reload()
        assert not result.changed
        assert result.error is not None
        assert "b.cedar" in result.error
        assert result.digest == old.digest
        assert holder.current is old
        assert holder.last_error == result.error
        assert not holder.changed_on_disk()

    def test_fixing_the_set_clears_the_error(self, make_policy_dir: DirFactory) -> None:
        """After a refused reload, a repaired set loads and clears last_error."""
        directory = make_policy_dir({"a.cedar": READ})
        holder = PolicyHolder(directory, clock=FrozenClock())
        (directory / "b.cedar").write_text("permit (principal", encoding="utf-8")
        holder.reload()
        (directory / "b.cedar").write_text(WRITE, encoding="utf-8")
        result = holder.reload()
        assert result.changed
        assert holder.last_error is None

    def test_deleted_schema_is_refused(self, make_policy_dir: DirFactory) -> None:
        """Removing the schema is a broken set, not an empty one."""
        directory = make_policy_dir({"a.cedar": READ})
        holder = PolicyHolder(directory, clock=FrozenClock())
        (directory / "schema.cedarschema").unlink()
        assert holder.changed_on_disk()
        result = holder.reload()
        assert result.error is not None
        assert "schema file missing" in result.error
        assert holder.current.policy_count == 1

    def test_concurrent_reloads_and_reads(
        self, make_policy_dir: DirFactory, make_request: RequestFactory
    ) -> None:
        """Threads reading and reloading always see a whole, working set."""
        directory = make_policy_dir({"a.cedar": READ})
        holder = PolicyHolder(directory, clock=FrozenClock())
        request = make_request()
        failures: list[str] = []

        def read() -> None:
            decisions = [holder.current.decide([request])[0] for _ in range(50)]
            failures.extend(str(d) for d in decisions if not d.allowed)

        def reload() -> None:
            for number in range(10):
                text = READ + f"// edit {number}\n"
                (directory / "a.cedar").write_text(text, encoding="utf-8")
                holder.reload()

        threads = [threading.Thread(target=read) for _ in range(3)]
        threads.append(threading.Thread(target=reload))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
