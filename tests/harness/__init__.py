"""Test harness: a private Prosody and XMPP test clients."""
