"""The benchmark's own Prosody: the test harness's private server, plus

- Prosody's rate limits (mod_limits, its default 10 kB/s per c2s session) switched on, and
  lifted (``unlimited_jids``) for the benchmark's own accounts only;
- Nagle's algorithm on the server's sockets as operators run it (Prosody's default: on), or
  off (``network_settings.nagle = false``, ``nagle=False``): the benchmark measures the
  commands both ways. A client that writes something the server answers with a small write
  of its own (e.g. a stream management ack request) leaves that write unacknowledged, and
  with Nagle on the server's next stanza to that client waits for the client's ACK;
- accounts written straight into the server's data folder (500 with prosodyctl would take
  ~20 s);
- optionally, a quiet crowd: a small MUC module that does not send crowd occupants the
  presence of *other* occupants, nor build for each the list of those already there, nor
  walk the crowd to publicise a crowd member's presence. Every joiner's presence still
  reaches the bot (and every baseline peer), so what the bot does is unchanged; what goes
  away is the N² presence fan-out to the crowd (MEASURED.md), which costs the server and
  the crowd, not the bot. (Without the walk, 500 joins into one room took this server
  0.45 s instead of 1.8 s: a Lua profile of it put 80% of its time in that walk.)
  Prosody 0.12's own room option
  ``muc#roomconfig_presencebroadcast`` cannot do this: it filters by the *joiner's* role,
  so hiding participants from each other hides them from the bot too, and the bot would
  never see anyone arrive;
- ``muc_room_cache_size`` raised from 100 to 10,000, or above the rooms the run makes if
  more (``rooms``; see the config below).
"""

from __future__ import annotations

from pathlib import Path

from tests.harness.prosody import Prosody, _lua

CROWD_PREFIX = "crowd"
ROOM_CACHE = 10_000  # muc_room_cache_size, at least

QUIET_CROWD_LUA = """\
-- Benchmark only (tests/bench/server.py): occupants whose account name starts with the
-- crowd prefix get their own presence, but neither the presence of other occupants nor,
-- on joining, the list of those already in the room.
local jid_split = require "util.jid".split;
local prefix = module:get_option_string("bench_crowd_prefix", "crowd");
local room_mt = module:depends("muc").room_mt;
local route_stanza = room_mt.route_stanza;
local send_occupant_list = room_mt.send_occupant_list;

local function is_crowd(jid)
\tlocal node = jid_split(jid);
\treturn node ~= nil and node:sub(1, #prefix) == prefix, node;
end

function room_mt:route_stanza(stanza)
\tif stanza.name == "presence" then
\t\tlocal crowd, node = is_crowd(stanza.attr.to);
\t\tif crowd then
\t\t\tlocal _, _, from_nick = jid_split(stanza.attr.from);
\t\t\tif from_nick ~= node then
\t\t\t\treturn; -- another occupant's presence, to a crowd member: dropped
\t\t\tend
\t\tend
\tend
\treturn route_stanza(self, stanza);
end

-- The same, one step earlier (per occupant rather than per session, no JID parsing): the
-- broadcast of a joiner's presence loops over every occupant.
local route_to_occupant = room_mt.route_to_occupant;
function room_mt:route_to_occupant(occupant, stanza)
\tif stanza.name == "presence" and stanza.attr.from ~= occupant.nick
\tand occupant.bare_jid:sub(1, #prefix) == prefix then
\t\treturn;
\tend
\treturn route_to_occupant(self, occupant, stanza);
end

-- What remains of the fan-out is the walk itself: publicising a joiner's presence visits
-- (and copies) every occupant to decide what each is sent, the quadratic part of a join
-- storm (a profile of this server put 80% of its time there). For a crowd member's
-- presence, the walk sees only the occupants outside the crowd (kept aside as they come
-- and go), who are sent it as before.
local function outside_crowd(room)
	local outside = room.bench_outside;
	if not outside then
		outside = {};
		for nick, occupant in pairs(room._occupants) do
			if occupant.bare_jid:sub(1, #prefix) ~= prefix then outside[nick] = true; end
		end
		room.bench_outside = outside;
	end
	return outside;
end

local save_occupant = room_mt.save_occupant;
function room_mt:save_occupant(occupant)
	local nick, bare_jid = occupant.nick, occupant.bare_jid;
	local saved = save_occupant(self, occupant);
	if bare_jid:sub(1, #prefix) ~= prefix then
		outside_crowd(self)[nick] = saved ~= nil or nil;
	end
	return saved;
end

local publicise_occupant_status = room_mt.publicise_occupant_status;
function room_mt:publicise_occupant_status(occupant, x, nick, actor, reason, prev_role,
	force_unavailable, recipient)
	if recipient or occupant.bare_jid:sub(1, #prefix) ~= prefix then
		return publicise_occupant_status(self, occupant, x, nick, actor, reason, prev_role,
			force_unavailable, recipient);
	end
	self.bench_walk_outside = true;
	local ok, err = pcall(publicise_occupant_status, self, occupant, x, nick, actor, reason,
		prev_role, force_unavailable);
	self.bench_walk_outside = nil;
	if not ok then error(err, 0); end
end

local each_occupant = room_mt.each_occupant;
function room_mt:each_occupant(read_only)
	if not self.bench_walk_outside then
		return each_occupant(self, read_only);
	end
	local outside = outside_crowd(self);
	local function next_outside(_, nick)
		nick = next(outside, nick);
		if nick == nil then return nil; end
		return nick, self:get_occupant_by_nick(nick);
	end
	return next_outside, nil, nil;
end

function room_mt:send_occupant_list(to, filter)
\tif is_crowd(to) then
\t\treturn; -- would be dropped above, one stanza per occupant: not even built
\tend
\treturn send_occupant_list(self, to, filter);
end

module:log("info", "bench: presence of others is not sent to %s* occupants", prefix);
"""


