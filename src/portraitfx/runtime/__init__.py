"""Run effects and analysis over images, videos and folders."""
