"""addinbot: persistent-chat add-ins for XMPP group chat."""

__version__ = "0.1.0"
