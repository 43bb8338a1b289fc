"""`bot.config`: the TOML file, environment overrides, and one line per configuration problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import policy
from bot.config import (
    DEFAULT_CONFIG,
    ConfigError,
    Settings,
    check_runnable,
    config_path,
    exposed_secrets,
    load_settings,
)

SECRET = "s3cret-Hunter2"

GOOD = """\
[xmpp]
jid = "AddinBot@Example.org"
password = "file-password"
host = "127.0.0.1"
tls = "plain"
nick = "Helper"

[store]
url = "sqlite:///here.db"

[roles]
admins = ["Alice@Example.org"]

[pools]
names = ["Conference.Example.org"]

[rooms]
autojoin = ["dev@conference.example.org"]

[announce]
cooldown_s = 3600
"""


def write(tmp_path: Path, text: str, name: str = "addinbot.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


# --- loading -------------------------------------------------------------------------------


def test_a_good_file_loads_with_jids_and_pools_normalised(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD))

    assert settings.xmpp is not None
    assert settings.xmpp.jid == "addinbot@example.org"
    assert settings.xmpp.secret() == "file-password"
    assert (settings.xmpp.server_host, settings.xmpp.server_port) == ("127.0.0.1", 5222)
    assert settings.xmpp.nick == "Helper"
    assert settings.store.url == "sqlite:///here.db"
    assert settings.roles.admins == ["alice@example.org"]
    assert settings.pools.names == ["conference.example.org"]
    assert settings.rooms.autojoin == ["dev@conference.example.org"]
    assert settings.announce.cooldown_s == 3600
    assert policy.is_admin(settings.roles.admins, "ALICE@example.org")
    assert not policy.is_admin(settings.roles.admins, None)


def test_defaults_follow_the_contract(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, '[xmpp]\njid = "bot@example.org"\npassword = "pw"\n'))

    assert settings.xmpp is not None
    assert settings.xmpp.tls == "starttls"
    assert (settings.xmpp.server_host, settings.xmpp.server_port) == ("example.org", 5222)
    assert settings.xmpp.nick == "AddinBot"
    assert settings.xmpp.full_jid == "bot@example.org/addinbot"
    assert settings.store.url == "sqlite:///addinbot.db"
    assert settings.announce.cooldown_s == 86400


@pytest.mark.parametrize("resource", ["", "two words", "tab\there", "zero\u200bwidth"])
def test_a_resource_that_is_no_fixed_address_is_refused(tmp_path: Path, resource: str) -> None:
    text = GOOD.replace('nick = "Helper"', f'nick = "Helper"\nresource = "{resource}"')
    [problem] = problems(write(tmp_path, text))
    assert problem.startswith("config: xmpp.resource: "), problem


def test_direct_tls_defaults_to_port_5223(tmp_path: Path) -> None:
    text = '[xmpp]\njid = "bot@example.org"\npassword = "pw"\ntls = "direct"\n'
    settings = load_settings(write(tmp_path, text))
    assert settings.xmpp is not None
    assert settings.xmpp.server_port == 5223


def test_a_missing_file_is_one_problem_unless_optional(tmp_path: Path) -> None:
    assert problems(tmp_path / "nope.toml") == [f"config: {tmp_path / 'nope.toml'} does not exist"]
    assert load_settings(tmp_path / "nope.toml", require_file=False).xmpp is None


def test_a_file_that_is_not_toml_is_one_problem(tmp_path: Path) -> None:
    [line] = problems(write(tmp_path, "[xmpp\njid = \n"))
    assert line.startswith(f"config: {tmp_path / 'addinbot.toml'}: ")


# --- the environment -----------------------------------------------------------------------


def test_the_environment_beats_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADDINBOT_ANNOUNCE__COOLDOWN_S", "60")
    monkeypatch.setenv("ADDINBOT_STORE__URL", "postgresql+psycopg://bot@db/addinbot")

    settings = load_settings(write(tmp_path, GOOD))

    assert settings.announce.cooldown_s == 60
    assert settings.store.url == "postgresql+psycopg://bot@db/addinbot"
    assert settings.pools.names == ["conference.example.org"]  # the file still counts


def test_a_nested_environment_key_replaces_only_that_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADDINBOT_XMPP__PASSWORD", "from-the-environment")

    settings = load_settings(write(tmp_path, GOOD))

    assert settings.xmpp is not None
    assert settings.xmpp.secret() == "from-the-environment"
    assert settings.xmpp.jid == "addinbot@example.org"  # the rest of [xmpp] is the file's
    assert settings.xmpp.nick == "Helper"


def test_the_environment_alone_can_configure_the_bot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADDINBOT_XMPP__JID", "bot@example.org")
    monkeypatch.setenv("ADDINBOT_XMPP__PASSWORD", "pw")
    monkeypatch.setenv("ADDINBOT_POOLS__NAMES", '["conference.example.org"]')

    settings = load_settings(tmp_path / "absent.toml", require_file=False)

    assert settings.xmpp is not None
    assert settings.xmpp.jid == "bot@example.org"
    assert settings.pools.names == ["conference.example.org"]
    assert check_runnable(settings) == []


def test_addinbot_config_in_the_environment_is_not_an_unknown_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, GOOD)
    monkeypatch.setenv("ADDINBOT_CONFIG", str(path))
    assert load_settings(config_path(None)).pools.names == ["conference.example.org"]


def test_a_bad_environment_value_is_a_problem_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADDINBOT_ANNOUNCE__COOLDOWN_S", "soon")
    [line] = problems(write(tmp_path, GOOD))
    assert line.startswith("config: announce.cooldown_s: ")


def test_an_environment_list_that_is_not_json_is_a_problem_line_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADDINBOT_ROLES__ADMINS", "alice@example.org")
    [line] = problems(write(tmp_path, GOOD))
    assert line.startswith("config: ")
    assert 'field "roles"' in line
    assert "JSON" in line


# --- the password --------------------------------------------------------------------------


def test_password_file_is_read_without_its_trailing_newline(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text(f"{SECRET}\n", encoding="utf-8")
    text = f'[xmpp]\njid = "bot@example.org"\npassword_file = "{secret}"\n'

    settings = load_settings(write(tmp_path, text))

    assert settings.xmpp is not None
    assert settings.xmpp.secret() == SECRET
    assert check_runnable(settings) == [
        "config: pools.names: name at least one MUC service the bot serves"
    ]


def test_password_file_with_crlf_keeps_inner_spaces(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"pass word \r\n")
    text = f'[xmpp]\njid = "bot@example.org"\npassword_file = "{secret}"\n'
    settings = load_settings(write(tmp_path, text))
    assert settings.xmpp is not None
    assert settings.xmpp.secret() == "pass word "


@pytest.mark.parametrize(
    "xmpp",
    [
        f'password = "{SECRET}"\npassword_file = "/run/secrets/x"',  # both set
        f'password = "{SECRET}"\nhost = "xmpp.example.org"\ntls = "plain"',  # plain, not loopback
        f'password = "{SECRET}"\nport = 70000',  # bad port
        f'passwd = "{SECRET}"',  # unknown key holding the secret
        'password = 31337424242',  # not a string
        f'password = "{SECRET}',  # broken TOML on the password's own line
    ],
)
def test_a_config_error_never_contains_the_password(tmp_path: Path, xmpp: str) -> None:
    text = f'[xmpp]\njid = "bot@example.org"\n{xmpp}\n'
    lines = problems(write(tmp_path, text))
    assert lines
    assert not any(SECRET in line or "31337424242" in line for line in lines)


def test_a_config_error_with_the_password_from_the_environment_never_contains_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADDINBOT_XMPP__PASSWORD", SECRET)
    monkeypatch.setenv("ADDINBOT_XMPP__PORT", "0")
    lines = problems(write(tmp_path, GOOD))
    assert lines == ["config: xmpp.port: Input should be greater than or equal to 1"]


def test_settings_never_show_the_password(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD.replace("file-password", SECRET)))
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings.model_dump())


# --- one line per problem ------------------------------------------------------------------


def test_every_key_problem_is_its_own_line(tmp_path: Path) -> None:
    text = """\
