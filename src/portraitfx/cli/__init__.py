"""The `portraitfx` command line."""