LUA_PROFILER = """\
-- Benchmark only (tests/bench/server.py, --profile): a sampling profiler. Every N Lua VM
-- instructions, in the main thread and in every coroutine (Prosody handles each session's
-- stanzas in one), the Lua stack is noted; the counts are written as collapsed stacks
-- ("outer;...;inner count"), every second and when the server stops. Time spent in C
-- (expat parsing, sockets) runs no Lua instructions and is not seen.
local out_path = module:get_option_string("bench_luaprof_out");
local every = module:get_option_number("bench_luaprof_every", 10000);
local getinfo, concat = debug.getinfo, table.concat;
local counts = {};

local function frame(info)
\tlocal path = info.short_src:gsub("^.*/prosody/", ""):gsub("^plugins/", "bench/");
\tlocal line = info.linedefined or 0;
\treturn (info.name or ("function@" .. line)) .. " (" .. path .. ":" .. line .. ")";
end

local function sample()
\tlocal frames = {};
\tfor level = 2, 40 do
\t\tlocal info = getinfo(level, "Sn");
\t\tif not info then break end
\t\ttable.insert(frames, 1, frame(info));
\tend
\tlocal key = concat(frames, ";");
\tcounts[key] = (counts[key] or 0) + 1;
end

local create = coroutine.create;
coroutine.create = function (f)
\tlocal thread = create(f);
\tdebug.sethook(thread, sample, "", every);
\treturn thread;
end
local main = debug.getregistry()[1]; -- the main thread: the network loop
if type(main) == "thread" then debug.sethook(main, sample, "", every); end
debug.sethook(sample, "", every);

local function dump()
\tlocal file = assert(io.open(out_path, "w"));
\tfor key, n in pairs(counts) do file:write(key, " ", n, "\\n"); end
\tfile:close();
end
module:add_timer(1, function () dump(); return 1; end);
module:hook_global("server-stopping", dump);
"""


class BenchServer(Prosody):
    """A private Prosody for the benchmark; ``accounts`` are exempt from its rate limits."""

    def __init__(
        self, workdir: Path, accounts: dict[str, str], *, quiet_crowd: bool = True,
        lua_profile: Path | None = None, nagle: bool = False, rooms: int = 0,
    ) -> None:
        """`rooms`: how many rooms one client joins (the start-up part): Prosody keeps at
        least that many in memory."""
        self.accounts = dict(accounts)
        self.quiet_crowd = quiet_crowd
        self.lua_profile = lua_profile
        self.nagle = nagle
        workdir = Path(workdir).resolve()
        plugins = workdir / "plugins"
        unlimited = "; ".join(_lua(f"{user}@localhost") for user in sorted(self.accounts))
        muc_modules = '"bench_quiet_crowd"' if quiet_crowd else ""
        host_modules = '"limits"; "bench_luaprof"' if lua_profile else '"limits"'
        profile_out = (f"bench_luaprof_out = {_lua(str(lua_profile.resolve()))};"
                       if lua_profile else "")
        network = "" if nagle else "network_settings = { nagle = false }"
        room_cache = max(10_000, rooms + 1_000)
        extra = f"""
plugin_paths = {{ {_lua(str(plugins))} }}
{network}
-- Prosody's rate limits are on for everyone but the benchmark's own accounts.
limits = {{ c2s = {{ rate = "10kb/s"; burst = "2s" }} }}

VirtualHost "localhost" {{
    modules_enabled = {{ {host_modules} }};
    unlimited_jids = {{ {unlimited} }};
    {profile_out}
}}

Component "conference.localhost" "muc" {{
    modules_enabled = {{ {muc_modules} }};
    bench_crowd_prefix = {_lua(CROWD_PREFIX)};
    -- Room objects kept in memory (Prosody: 100): beyond it, every join of a persistent
    -- room loads it from disk and evicts (writes out) another, ~16 ms a join, for the
    -- bot and the bare client alike. A server with many busy rooms is set up for them.
    muc_room_cache_size = {room_cache};
}}
"""
        super().__init__(workdir, extra_config=extra)
        self.plugins_path = plugins

    def write_config(self) -> Path:
        path = super().write_config()
        self.plugins_path.mkdir(exist_ok=True)
        (self.plugins_path / "mod_bench_quiet_crowd.lua").write_text(
            QUIET_CROWD_LUA, encoding="utf-8"
        )
        (self.plugins_path / "mod_bench_luaprof.lua").write_text(LUA_PROFILER, encoding="utf-8")
        self._write_accounts()
        return path

    def _write_accounts(self) -> None:
        """The internal_plain account files prosodyctl would write (it takes ~35 ms each)."""
        folder = self.data_path / "localhost" / "accounts"
        folder.mkdir(parents=True, exist_ok=True)
        for user, password in self.accounts.items():
            if not user.isalnum() or not user.islower():
                raise ValueError(f"bench account names are lower-case letters and digits: {user}")
            (folder / f"{user}.dat").write_text(
                f'return {{\n\t["password"] = {_lua(password)};\n}};\n', encoding="utf-8"
            )
