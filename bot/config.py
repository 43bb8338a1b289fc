"""Configuration: one TOML file, every key overridable as ADDINBOT_<SECTION>__<KEY>.

`load_settings` returns a validated `Settings` or raises `ConfigError` holding one line per
problem, so the command line can print them and exit 2 without a traceback.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
import tomllib
import unicodedata
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from bot import i18n, names
from bot.errors import CommandError

ENV_PREFIX = "ADDINBOT_"
DEFAULT_CONFIG = Path("addinbot.toml")

_BARE_JID = re.compile(r"^[^@/\s]+@[^@/\s]+$")
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")


class ConfigError(Exception):
    """The configuration is unusable; `problems` holds one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def normalise_bare_jid(value: str) -> str:
    """A bare JID as compared everywhere: trimmed, lower case. Raises ValueError if malformed."""
    jid = value.strip().lower()
    if not _BARE_JID.match(jid):
        raise ValueError(f"{value!r} is not a bare JID (user@domain)")
    return jid


def normalise_domain(value: str) -> str:
    domain = value.strip().lower()
    if not _DOMAIN.match(domain):
        raise ValueError(f"{value!r} is not a domain name")
    return domain


def is_loopback_host(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class XmppSettings(_Section):
    jid: str
    password: SecretStr | None = None
    password_file: Path | None = None
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    tls: Literal["starttls", "direct", "plain"] = "starttls"
    ca_file: Path | None = None
    nick: str = Field(default="AddinBot", min_length=1, max_length=64)
    # Fixed, so that clients can open the Control Panel at addinbot@host/addinbot.
    resource: str = Field(default="addinbot", min_length=1, max_length=64)

    @field_validator("jid")
    @classmethod
    def _jid(cls, value: str) -> str:
        return normalise_bare_jid(value)

    @field_validator("nick")
    @classmethod
    def _nick(cls, value: str) -> str:
        try:
            return names.one_line(value, what="The nickname")
        except CommandError as exc:
            raise ValueError(exc.reason) from None

    @field_validator("resource")
    @classmethod
    def _resource(cls, value: str) -> str:
        if any(c.isspace() or unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn")
               for c in value):
            raise ValueError("a resource has no white space, control or invisible characters")
        return value

    @property
    def full_jid(self) -> str:
        """The bot's JID with its resource: where its Control Panel is."""
        return f"{self.jid}/{self.resource}"

    @property
    def server_host(self) -> str:
        return self.host or self.jid.split("@", 1)[1]

    @property
    def server_port(self) -> int:
        if self.port is not None:
            return self.port
        return 5223 if self.tls == "direct" else 5222

    def secret(self) -> str:
        """The password, from `password` or read from `password_file`."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file is not None:
            return self.password_file.read_text(encoding="utf-8").rstrip("\r\n")
        raise ConfigError(["xmpp: set password or password_file"])


class StoreSettings(_Section):
    url: str = "sqlite:///addinbot.db"


class RolesSettings(_Section):
    admins: list[str] = []

    @field_validator("admins")
    @classmethod
    def _admins(cls, values: list[str]) -> list[str]:
        return [normalise_bare_jid(v) for v in values]


class PoolsSettings(_Section):
    names: list[str] = []

    @field_validator("names")
    @classmethod
    def _names(cls, values: list[str]) -> list[str]:
        return [normalise_domain(v) for v in values]


class RoomsSettings(_Section):
    autojoin: list[str] = []
    lang: str = i18n.ENGLISH_TAG  # the language of room messages and joiners' links

    @field_validator("lang")
    @classmethod
    def _lang(cls, value: str) -> str:
        """A language the bot has a catalog for (bot/locale), or English."""
        known = i18n.languages()
        lang = value.strip().replace("_", "-").lower()
        lang = lang if lang in known else lang.split("-")[0]  # de-AT: de
        if lang not in known:
            raise ValueError(
                f"no translation for {value!r}; the bot speaks {', '.join(sorted(known))} "
                "(README: Languages, to add one)"
            )
        return lang

    @field_validator("autojoin")
    @classmethod
    def _rooms(cls, values: list[str]) -> list[str]:
        """Each in the one form the bot uses for a room (the server's), or refused."""
        rooms = []
        for value in values:
            try:
                rooms.append(names.room_address(value))
            except CommandError as exc:
                raise ValueError(exc.reason) from None
        return rooms


class AnnounceSettings(_Section):
    cooldown_s: int = Field(default=86400, ge=0)
    pin: bool = False  # `!addin pin` in rooms that did not choose: keep the subject tail


class LogSettings(_Section):
    format: Literal["text", "json"] = "text"  # json: one object per line


class MetricsSettings(_Section):
    listen: str | None = None  # "127.0.0.1:9811": serve /metrics and /health there; off if unset
    # A non-loopback `listen` must be asked for, and then needs a bearer token.
    allow_remote: bool = False
    token: SecretStr | None = None  # or token_file; asked as "Authorization: Bearer <token>"
    token_file: Path | None = None

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is not None:
            listen_address(value)
        return value

    @property
    def address(self) -> tuple[str, int] | None:
        return listen_address(self.listen) if self.listen else None

    def secret(self) -> str | None:
        """The bearer token every request must carry; None: none asked (loopback only)."""
        if self.token is not None:
            return self.token.get_secret_value()
        if self.token_file is not None:
            return self.token_file.read_text(encoding="utf-8").strip()
        return None

    def problems(self) -> list[str]:
        """A metrics endpoint beyond loopback only when asked for, and never without a token."""
        address = self.address
        problems: list[str] = []
        if self.token is not None and self.token_file is not None:
            problems.append("config: metrics: set token or token_file, not both")
        if self.token_file is not None and not self.token_file.is_file():
            problems.append(f"config: metrics.token_file: {self.token_file} is not a readable file")
        elif self.token is not None and len(self.token.get_secret_value().strip()) < 16:
            problems.append("config: metrics.token: use at least 16 characters")
        if address is None or is_loopback_host(address[0]):
            return problems
        if not self.allow_remote:
            problems.append(
                f"config: metrics.listen: {address[0]} is not a loopback address; set "
                "metrics.allow_remote = true (with metrics.token or token_file) to serve it"
            )
        elif self.token is None and self.token_file is None:
            problems.append(
                "config: metrics.listen: a non-loopback address needs metrics.token or "
                "metrics.token_file (asked as a bearer token)"
            )
        return problems


def listen_address(value: str) -> tuple[str, int]:
    """("127.0.0.1", 9811) from "127.0.0.1:9811"; IPv6 as "[::1]:9811"; port 0: any free."""
    host, sep, port = value.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:9811)")
    return host, int(port)


class LimitsSettings(_Section):
    sender: int = Field(default=10, ge=0)  # commands per window from one sender; 0: no limit
    room: int = Field(default=30, ge=0)  # commands per window in one room; 0: no limit
    window_s: float = Field(default=10.0, gt=0)
    # The most characters one answer (chat or form) holds; longer ones are cut at a line with
    # "and N more". Well under any server's stanza limit (Prosody's is 256 KiB).
    reply_chars: int = Field(default=16_000, ge=1_000, le=60_000)


class InvitationsSettings(_Section):
    """What invitations from anyone but an admin may make the bot do (issue 12, finding 3).
    A "look" is a join made only to see whether the inviter manages the room."""

    per_inviter: int = Field(default=5, ge=0)  # looks for one inviter per window; 0: no limit
    total: int = Field(default=50, ge=0)  # looks for everyone together per window; 0: no limit
    window_s: float = Field(default=86_400.0, gt=0)
    room_cooldown_s: float = Field(default=600.0, ge=0)  # one look at a room within this


class ClusterSettings(_Section):
    """Several `addinbot run` on one PostgreSQL database, sharing the rooms (README: "Several
    processes"). Off: one process serves everything, under the fixed `xmpp.resource`."""

    enabled: bool = False
    lease_s: float = Field(default=9.0, ge=0.5, le=60.0)  # a room lease lasts this long unrenewed
    renew_s: float = Field(default=3.0, gt=0.0, le=20.0)  # how often leases are renewed

    def problems(self, store_url: str) -> list[str]:
        if not self.enabled:
            return []
        problems = []
        if not store_url.startswith("postgresql"):
            problems.append(
                "config: cluster.enabled: several processes share only a PostgreSQL database "
                "(store.url is not postgresql+psycopg://…)"
            )
        if self.renew_s * 2 > self.lease_s:
            problems.append(
                f"config: cluster.renew_s: {self.renew_s:g} must be at most half of "
                f"cluster.lease_s ({self.lease_s:g})"
            )
        return problems


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    xmpp: XmppSettings | None = None
    store: StoreSettings = StoreSettings()
    roles: RolesSettings = RolesSettings()
    pools: PoolsSettings = PoolsSettings()
    rooms: RoomsSettings = RoomsSettings()
    announce: AnnounceSettings = AnnounceSettings()
    log: LogSettings = LogSettings()
    metrics: MetricsSettings = MetricsSettings()
    limits: LimitsSettings = LimitsSettings()
    invitations: InvitationsSettings = InvitationsSettings()
    cluster: ClusterSettings = ClusterSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file, which arrives as init arguments.
        return (env_settings, init_settings)


def config_path(given: str | None, environ: dict[str, str] | None = None) -> Path:
    """--config, else $ADDINBOT_CONFIG, else ./addinbot.toml."""
    env = os.environ if environ is None else environ
    return Path(given or env.get("ADDINBOT_CONFIG") or DEFAULT_CONFIG)


def load_settings(path: Path, *, require_file: bool = True) -> Settings:
    problems: list[str] = []
    data: dict[str, Any] = {}
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        if require_file:
            raise ConfigError([f"config: {path} does not exist"]) from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError([f"config: {path}: {exc}"]) from None
    try:
        settings = Settings(**data)
    except SettingsError as exc:  # an ADDINBOT_* list or table that is not JSON
        raise ConfigError([f"config: {exc} (write lists and tables as JSON)"]) from None
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(part) for part in err["loc"]) or "config"
            problems.append(f"config: {where}: {_message(err['msg'], err['type'])}")
        raise ConfigError(problems) from None
    problems.extend(_cross_checks(settings))
    if problems:
        raise ConfigError(problems)
    return settings


