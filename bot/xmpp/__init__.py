"""The XMPP edge: the only package that imports slixmpp."""