[xmpp]
jid = "not a jid"
pasword = "x"
port = 0

[roles]
admins = ["ok@example.org", "bad"]

[pools]
names = ["conference.example.org", "bad_pool!"]

[colours]
red = 1
"""
    assert problems(write(tmp_path, text)) == [
        "config: xmpp.jid: 'not a jid' is not a bare JID (user@domain)",
        "config: xmpp.port: Input should be greater than or equal to 1",
        "config: xmpp.pasword: unknown key",
        "config: roles.admins: 'bad' is not a bare JID (user@domain)",
        "config: pools.names: 'bad_pool!' is not a domain name",
        "config: colours: unknown key",
    ]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('[xmpp]\njid = "bot@example.org/res"\npassword = "pw"',
         "config: xmpp.jid: 'bot@example.org/res' is not a bare JID (user@domain)"),
        ('[xmpp]\npassword = "pw"', "config: xmpp.jid: required"),
        ('[xmpp]\njid = "bot@example.org"\nnick = "Addin\\u2028Bot"',
         "config: xmpp.nick: The nickname must not contain control characters or line breaks."),
        ('[rooms]\nautojoin = ["dev"]',
         "config: rooms.autojoin: dev is not a room address (room@service)."),
        ('[pools]\nnames = ["-conference.example.org"]',
         "config: pools.names: '-conference.example.org' is not a domain name"),
        ('[pools]\nnames = ["conference example.org"]',
         "config: pools.names: 'conference example.org' is not a domain name"),
        ('[announce]\ncooldown_s = -1',
         "config: announce.cooldown_s: Input should be greater than or equal to 0"),
    ],
)
def test_a_bad_value_names_its_key(tmp_path: Path, text: str, line: str) -> None:
    assert problems(write(tmp_path, text)) == [line]


def test_every_cross_check_problem_is_its_own_line(tmp_path: Path) -> None:
    text = """\
