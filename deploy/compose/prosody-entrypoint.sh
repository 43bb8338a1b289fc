#!/bin/sh
# Starts as root: imports the certificates (prosodyctl gives them to the prosody user),
# creates or resets the bot's account, then runs Prosody as the prosody user.
set -eu
domain=${XMPP_DOMAIN:?set XMPP_DOMAIN}
prosodyctl --root cert import /run/certs
if [ -r /run/secrets/xmpp-password ]; then
  prosodyctl register addinbot "$domain" "$(cat /run/secrets/xmpp-password)"
fi
exec setpriv --reuid=prosody --regid=prosody --init-groups prosody -F