def check_runnable(settings: Settings) -> list[str]:
    """What `run` needs beyond what the command line tools need."""
    xmpp = settings.xmpp
    if xmpp is None:
        return ["config: xmpp: the [xmpp] section (jid, password) is required to run the bot"]
    problems: list[str] = []
    if xmpp.password is None and xmpp.password_file is None:
        problems.append("config: xmpp: set password or password_file")
    if xmpp.password_file is not None and not xmpp.password_file.is_file():
        problems.append(f"config: xmpp.password_file: {xmpp.password_file} is not a readable file")
    if xmpp.ca_file is not None and not xmpp.ca_file.is_file():
        problems.append(f"config: xmpp.ca_file: {xmpp.ca_file} is not a readable file")
    no_pools = pools_problem(settings)
    if no_pools is not None:
        problems.append(no_pools)
    return problems


def pools_problem(settings: Settings) -> str | None:
    """Every command needs a pool to serve: the line saying so when none is named."""
    if settings.pools.names:
        return None
    return "config: pools.names: name at least one MUC service the bot serves"


def exposed_secrets(settings: Settings, config_file: Path | None) -> list[str]:
    """A warning line for each file holding the bot's password that other users may read
    (as ssh warns of a private key): the password file, and the configuration file when the
    password is written in it. Nothing is refused; `run` and `check` say it."""
    xmpp = settings.xmpp
    if xmpp is None:
        return []
    holding: list[tuple[str, Path]] = []
    if xmpp.password_file is not None:
        holding.append(("xmpp.password_file", xmpp.password_file))
    if config_file is not None and _holds_password(config_file):
        holding.append(("the configuration, which holds xmpp.password,", config_file))
    warnings = []
    for what, path in holding:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError:
            continue  # missing or unreadable: check_runnable says so
        if mode & (stat.S_IROTH | stat.S_IWOTH):
            warnings.append(
                f"warning: {what} {path} is open to other users (mode {mode:04o}); "
                f"run: chmod o-rw {path}"
            )
    return warnings


