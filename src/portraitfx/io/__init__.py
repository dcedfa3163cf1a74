"""Input and output: safe image reading/writing and the path rules shared by every writer.

Submodules are imported on demand (``from portraitfx.io.images import read_image``) so
that importing this package stays cheap.
"""
