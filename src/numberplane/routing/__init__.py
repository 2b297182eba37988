"""The data plane: when a call reaches a number, decide what happens and say it in the carrier's
language (TwiML, LaML, TeXML, NCCO or JSON)."""