def _holds_password(config_file: Path) -> bool:
    try:
        with config_file.open("rb") as fh:
            section = tomllib.load(fh).get("xmpp")
    except (OSError, tomllib.TOMLDecodeError):
        return False
    return isinstance(section, dict) and bool(section.get("password"))


def _cross_checks(settings: Settings) -> list[str]:
    problems: list[str] = []
    xmpp = settings.xmpp
    if xmpp is not None:
        if xmpp.password is not None and xmpp.password_file is not None:
            problems.append("config: xmpp: set password or password_file, not both")
        if xmpp.tls == "plain" and not is_loopback_host(xmpp.server_host):
            problems.append(
                f'config: xmpp.tls: "plain" is only allowed for a loopback host, '
                f"not {xmpp.server_host}"
            )
    problems.extend(settings.metrics.problems())
    problems.extend(settings.cluster.problems(settings.store.url))
    pools = set(settings.pools.names)
    for room in settings.rooms.autojoin:
        if room.split("@", 1)[1] not in pools:
            problems.append(f"config: rooms.autojoin: {room} is not in a pool of pools.names")
    if not (settings.store.url.startswith(("sqlite:", "postgresql"))):
        problems.append("config: store.url: use sqlite:///FILE or postgresql+psycopg://…")
    return problems


def _message(msg: str, kind: str) -> str:
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required"
    return msg.removeprefix("Value error, ")
