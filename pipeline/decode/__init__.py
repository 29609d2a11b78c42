"""Archive rows back into samples: read without trusting the file, decoded in a child that may die,
restored, committed in one piece; the audit against the originals."""
