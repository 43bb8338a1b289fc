"""What enters the store is text every XML stream can carry, on one line (issue 12, finding 5):
the command line's user name, the audit log's every field, whatever path they came by."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import addins, cli
from bot.errors import CommandError
from bot.values import Actor
from store import Store

POOL = "conference.localhost"


@pytest.mark.parametrize("user", ["root\x01", "eve\x1b[2J", "a\u2028b", "tab\tbed", "x\x85"])
def test_a_local_user_name_no_stream_can_carry_is_refused_and_nothing_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    user: str,
) -> None:
    config = tmp_path / "addinbot.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path}/a.db"\n[pools]\nnames = ["{POOL}"]\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("LOGNAME", user)
    code = cli.main(["addin", "register", "Wiki", "https://wiki.example.org/",
                     "--config", str(config)])
    out, err = capsys.readouterr()
    assert (code, out, err) == (
        1, "", "The local user name (LOGNAME, USER) must not contain control characters or "
               "line breaks.\n",
    )
    monkeypatch.setenv("LOGNAME", "alice")
    assert cli.main(["audit", "--config", str(config)]) == 0
    assert capsys.readouterr().out == "No changes have been recorded yet.\n"


def test_the_audit_log_refuses_such_a_who_and_keeps_each_detail_on_one_line(
    store: Store,
) -> None:
    """The last gate, under every path (chat, forms, invitations, the command line)."""
    with pytest.raises(CommandError, match="control characters or line breaks"):
        addins.record(store, Actor("mallory\x07", "invite"), "invite-declined")
    with pytest.raises(CommandError, match="control characters or line breaks"):
        addins.record(store, Actor("bob@localhost", "invite"), "invite-declined",
                      room="x\u2029y@conference.localhost")
    assert addins.audit(store) == []
    addins.record(store, Actor("bob@localhost", "invite"), "invite-declined",
                  detail="a\u2028b\x00c\ud800d\ufffee: not served")
    [entry] = addins.audit(store)
    assert entry.detail == "a\ufffdb\ufffdc\ufffdd\ufffde: not served"
