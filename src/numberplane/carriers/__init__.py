"""One adapter per carrier behind one interface (``carriers.base.CarrierAdapter``)."""
