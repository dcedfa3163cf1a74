"""The web studio (``portraitfx web``): the effects in a browser, on this computer.

A Gradio app with two tabs: **Apply** (a photo or a video, an effect and its
options, before/after, the result file to download, provenance of face swaps)
and **Style builder** (an artwork becomes a ``.pfxstyle``). It listens on
127.0.0.1 by default, never makes a public share link, and takes an optional
password or token. Gradio comes with the ``web`` extra (``pip install
'portraitfx[web]'``); importing this package imports it.

Example:
    >>> from portraitfx.web import launch                                  # doctest: +SKIP
    >>> launch(port=7860)                                                  # doctest: +SKIP
"""

from __future__ import annotations

from portraitfx.web.studio import Studio, StudioSettings, build_studio, launch

__all__ = ["Studio", "StudioSettings", "build_studio", "launch"]