[xmpp]
jid = "bot@example.org"
password = "pw"
password_file = "/run/secrets/addinbot"
tls = "plain"

[pools]
names = ["conference.example.org"]

[rooms]
autojoin = ["dev@conference.example.org", "ops@chat.elsewhere.org"]

[store]
url = "mysql://bot@db/addinbot"
"""
    assert problems(write(tmp_path, text)) == [
        "config: xmpp: set password or password_file, not both",
        'config: xmpp.tls: "plain" is only allowed for a loopback host, not example.org',
        "config: rooms.autojoin: ops@chat.elsewhere.org is not in a pool of pools.names",
        "config: store.url: use sqlite:///FILE or postgresql+psycopg://…",
    ]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "[::1]", "127.8.9.10"])
def test_plain_tls_is_allowed_to_a_loopback_host(tmp_path: Path, host: str) -> None:
    text = f'[xmpp]\njid = "bot@example.org"\npassword = "pw"\nhost = "{host}"\ntls = "plain"\n'
    settings = load_settings(write(tmp_path, text))
    assert settings.xmpp is not None
    assert settings.xmpp.tls == "plain"


@pytest.mark.parametrize("host", ["10.0.0.1", "xmpp.example.org", "localhost.example.org"])
def test_plain_tls_is_refused_to_any_other_host(tmp_path: Path, host: str) -> None:
    text = f'[xmpp]\njid = "bot@example.org"\npassword = "pw"\nhost = "{host}"\ntls = "plain"\n'
    assert problems(write(tmp_path, text)) == [
        f'config: xmpp.tls: "plain" is only allowed for a loopback host, not {host}'
    ]


# --- what `run` needs ----------------------------------------------------------------------


def test_check_runnable_passes_a_complete_config(tmp_path: Path) -> None:
    assert check_runnable(load_settings(write(tmp_path, GOOD))) == []


def test_check_runnable_needs_an_xmpp_section() -> None:
    assert check_runnable(Settings()) == [
        "config: xmpp: the [xmpp] section (jid, password) is required to run the bot"
    ]


def test_check_runnable_lists_every_missing_piece(tmp_path: Path) -> None:
    text = f"""\
