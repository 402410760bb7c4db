"""Layer 5, tools: :mod:`.cli` (``intake-resonance``), :mod:`.cli_output`, :mod:`.demo`, :mod:`.writer` and :mod:`.check`."""
