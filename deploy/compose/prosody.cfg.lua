-- Prosody for deploy/compose/compose.yaml: one domain, client connections only, TLS
-- required, accounts made with prosodyctl. addinbot's part (the MUC service) is
-- deploy/prosody/addinbot.cfg.lua, which prosody-entrypoint.sh writes into conf.d/ for
-- XMPP_DOMAIN (the VirtualHost below) at every start.

admins = { }
modules_enabled = {
	"roster"; "saslauth"; "tls"; "disco"; "carbons"; "pep"; "private"; "blocklist";
	"vcard4"; "vcard_legacy"; "bookmarks"; "smacks"; "limits"; "ping"; "time"; "version";
	"uptime"; "csi_simple";
}
modules_disabled = { "s2s" }

c2s_require_encryption = true
allow_registration = false
authentication = "internal_hashed"
storage = "internal"
data_path = "/var/lib/prosody"
pidfile = "/run/prosody/prosody.pid"
-- /etc/prosody/certs, filled by `prosodyctl cert import` at start (prosody-entrypoint.sh).
certificates = "certs"
log = { info = "*console" }

limits = {
	c2s = { rate = "10kb/s" };
}

VirtualHost (ENV_XMPP_DOMAIN or "example.org")

Include "conf.d/*.cfg.lua"
