"""``pladis ui``: a local web page that shows PLADIS at work (the optional extra ``pladis[ui]``).

    pladis ui                                   # the embedded toy model, http://127.0.0.1:7860
    pladis ui --model DIR_OR_HUB_ID --port 8000

The page runs the CLI's own machinery (:mod:`pladis.cli._session`, ``_options``, ``_grid``,
``_attention_maps``) on one model loaded once: PLADIS off and on from the same seed (what
``pladis compare`` writes), a λ × α sweep grid (``pladis sweep``) and per-token attention maps
(``pladis maps``). Requests run one at a time in arrival order. The server is Python's standard
library ``http.server`` and the page is plain HTML and JavaScript shipped in this package: nothing is
fetched from the network. Importing this package imports neither torch nor diffusers.
"""

__all__: list[str] = []
