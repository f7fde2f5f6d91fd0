"""lander-tui: how much LLM context really fits on your GPUs."""

__version__ = "0.1.0"
