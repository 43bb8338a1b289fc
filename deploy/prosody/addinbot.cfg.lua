-- addinbot on Prosody 0.12 (Debian 12's package). Tested: tests/integration/test_deploy.py loads this
-- file into a real Prosody, with example.org replaced by the test's domain, and runs the
-- bot against it.
--
-- Install: copy to /etc/prosody/conf.d/addinbot.cfg.lua (Debian's prosody.cfg.lua includes
-- conf.d/*.cfg.lua), replace every example.org with your XMPP domain, then
--     prosodyctl check config && systemctl reload prosody
-- The VirtualHost "example.org" (where the bot's account lives) is your existing one, with
-- its TLS certificate; the MUC service below needs a certificate for conference.example.org
-- too (prosodyctl cert import /etc/letsencrypt/live).
--
-- The bot's account (no in-band registration needed):
--     prosodyctl register addinbot example.org      (asks for the password)
-- The same password goes to the bot's password_file (see deploy/systemd/addinbot.service).
--
-- Who is an addinbot admin is the bot's business (roles.admins in addinbot.toml), not
-- Prosody's: do NOT list the bot in Prosody's global `admins` - that would make it an
-- owner of every room on the server.
--
-- What room owners give the bot (the room's affiliation list, set from any client, e.g.
-- Gajim: Manage room > Affiliations; or as an XEP-0045 admin request):
--   * nothing, in an open room: the bot only posts in the room and sends private messages
--     to joiners, which any participant may do;
--   * "member" in a members-only room (else the room refuses its join with
--     registration-required, and the bot stops trying until an admin says `join` again);
--     in a moderated room, members have voice, so "member" lets it speak there too;
--   * "admin" where room managers should be able to attach/detach by direct message in a
--     semi-anonymous room: as a moderator the bot sees occupants' real JIDs, which is how
--     it recognises a manager outside the room. Typing `!addin attach NAME` in the room
--     works without it.
-- Never "owner": the bot needs no power to configure or destroy rooms.

-- Global options (they must stay above any VirtualHost or Component line):

-- mod_limits (on in Debian's default config) throttles every client to 10 kB/s; the bot
-- answers many people at once, so it is exempt. Harmless when mod_limits is not loaded.
unlimited_jids = { "addinbot@example.org" }

-- The rooms: XEP-0045 multi-user chat. In addinbot.toml, pools.names = ["conference.example.org"].
Component "conference.example.org" "muc"
	name = "Chat rooms"
	-- Only accounts of this server create rooms; anyone may join the public ones.
	restrict_room_creation = "local"
	-- addinbot serves persistent rooms: new rooms are persistent unless their owner says not.
	muc_room_default_persistent = true
	-- XEP-0421 occupant ids (Prosody 0.12 has them built in) let the bot recognise a
	-- returning participant in a semi-anonymous room without seeing their JID.
	muc_occupant_id = true
	-- New rooms are locked until their creator submits the configuration form (Prosody's
	-- default; clients do it for you). Keep it: a room the bot is asked to `join` must exist
	-- and be configured by its owner first.
	muc_room_locking = true
	-- Uncomment to make new rooms non-anonymous (every occupant sees real JIDs), so room
	-- managers can attach/detach by direct message without giving the bot "admin":
	--muc_room_default_public_jids = true
