#!/bin/sh
# Starts as root: writes addinbot's MUC snippet for $XMPP_DOMAIN, imports the certificates
# (prosodyctl gives them to the prosody user), creates or resets the bot's account, then
# runs Prosody as the prosody user.
#
# The snippet is deploy/prosody/addinbot.cfg.lua, mounted as $etc/addinbot.cfg.lua.in: the
# one an operator installs by hand, written for example.org. Here every example.org in it
# becomes $XMPP_DOMAIN, as prosody.cfg.lua's VirtualHost does, so that the MUC service
# (conference.$XMPP_DOMAIN) and the bot's exemption from mod_limits match the domain.
set -eu
domain=${XMPP_DOMAIN:?set XMPP_DOMAIN}
etc=${PROSODY_ETC:-/etc/prosody}
case "$domain" in
  *[!a-z0-9.-]*|"") echo "XMPP_DOMAIN=$domain is not a domain name" >&2; exit 2 ;;
esac
mkdir -p "$etc/conf.d"
sed "s/example\.org/$domain/g" "$etc/addinbot.cfg.lua.in" > "$etc/conf.d/addinbot.cfg.lua"
prosodyctl --root cert import /run/certs
if [ -r /run/secrets/xmpp-password ]; then
  prosodyctl register addinbot "$domain" "$(cat /run/secrets/xmpp-password)"
fi
exec setpriv --reuid=prosody --regid=prosody --init-groups prosody -F