[xmpp]
jid = "bot@example.org"
password_file = "{tmp_path / 'no-secret'}"
ca_file = "{tmp_path / 'no-ca.pem'}"
"""
    assert check_runnable(load_settings(write(tmp_path, text))) == [
        f"config: xmpp.password_file: {tmp_path / 'no-secret'} is not a readable file",
        f"config: xmpp.ca_file: {tmp_path / 'no-ca.pem'} is not a readable file",
        "config: pools.names: name at least one MUC service the bot serves",
    ]


def test_check_runnable_needs_a_password(tmp_path: Path) -> None:
    text = '[xmpp]\njid = "bot@example.org"\n[pools]\nnames = ["conference.example.org"]\n'
    assert check_runnable(load_settings(write(tmp_path, text))) == [
        "config: xmpp: set password or password_file"
    ]


# --- which file ----------------------------------------------------------------------------


def test_config_path_prefers_the_option_then_the_environment_then_the_default() -> None:
    env = {"ADDINBOT_CONFIG": "/etc/addinbot/env.toml"}
    assert config_path("/etc/given.toml", env) == Path("/etc/given.toml")
    assert config_path(None, env) == Path("/etc/addinbot/env.toml")
    assert config_path(None, {}) == DEFAULT_CONFIG == Path("addinbot.toml")


def test_config_path_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADDINBOT_CONFIG", "/srv/addinbot.toml")
    assert config_path(None) == Path("/srv/addinbot.toml")
    assert config_path("mine.toml") == Path("mine.toml")
    monkeypatch.delenv("ADDINBOT_CONFIG")
    assert config_path(None) == Path("addinbot.toml")


def test_files_holding_the_password_open_to_others_are_warned_of(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As ssh does for a private key: the password file, and a configuration holding the
    password, readable by other users are named with their mode by `run` and `check`."""
    from bot import check

    secret = tmp_path / "pw"
    secret.write_text("s3cret\n", encoding="utf-8")
    by_file = tmp_path / "by-file.toml"
    by_file.write_text(
        f'[xmpp]\njid = "bot@localhost"\npassword_file = "{secret}"\n'
        '[pools]\nnames = ["conference.localhost"]\n', encoding="utf-8",
    )
    inline = tmp_path / "inline.toml"
    inline.write_text(
        '[xmpp]\njid = "bot@localhost"\npassword = "s3cret"\n'
        '[pools]\nnames = ["conference.localhost"]\n', encoding="utf-8",
    )
    for path in (secret, by_file, inline):
        path.chmod(0o644)
    assert exposed_secrets(load_settings(by_file), by_file) == [
        f"warning: xmpp.password_file {secret} is open to other users (mode 0644); "
        f"run: chmod o-rw {secret}"
    ]
    assert exposed_secrets(load_settings(inline), inline) == [
        f"warning: the configuration, which holds xmpp.password, {inline} is open to other "
        f"users (mode 0644); run: chmod o-rw {inline}"
    ]
    monkeypatch.setattr(check, "database_finding", lambda *a: check.Finding(True, "database: ok"))

    async def reached(*_a: object) -> check.Finding:
        return check.Finding(True, "xmpp: ok")

    monkeypatch.setattr(check, "xmpp_finding", reached)
    assert check.check(load_settings(inline), config_file=inline) == check.EXIT_OK
    assert f"{inline} is open to other users (mode 0644)" in capsys.readouterr().err
    for path in (secret, by_file, inline):
        path.chmod(0o640)  # the group only (a service's own group): not warned of
    assert exposed_secrets(load_settings(by_file), by_file) == []
    assert exposed_secrets(load_settings(inline), inline) == []
    by_file.chmod(0o644)  # holds no password itself
    assert exposed_secrets(load_settings(by_file), by_file) == []


def test_an_autojoin_room_is_kept_in_the_servers_form_and_a_look_alike_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[pools]\nnames = ["conference.localhost"]\n'
                    '[rooms]\nautojoin = ["Dev@Conference.localhost", "ﬀ@conference.localhost"]\n',
                    encoding="utf-8")
    assert load_settings(path).rooms.autojoin == [
        "dev@conference.localhost", "ff@conference.localhost"
    ]
    path.write_text('[pools]\nnames = ["conference.localhost"]\n'
                    '[rooms]\nautojoin = ["\u1d43lpha@conference.localhost"]\n', encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    assert raised.value.problems == [
        "config: rooms.autojoin: \u1d43lpha@conference.localhost is not a room address the bot "
        "accepts: XMPP software disagrees on what room it names (it uses characters newer than "
        "Unicode 3.2)."
    ]


def test_invitation_limits_have_safe_defaults_and_refuse_bad_values(tmp_path: Path) -> None:
    limits = Settings().invitations
    assert (limits.per_inviter, limits.total, limits.window_s, limits.room_cooldown_s) == (
        5, 50, 86_400.0, 600.0
    )
    config = tmp_path / "addinbot.toml"
    config.write_text(
        '[invitations]\nper_inviter = -1\nroom_cooldown_s = "x"\nwindow_s = 0\n', encoding="utf-8"
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert caught.value.problems == [
        "config: invitations.per_inviter: Input should be greater than or equal to 0",
        "config: invitations.window_s: Input should be greater than 0",
        "config: invitations.room_cooldown_s: Input should be a valid number, unable to parse "
        "string as a number",
    ]
